/* test_adapt_horizon.c - the horizon buffer: the time window and the entry cap hold exactly the
 * entries worked out by hand, frames and labels come back byte for byte, batches are the picked
 * entries (as floats), reproducible per seed and uniform over the entries. */
#include "ams/horizon.h"
#include "check.h"

enum { H = 3, W = 4, PIX = H * W };

/* frame k: every byte (k * 7 + j) % 256; label k: every pixel k % 5 */
static void make(int k, uint8_t *rgb, uint8_t *label) {
    for (int j = 0; j < PIX * 3; j++) rgb[j] = (uint8_t)((k * 7 + j) % 256);
    for (int j = 0; j < PIX; j++) label[j] = (uint8_t)(k % 5);
}

static int holds(const ams_horizon *h, int first, int last) {
    CHECKF(ams_horizon_count(h) == (size_t)(last - first + 1), "count %zu, want %d..%d",
           ams_horizon_count(h), first, last);
    uint8_t rgb[PIX * 3], label[PIX];
    for (int k = first; k <= last; k++) {
        size_t i = (size_t)(k - first);
        make(k, rgb, label);
        CHECK(ams_horizon_time(h, i) == (double)k);
        CHECK(memcmp(ams_horizon_frame(h, i), rgb, sizeof rgb) == 0);
        CHECK(memcmp(ams_horizon_label(h, i), label, sizeof label) == 0);
    }
    return 0;
}

static int test_window_and_cap(void) {
    ams_err err = {0};
    ams_horizon *h = ams_horizon_new(H, W, 10.0, 8, &err);
    CHECKF(h, "%s", err.msg);
    uint8_t rgb[PIX * 3], label[PIX];
    /* frames at t = 0..6: all kept (window 10 s, cap 8) */
    for (int k = 0; k <= 6; k++) {
        make(k, rgb, label);
        CHECK(ams_horizon_add(h, k, rgb, label, &err) == AMS_OK);
    }
    CHECK(holds(h, 0, 6) == 0);
    /* t = 7, 8: the cap of 8 pushes out t = 0 */
    for (int k = 7; k <= 8; k++) {
        make(k, rgb, label);
        CHECK(ams_horizon_add(h, k, rgb, label, &err) == AMS_OK);
    }
    CHECK(holds(h, 1, 8) == 0);
    /* t = 13: the window keeps t >= 3, 3..8 and 13 -> not contiguous, check count + ends */
    make(13, rgb, label);
    CHECK(ams_horizon_add(h, 13, rgb, label, &err) == AMS_OK);
    CHECK(ams_horizon_count(h) == 7 && ams_horizon_time(h, 0) == 3 && ams_horizon_time(h, 6) == 13);
    ams_horizon_expire(h, 17.5); /* keeps t >= 7.5 */
    CHECK(ams_horizon_count(h) == 2 && ams_horizon_time(h, 0) == 8);
    CHECK(ams_horizon_add(h, 12, rgb, label, &err) == AMS_E_INVAL); /* back in time */
    CHECK(ams_horizon_add(h, NAN, rgb, label, &err) == AMS_E_INVAL);
    ams_horizon_expire(h, 100);
    CHECK(ams_horizon_count(h) == 0);
    float x[PIX * 3];
    uint8_t y[PIX];
    ams_rng rng;
    ams_rng_seed(&rng, 1);
    CHECK(ams_horizon_batch(h, &rng, 1, x, y, NULL, &err) == AMS_E_INVAL);
    /* after wrapping around many times the ring still holds the right 8 */
    for (int k = 100; k < 150; k++) {
        make(k, rgb, label);
        CHECK(ams_horizon_add(h, k, rgb, label, &err) == AMS_OK);
    }
    CHECK(holds(h, 142, 149) == 0);
    ams_horizon_free(h);
    CHECK(ams_horizon_new(0, W, 10, 8, &err) == NULL);
    CHECK(ams_horizon_new(H, W, 0, 8, &err) == NULL);
    CHECK(ams_horizon_new(H, W, 10, 0, &err) == NULL);
    ams_horizon_free(NULL);
    return 0;
}

static int test_batches(void) {
    ams_horizon *h = ams_horizon_new(H, W, 1000.0, 16, NULL);
    CHECK(h);
    uint8_t rgb[PIX * 3], label[PIX];
    for (int k = 0; k < 5; k++) {
        make(k, rgb, label);
        CHECK(ams_horizon_add(h, k, rgb, label, NULL) == AMS_OK);
    }
    enum { B = 10 };
    static float x[B * PIX * 3], x2[B * PIX * 3];
    uint8_t y[B * PIX], y2[B * PIX];
    size_t picked[B], picked2[B];
    ams_rng a, b;
    ams_rng_seed(&a, 5);
    ams_rng_seed(&b, 5);
    CHECK(ams_horizon_batch(h, &a, B, x, y, picked, NULL) == AMS_OK);
    CHECK(ams_horizon_batch(h, &b, B, x2, y2, picked2, NULL) == AMS_OK);
    CHECK(memcmp(x, x2, sizeof x) == 0 && memcmp(y, y2, sizeof y) == 0);
    CHECK(memcmp(picked, picked2, sizeof picked) == 0);
    for (int i = 0; i < B; i++) {
        CHECK(picked[i] < 5);
        make((int)picked[i], rgb, label);
        for (int j = 0; j < PIX * 3; j++) CHECK(x[i * PIX * 3 + j] == (float)rgb[j]);
        CHECK(memcmp(y + i * PIX, label, PIX) == 0);
    }
    /* pick: the same draws as batch, pointing at the entries' bytes */
    const uint8_t *fr[B], *lb[B];
    size_t picked3[B];
    ams_rng_seed(&a, 5);
    CHECK(ams_horizon_pick(h, &a, B, fr, lb, picked3, NULL) == AMS_OK);
    CHECK(memcmp(picked, picked3, sizeof picked) == 0);
    for (int i = 0; i < B; i++) {
        CHECK(fr[i] == ams_horizon_frame(h, picked[i]) && lb[i] == ams_horizon_label(h, picked[i]));
        for (int j = 0; j < PIX * 3; j++) CHECK(x[i * PIX * 3 + j] == (float)fr[i][j]);
    }
    CHECK(ams_horizon_pick(h, &a, 0, fr, lb, NULL, NULL) == AMS_E_INVAL);
    CHECK(ams_horizon_height(h) == H && ams_horizon_width(h) == W);
    /* uniform: 5 entries, 20000 draws -> each ~4000 (+- 5 sigma ~ 280) */
    int freq[5] = {0};
    for (int r = 0; r < 2000; r++) {
        CHECK(ams_horizon_batch(h, &a, B, x, y, picked, NULL) == AMS_OK);
        for (int i = 0; i < B; i++) freq[picked[i]]++;
    }
    for (int k = 0; k < 5; k++) CHECKF(abs(freq[k] - 4000) < 300, "entry %d drawn %d times", k, freq[k]);
    ams_horizon_free(h);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"window_and_cap", test_window_and_cap},
        {"batches", test_batches},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
