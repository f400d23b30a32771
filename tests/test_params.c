/* test_params.c - the flat parameter store: layout, lookups, snapshot and restore
 * (AMS restores the pretrained weights before every training phase). */
#include <string.h>

#include "ams/optim.h"
#include "ams/params.h"
#include "check.h"

static int test_layout_and_errors(void) {
    ams_err err = {0};
    ams_params *p = ams_params_new();
    CHECK(ams_params_add(p, "a", 2, (int64_t[]){2, 3}, 1, &err) == 0);
    CHECK(ams_params_add(p, "b", 1, (int64_t[]){5}, 0, &err) == 1);
    CHECK(ams_params_add(p, "a", 1, (int64_t[]){1}, 1, &err) == AMS_E_INVAL);
    CHECK(strstr(err.msg, "duplicate parameter 'a'"));
    CHECK(ams_params_add(p, "huge", 2, (int64_t[]){INT64_MAX, 4}, 1, &err) == AMS_E_RANGE);
    CHECK(ams_params_add(p, "neg", 1, (int64_t[]){-1}, 1, &err) == AMS_E_RANGE);
    CHECK(ams_params_alloc(p, &err) == AMS_OK);
    CHECK(p->total == 11 && ams_params_trainable_count(p) == 6);
    CHECK(ams_params_data(p, 1) == p->values + 6 && ams_params_grad(p, 1) == p->grads + 6);
    CHECK(ams_params_find(p, "b") == 1 && ams_params_find(p, "c") == -1);
    CHECK(ams_params_add(p, "late", 1, (int64_t[]){1}, 1, &err) == AMS_E_INVAL);
    ams_params_free(p);
    ams_params_free(NULL);
    return 0;
}

static int test_snapshot_restore(void) {
    ams_err err = {0};
    ams_params *p = ams_params_new();
    CHECK(ams_params_add(p, "w", 1, (int64_t[]){64}, 1, &err) == 0);
    CHECK(ams_params_alloc(p, &err) == AMS_OK);
    for (int i = 0; i < 64; i++) p->values[i] = (float)i;
    ams_params *initial = ams_params_clone(p, &err);
    CHECK(initial && initial->values != p->values);
    ams_adam *opt = ams_adam_new(p->total, NULL);
    for (int i = 0; i < 64; i++) p->grads[i] = 1.0f;
    ams_adam_step(opt, p->values, p->grads, NULL);
    CHECK(p->values[3] != 3.0f);
    CHECK(ams_params_copy_values(p, initial, &err) == AMS_OK);
    CHECK(memcmp(p->values, initial->values, 64 * sizeof(float)) == 0);
    ams_params *other = ams_params_new();
    CHECK(ams_params_add(other, "w", 1, (int64_t[]){63}, 1, &err) == 0);
    CHECK(ams_params_alloc(other, &err) == AMS_OK);
    CHECK(ams_params_copy_values(p, other, &err) == AMS_E_SHAPE);
    ams_adam_free(opt);
    ams_params_free(other);
    ams_params_free(initial);
    ams_params_free(p);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"layout_and_errors", test_layout_and_errors},
        {"snapshot_restore", test_snapshot_restore},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
