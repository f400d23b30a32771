/* graph_testlib.h - one pass of a built graph for the graph tests: its image and labels
 * set, forward, and with train the parameters' gradients zeroed and backward from loss.
 * Header-only (static functions) so that each test stays one binary. */
#ifndef AMS_TEST_GRAPH_TESTLIB_H
#define AMS_TEST_GRAPH_TESTLIB_H

#include <stdint.h>

#include "ams/backend.h"
#include "ams/graph.h"
#include "check.h"

static inline int graph_pass(ams_graph *g, int image, int labels, int loss,
                             const ams_backend *be, ams_params *ps, const float *x,
                             const uint8_t *lab, int train) {
    ams_err err;
    CHECKF(ams_graph_set_input(g, image, x, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_set_labels(g, labels, lab, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_forward(g, be, &err) == AMS_OK, "%s", err.msg);
    if (train) {
        ams_params_zero_grads(ps);
        CHECKF(ams_graph_backward(g, be, loss, &err) == AMS_OK, "%s", err.msg);
    }
    return 0;
}

#endif
