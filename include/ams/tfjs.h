/* tfjs.h - import of TF.js graph models (model.json + .bin weight shards).
 *
 * Two steps. Load parses model.json (cJSON) and the weights, dequantizes float16
 * and uint8/uint16 affine-quantized weights to float32, and keeps the op list.
 * Every float constant becomes a named parameter of ams_tfjs_params() (conv filters
 * and biases trainable, so an imported model can be fine-tuned); integer and bool
 * constants (shape plumbing) stay inside the model. Build then interprets the op
 * list for one input size into an ams_graph: shape plumbing (Shape, StridedSlice,
 * Pack, Cast, ...) and tf.cond blocks whose predicate is fixed by the feeds are
 * folded at build time; Pad, SpaceToBatchND/BatchToSpaceND are folded into the
 * convolutions they feed; resolution-specific constants (resize sizes, transposed-
 * conv output sizes, global-pool windows) are rebuilt for the requested size.
 *
 *     ams_tfjs_model *m = NULL;
 *     AMS_TRY(ams_tfjs_load("selfie.json", &m, &err));
 *     ams_graph *g = ams_graph_new(ams_tfjs_params(m));
 *     int in, out;
 *     ams_tfjs_build_opts o = {.n = 1, .h = 256, .w = 256};
 *     AMS_TRY(ams_tfjs_build(m, g, &o, NULL, 1, &out, &in, &err)); // first output
 *     ams_graph_plan(g, AMS_PLAN_INFER, &err); ...
 *     ams_graph_free(g);
 *     ams_tfjs_free(m);     // after every graph built from it
 * Memory: the model owns its params; graphs reference them. One model may be used
 * by one thread at a time (building reads it; training writes its params).
 * Untrusted input: model.json and weights may be hostile; sizes are bounded and
 * every length checked. Build only accepts shapes the graph builders validate.
 */
#ifndef AMS_TFJS_H
#define AMS_TFJS_H

#include "ams/graph.h"

#define AMS_TFJS_MAX_JSON_BYTES ((size_t)64 << 20)    /* model.json */
#define AMS_TFJS_MAX_WEIGHT_BYTES ((size_t)1 << 31)   /* all shards together */
#define AMS_TFJS_MAX_NODES 100000
#define AMS_TFJS_MAX_INPUTS 1024                      /* per node */

typedef struct ams_tfjs_model ams_tfjs_model;

/* Reads json_path and the weight shards its manifest lists (file names relative to
 * json_path's folder; no folders, no "..") and parses them (ams_tfjs_parse). A path
 * ending in ".safetensors" is read with ams_tfjs_load_safetensors instead.
 * *out: free with ams_tfjs_free. Errors start with the file name. */
ams_status ams_tfjs_load(const char *json_path, ams_tfjs_model **out, ams_err *err);

/* `ams convert`: the model as one safetensors file - every weight under its TF.js node
 * name (float weights F32 as dequantized on load, int32 constants I32, bool U8) and in
 * __metadata__ "format" = "ams-tfjs-graph-model" plus "ams.tfjs.model" = the model.json
 * with its weightsManifest rewritten to name those tensors (float32/int32/bool, no
 * quantization, no shard paths). Loading it gives the same graph with bit-identical
 * weights, so identical outputs. */
ams_status ams_tfjs_save_safetensors(const ams_tfjs_model *m, const char *path, ams_err *err);
ams_status ams_tfjs_load_safetensors(const char *path, ams_tfjs_model **out, ams_err *err);

/* Parses model.json text (json_len bytes, no NUL needed) with the concatenated
 * weight shards (weights_len bytes, in manifest order). Hostile input is an error,
 * never a crash. *out: free with ams_tfjs_free. */
ams_status ams_tfjs_parse(const char *json, size_t json_len, const uint8_t *weights,
                          size_t weights_len, ams_tfjs_model **out, ams_err *err);

void ams_tfjs_free(ams_tfjs_model *m);

/* The model's parameters (owned by the model), one per float constant, named by
 * its TF node name, in TF layout (conv HWIO, depthwise (kh,kw,c,mult)). */
ams_params *ams_tfjs_params(const ams_tfjs_model *m);

/* Graph nodes and ops (after load), for reports and tests. */
int ams_tfjs_node_count(const ams_tfjs_model *m);
const char *ams_tfjs_node_name(const ams_tfjs_model *m, int i);
const char *ams_tfjs_node_op(const ams_tfjs_model *m, int i);

/* Signature outputs, in model.json order: node name ("Identity_1") and key ("pha";
 * the node name when the signature gives none). */
int ams_tfjs_output_count(const ams_tfjs_model *m);
const char *ams_tfjs_output_node(const ams_tfjs_model *m, int i);
const char *ams_tfjs_output_key(const ams_tfjs_model *m, int i);

/* The image input: the first Placeholder of rank 4 (name, channels, and the height
 * and width it was exported with, 0 when unknown). */
const char *ams_tfjs_image_input(const ams_tfjs_model *m, int *channels, int *ref_h,
                                 int *ref_w);

/* A scalar fed to a Placeholder (RVM: r1i..r4i = 0, downsample_ratio = 0.5). Fed
 * values are build-time constants: conditionals keyed on them fold away. */
typedef struct ams_tfjs_feed {
    const char *name;  /* Placeholder node name */
    float value;
} ams_tfjs_feed;

typedef struct ams_tfjs_build_opts {
    int n, h, w;                 /* image input size (channels come from the model) */
    const ams_tfjs_feed *feeds;  /* nfeeds scalar inputs */
    int nfeeds;
} ams_tfjs_build_opts;

/* Adds the model's ops to g (which must have been created over ams_tfjs_params(m))
 * for the input size in o. outputs[0..nout) name the wanted outputs: a node name
 * ("Identity_1", "name:k" for output k) or a signature key ("pha"); outputs == NULL
 * means the first nout signature outputs. out_nodes[i] receives each output's graph
 * node, *input_node the image input's node. An unsupported op is AMS_E_UNSUPPORTED
 * "unsupported op 'X' at node 'Y'". The graph may be planned afterwards. */
ams_status ams_tfjs_build(const ams_tfjs_model *m, ams_graph *g, const ams_tfjs_build_opts *o,
                          const char *const *outputs, int nout, int *out_nodes,
                          int *input_node, ams_err *err);

/* The node name of the input of output `output` (name or key) when that output is
 * Sigmoid(x) - the logit a stable binary cross-entropy trains on - else NULL. */
const char *ams_tfjs_logit_name(const ams_tfjs_model *m, const char *output);

#endif
