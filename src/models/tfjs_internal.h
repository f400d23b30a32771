/* tfjs_internal.h - the parsed TF.js graph model shared by the loader (tfjs_model.c)
 * and the graph builder (tfjs_build.c). Internal to src/models. */
#ifndef AMS_MODELS_TFJS_INTERNAL_H
#define AMS_MODELS_TFJS_INTERNAL_H

#include <cjson/cJSON.h>

#include "ams/tfjs.h"

#define TFJS_MAX_OUTPUTS 64 /* outputs of one node (Split num_split) */

typedef enum {
    TFJS_DT_NONE = 0,
    TFJS_DT_FLOAT = 1,
    TFJS_DT_INT32 = 2,
    TFJS_DT_BOOL = 3,
} tfjs_dtype;

typedef struct tfjs_node {
    const char *name;      /* points into the cJSON tree */
    const char *op;
    const cJSON *attr;     /* object, or NULL */
    int nin;               /* data inputs */
    int *in_node;          /* producer node of each data input */
    int *in_port;          /* its output index */
    int nctl;              /* control inputs ("^name") present in the graph */
    int *ctl;
    int nout;              /* outputs this node has */
    /* Const nodes only */
    tfjs_dtype cdtype;     /* TFJS_DT_NONE: no weights in the manifest */
    int cndim;
    int64_t cshape[AMS_MAX_DIMS];
    int cparam;            /* float: index in params; else -1 */
    int32_t *cint;         /* int32 / bool values (owned), numel entries */
    int trainable;         /* float const used as a conv filter or bias */
} tfjs_node;

struct ams_tfjs_model {
    cJSON *root;
    tfjs_node *nodes;
    int count;
    int *order;            /* a topological order of all nodes (data + control edges) */
    int *hash;             /* open addressing name -> node index, hcap slots, -1 empty */
    int hcap;
    ams_params *params;
    int nout;              /* signature outputs */
    char **out_node;       /* node names (owned), ":0" stripped */
    char **out_key;        /* signature keys (owned) */
    int image;             /* image Placeholder node, or -1 */
    int image_c, ref_h, ref_w;
};

/* Index of the node named name[0..len), or -1. */
int ams_tfjs_find(const ams_tfjs_model *m, const char *name, size_t len);

/* Attribute helpers (NULL/defaults when absent or malformed). */
const cJSON *ams_tfjs_attr(const tfjs_node *n, const char *key);
/* attr.s decoded from base64 into buf (cap bytes, NUL-terminated); 0 if absent/bad. */
int ams_tfjs_attr_str(const tfjs_node *n, const char *key, char *buf, size_t cap);
/* attr.list.i into v (up to cap); returns the count, -1 if absent/bad. */
int ams_tfjs_attr_ints(const tfjs_node *n, const char *key, int64_t *v, int cap);
/* attr.i (int) / attr.b (bool) / attr.f; def if absent. */
int64_t ams_tfjs_attr_int(const tfjs_node *n, const char *key, int64_t def);
int ams_tfjs_attr_bool(const tfjs_node *n, const char *key, int def);
/* attr.list.s entries decoded; returns the count (up to cap), each NUL-terminated. */
int ams_tfjs_attr_strs(const tfjs_node *n, const char *key, char (*out)[32], int cap);

#endif
