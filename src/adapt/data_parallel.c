/* data_parallel.c - a training step over replicas of the training graph (data_parallel.h). */
#include "ams/data_parallel.h"

#include <stdlib.h>
#include <string.h>

typedef struct replica {
    ams_params view;         /* params' names and values, own gradients (replica > 0) */
    ams_graph *g;
    const ams_backend *be;   /* owned when several replicas run the cpu backend */
    int first, n;            /* frames [first, first + n) of the batch */
    int image, labels, loss;
    double loss_value;
    int64_t count;           /* pixels the loss counted */
    ams_status st;
    ams_err err;
} replica;

struct ams_dp {
    ams_params *params;
    int n, h, w, count;
    int owns_backends;
    uint8_t *frozen;         /* per parameter (ams_dp_freeze), NULL: none */
    replica r[AMS_DP_MAX_REPLICAS];
};

int ams_dp_replicas(const ams_backend *be, int n, int replicas) {
    int r = replicas;
    if (r <= 0) r = be && !strcmp(be->name, "cpu") ? ams_backend_threads(be) : 1;
    if (r > n) r = n;
    if (r > AMS_DP_MAX_REPLICAS) r = AMS_DP_MAX_REPLICAS;
    return r < 1 ? 1 : r;
}

void ams_dp_free(ams_dp *dp) {
    if (!dp) return;
    for (int i = 0; i < dp->count; i++) {
        ams_graph_free(dp->r[i].g);
        if (i > 0) free(dp->r[i].view.grads);
        if (dp->owns_backends) ams_backend_free(dp->r[i].be);
    }
    free(dp->frozen);
    free(dp);
}

ams_status ams_dp_new(ams_dp **out, ams_params *params, ams_dp_build_fn build, void *ctx, int n,
                      int h, int w, int replicas, const ams_backend *be, ams_err *err) {
    *out = NULL;
    AMS_FAIL_IF(!params || !params->values || !build || !be, err, AMS_E_INVAL,
                "data parallel: needs allocated params, a build callback and a backend");
    AMS_FAIL_IF(n < 1 || h < 1 || w < 1 || replicas < 0, err, AMS_E_INVAL,
                "data parallel: bad batch %d of %dx%d (replicas %d)", n, w, h, replicas);
    ams_dp *dp = calloc(1, sizeof *dp);
    AMS_FAIL_IF(!dp, err, AMS_E_NOMEM, "data parallel: out of memory");
    dp->params = params;
    dp->n = n, dp->h = h, dp->w = w;
    int count = ams_dp_replicas(be, n, replicas);
    /* the cpu backend keeps caches and scratch: one single-threaded instance per replica;
     * the reference kernels are pure functions, shared */
    dp->owns_backends = count > 1 && !strcmp(be->name, "cpu");
    ams_status st = AMS_OK;
    for (int i = 0; i < count && st == AMS_OK; i++) {
        replica *r = &dp->r[i];
        r->first = (int)((int64_t)n * i / count);
        r->n = (int)((int64_t)n * (i + 1) / count) - r->first;
        r->view = *params;
        if (i > 0) {
            r->view.grads = calloc(params->total ? params->total : 1, sizeof(float));
            if (!r->view.grads) {
                st = ams_err_set(err, AMS_E_NOMEM, "data parallel: out of memory");
                break;
            }
        }
        dp->count = i + 1; /* what ams_dp_free must release from here on */
        if (dp->owns_backends) st = ams_backend_cpu_create(1, &r->be, err);
        else r->be = be;
        if (st != AMS_OK) break;
        r->g = ams_graph_new(&r->view);
        if (!r->g) {
            st = ams_err_set(err, AMS_E_NOMEM, "data parallel: out of memory");
            break;
        }
        st = build(ctx, r->g, r->n, h, w, &r->image, &r->labels, &r->loss, err);
        if (st == AMS_OK) st = ams_graph_error(r->g, err);
        if (st == AMS_OK) st = ams_graph_plan(r->g, AMS_PLAN_TRAIN, err);
        if (st != AMS_OK) ams_err_prefix(err, "replica %d of %d (batch %d)", i, count, r->n);
    }
    if (st != AMS_OK) {
        ams_dp_free(dp);
        return st;
    }
    *out = dp;
    return AMS_OK;
}

int ams_dp_count(const ams_dp *dp) { return dp->count; }

ams_status ams_dp_freeze(ams_dp *dp, const uint8_t *frozen, ams_err *err) {
    int any = 0;
    for (int i = 0; frozen && i < dp->params->count && !any; i++) any = frozen[i] != 0;
    if (any && !dp->frozen) {
        dp->frozen = malloc((size_t)dp->params->count);
        AMS_FAIL_IF(!dp->frozen, err, AMS_E_NOMEM, "data parallel: out of memory");
    }
    if (any) memcpy(dp->frozen, frozen, (size_t)dp->params->count);
    for (int i = 0; i < dp->count; i++)
        AMS_TRY(ams_graph_freeze(dp->r[i].g, any ? frozen : NULL, err));
    if (!any) {
        free(dp->frozen);
        dp->frozen = NULL;
    }
    return AMS_OK;
}
int ams_dp_batch(const ams_dp *dp) { return dp->n; }
ams_graph *ams_dp_graph(const ams_dp *dp, int r) {
    return r >= 0 && r < dp->count ? dp->r[r].g : NULL;
}

/* A step's batch: floats x and labels y, or frames and labels held apart as bytes. */
typedef struct batch {
    const float *x;
    const uint8_t *y;
    const uint8_t *const *frames, *const *labels;
    float scale;
} batch;

/* Forward and backward of replica r on its frames; grads of its view zeroed first. */
static void replica_step(ams_dp *dp, replica *r, const batch *b) {
    size_t per = (size_t)dp->h * (size_t)dp->w;
    memset(&r->err, 0, sizeof r->err);
    if (b->frames) {
        r->st = ams_graph_set_parts_u8(r->g, r->image, b->frames + r->first, b->scale, &r->err);
        if (r->st == AMS_OK)
            r->st = ams_graph_set_parts_u8(r->g, r->labels, b->labels + r->first, 1.0f, &r->err);
    } else {
        r->st = ams_graph_set_input(r->g, r->image, b->x + per * 3 * (size_t)r->first, &r->err);
        if (r->st == AMS_OK)
            r->st = ams_graph_set_labels(r->g, r->labels, b->y + per * (size_t)r->first, &r->err);
    }
    if (r->st == AMS_OK) r->st = ams_graph_forward(r->g, r->be, &r->err);
    if (r->st != AMS_OK) return;
    r->loss_value = ams_graph_value(r->g, r->loss)[0];
    r->count = ams_graph_loss_count(r->g, r->loss);
    ams_params_zero_grads(&r->view);
    r->st = ams_graph_backward(r->g, r->be, r->loss, &r->err);
}

static ams_status step(ams_dp *dp, const batch *b, double *loss, ams_err *err) {
    int nr = dp->count;
    if (nr == 1) {
        replica_step(dp, &dp->r[0], b);
    } else {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nr) schedule(static, 1)
#endif
        for (int i = 0; i < nr; i++) replica_step(dp, &dp->r[i], b);
    }
    for (int i = 0; i < nr; i++)
        if (dp->r[i].st != AMS_OK) {
            if (err) *err = dp->r[i].err;
            return dp->r[i].st;
        }
    if (nr == 1) {
        *loss = dp->r[0].loss_value;
        return AMS_OK;
    }
    /* each replica's loss is a mean over its counted pixels: weight by the counts (by the
     * frames when a loss counts nothing, e.g. every pixel ignored) */
    int64_t total = 0;
    for (int i = 0; i < nr; i++) total += dp->r[i].count;
    float wt[AMS_DP_MAX_REPLICAS];
    double sum = 0;
    for (int i = 0; i < nr; i++) {
        double f = total > 0 ? (double)dp->r[i].count / (double)total : (double)dp->r[i].n / dp->n;
        wt[i] = (float)f;
        sum += f * dp->r[i].loss_value;
    }
    *loss = sum;
    /* frozen parameters' gradients stay zero (ams_params_zero_grads, nothing added) */
    const ams_params *p = dp->params;
    float *g = p->grads;
#ifdef _OPENMP
#pragma omp parallel num_threads(nr)
#endif
    for (int t = 0; t < (dp->frozen ? p->count : 1); t++) {
        size_t k0 = dp->frozen ? p->info[t].offset : 0;
        int64_t len = dp->frozen ? p->info[t].numel : (int64_t)p->total;
        if (dp->frozen && dp->frozen[t]) continue;
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
        for (int64_t j = 0; j < len; j++) {
            size_t k = k0 + (size_t)j;
            float s = wt[0] * g[k];
            for (int i = 1; i < nr; i++) s += wt[i] * dp->r[i].view.grads[k];
            g[k] = s;
        }
    }
    return AMS_OK;
}

ams_status ams_dp_step(ams_dp *dp, const float *x, const uint8_t *y, double *loss, ams_err *err) {
    batch b = {.x = x, .y = y};
    return step(dp, &b, loss, err);
}

ams_status ams_dp_step_u8(ams_dp *dp, const uint8_t *const *frames, float scale,
                          const uint8_t *const *labels, double *loss, ams_err *err) {
    AMS_FAIL_IF(!frames || !labels, err, AMS_E_INVAL, "data parallel: no frames");
    batch b = {.frames = frames, .labels = labels, .scale = scale};
    return step(dp, &b, loss, err);
}
