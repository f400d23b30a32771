/* fuzz_tfjs_json.c - fuzz target for the TF.js graph-model loader and graph builder.
 * Input: model.json text, optionally followed by a NUL byte and the weight bytes.
 * A model that parses is also built for a 1x8x8 image (scalar inputs fed 1.0), which
 * exercises the folding interpreter; nothing is planned or run (bounded memory). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ams/tfjs.h"

#define MAX_INPUT (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > MAX_INPUT) return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *w = nul ? nul + 1 : data + size;
    size_t wlen = nul ? size - jlen - 1 : 0;
    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    if (ams_tfjs_parse((const char *)data, jlen, w, wlen, &m, &err) != AMS_OK) return 0;
    if (ams_tfjs_node_count(m) <= 2000) {
        ams_tfjs_feed feeds[16];
        int nf = 0;
        for (int i = 0; i < ams_tfjs_node_count(m) && nf < 16; i++)
            if (!strcmp(ams_tfjs_node_op(m, i), "Placeholder"))
                feeds[nf++] = (ams_tfjs_feed){ams_tfjs_node_name(m, i), 1.0f};
        ams_graph *g = ams_graph_new(ams_tfjs_params(m));
        ams_tfjs_build_opts o = {1, 8, 8, feeds, nf};
        int out = -1, in = -1;
        if (g) ams_tfjs_build(m, g, &o, NULL, 1, &out, &in, &err);
        ams_graph_free(g);
    }
    ams_tfjs_free(m);
    return 0;
}
