/* broadcast.c - reference add, mul and div with numpy broadcasting (ams_bcast_desc: up to 8
 * dims, a and b already left-padded to out's rank, each dim 1 or out's). Backward sums the
 * gradient over the dims an operand was broadcast along. */
#include "nn/ref/ref_kernels.h"

/* element strides of a contiguous tensor of shape s, 0 along dims of size 1 so that a
 * broadcast dim keeps reading the same element */
static void bcast_strides(int64_t *st, const int64_t *s, int nd) {
    int64_t acc = 1;
    for (int k = nd - 1; k >= 0; k--) {
        st[k] = s[k] == 1 ? 0 : acc;
        acc *= s[k];
    }
}

static int64_t numel(const int64_t *s, int nd) {
    int64_t n = 1;
    for (int k = 0; k < nd; k++) n *= s[k];
    return n;
}

/* odometer step of a row-major multi-index over extents ext[0..nd) */
static void advance(int64_t *idx, const int64_t *ext, int nd) {
    for (int k = nd - 1; k >= 0; k--) {
        if (++idx[k] < ext[k]) return;
        idx[k] = 0;
    }
}

static int64_t offset(const int64_t *idx, const int64_t *st, int nd) {
    int64_t o = 0;
    for (int k = 0; k < nd; k++) o += idx[k] * st[k];
    return o;
}

enum { OP_ADD, OP_MUL, OP_DIV };

/* out = a + b, a * b or a / b; the last axis is the inner loop */
static void bcast_forward(float *out, const float *a, const float *b, const ams_bcast_desc *d,
                          int op) {
    int nd = d->ndim;
    AMS_ASSERT(nd >= 1 && nd <= 8);
    int64_t sa[8] = {0}, sb[8] = {0}, idx[8] = {0};
    bcast_strides(sa, d->a, nd);
    bcast_strides(sb, d->b, nd);
    int64_t inner = d->out[nd - 1], ta = sa[nd - 1], tb = sb[nd - 1];
    int64_t nouter = numel(d->out, nd - 1);
    if (inner <= 0) return;
    for (int64_t o = 0; o < nouter; o++) {
        const float *pa = a + offset(idx, sa, nd - 1);
        const float *pb = b + offset(idx, sb, nd - 1);
        float *y = out + o * inner;
        if (op == OP_MUL)
            for (int64_t j = 0; j < inner; j++) y[j] = pa[j * ta] * pb[j * tb];
        else if (op == OP_DIV)
            for (int64_t j = 0; j < inner; j++) y[j] = pa[j * ta] / pb[j * tb];
        else
            for (int64_t j = 0; j < inner; j++) y[j] = pa[j * ta] + pb[j * tb];
        advance(idx, d->out, nd - 1);
    }
}

/* dx[j] += sum, over the dims along which x (shape xs) is broadcast, of dout * other
 * (other NULL: of dout alone); other has shape os. Sums in double. */
static void bcast_reduce(float *dx, const int64_t *xs, const float *dout, const float *other,
                         const int64_t *os, const ams_bcast_desc *d) {
    int nd = d->ndim;
    AMS_ASSERT(nd >= 1 && nd <= 8);
    int64_t so[8] = {0}, st[8] = {0}, rext[8] = {0}, kidx[8] = {0};
    int64_t acc = 1;
    for (int k = nd - 1; k >= 0; k--) { /* out's strides, never zeroed */
        so[k] = acc;
        acc *= d->out[k];
    }
    bcast_strides(st, other ? os : d->out, nd);
    for (int k = 0; k < nd; k++) rext[k] = xs[k] == 1 ? d->out[k] : 1;
    int64_t nx = numel(xs, nd), nr = numel(rext, nd);
    for (int64_t j = 0; j < nx; j++) {
        /* kidx is 0 along reduced dims, so it is also the base index into out / other */
        int64_t ridx[8] = {0};
        double sum = 0;
        for (int64_t r = 0; r < nr; r++) {
            int64_t io = 0, it = 0;
            for (int k = 0; k < nd; k++) {
                io += (kidx[k] + ridx[k]) * so[k];
                it += (kidx[k] + ridx[k]) * st[k];
            }
            sum += other ? (double)dout[io] * (double)other[it] : (double)dout[io];
            advance(ridx, rext, nd);
        }
        dx[j] += (float)sum;
        advance(kidx, xs, nd);
    }
}

void ams_ref_add_forward(const ams_backend *be, float *out, const float *a, const float *b,
                         const ams_bcast_desc *d) {
    (void)be;
    bcast_forward(out, a, b, d, OP_ADD);
}

void ams_ref_add_backward(const ams_backend *be, float *da, float *db, const float *dout,
                          const ams_bcast_desc *d) {
    (void)be;
    if (da) bcast_reduce(da, d->a, dout, NULL, NULL, d);
    if (db) bcast_reduce(db, d->b, dout, NULL, NULL, d);
}

void ams_ref_mul_forward(const ams_backend *be, float *out, const float *a, const float *b,
                         const ams_bcast_desc *d) {
    (void)be;
    bcast_forward(out, a, b, d, OP_MUL);
}

void ams_ref_mul_backward(const ams_backend *be, float *da, float *db, const float *dout,
                          const float *a, const float *b, const ams_bcast_desc *d) {
    (void)be;
    if (da) bcast_reduce(da, d->a, dout, b, d->b, d);
    if (db) bcast_reduce(db, d->b, dout, a, d->a, d);
}

void ams_ref_div_forward(const ams_backend *be, float *out, const float *a, const float *b,
                         const ams_bcast_desc *d) {
    (void)be;
    bcast_forward(out, a, b, d, OP_DIV);
}

/* Scatter form: every output element adds its share to the a and b elements it read. */
void ams_ref_div_backward(const ams_backend *be, float *da, float *db, const float *dout,
                          const float *a, const float *b, const ams_bcast_desc *d) {
    (void)be;
    int nd = d->ndim;
    AMS_ASSERT(nd >= 1 && nd <= 8);
    int64_t sa[8] = {0}, sb[8] = {0}, idx[8] = {0};
    bcast_strides(sa, d->a, nd);
    bcast_strides(sb, d->b, nd);
    int64_t n = numel(d->out, nd);
    for (int64_t o = 0; o < n; o++) {
        int64_t ia = offset(idx, sa, nd), ib = offset(idx, sb, nd);
        double g = dout[o], bv = b[ib];
        if (da) da[ia] += (float)(g / bv);
        if (db) db[ib] -= (float)(g * a[ia] / (bv * bv));
        advance(idx, d->out, nd);
    }
}
