/* sim_labels.c - teacher labels for the emulator: a TF.js teacher (RVM: alpha > 0.5 = person)
 * run on a video's frames into the label store (until `ams label` provides them). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/sim.h"
#include "ams/video.h"

ams_status ams_sim_make_labels(const ams_tfjs_model *teacher, const char *output,
                               const ams_tfjs_feed *feeds, int nfeeds, const char *video, double fps, int width, int height,
                               double max_seconds, const char *path,
                               ams_sim_progress_fn progress, void *progress_ctx, ams_err *err) {
    AMS_FAIL_IF(!(fps > 0) || fps > 1000, err, AMS_E_INVAL, "labels: fps must be in (0, 1000]");
    AMS_FAIL_IF(width < 1 || height < 1 || width > 4096 || height > 4096, err, AMS_E_INVAL,
                "labels: bad size %dx%d", width, height);
    size_t npix = (size_t)width * (size_t)height;
    ams_video_reader *vr = NULL;
    ams_video_opts vo = {.width = width, .height = height, .threads = 1};
    AMS_TRY(ams_video_open(&vr, video, &vo, err));
    double duration = ams_video_info_get(vr)->duration;
    if (max_seconds > 0 && (duration < 0 || duration > max_seconds)) duration = max_seconds;

    ams_label_info info = {.width = width, .height = height, .classes = 2};
    snprintf(info.meta, sizeof info.meta,
             "{\"teacher\": \"tfjs\", \"rule\": \"output > 0.5\", \"fps\": %g}", fps);
    ams_label_writer *w = NULL;
    ams_graph *g = ams_graph_new(ams_tfjs_params(teacher));
    float *x = malloc(npix * 3 * sizeof(float));
    uint8_t *lab = malloc(npix);
    ams_status st = AMS_OK;
    if (!g || !x || !lab) {
        st = ams_err_set(err, AMS_E_NOMEM, "labels: out of memory");
        goto done;
    }
    ams_tfjs_build_opts bo = {.n = 1, .h = height, .w = width, .feeds = feeds, .nfeeds = nfeeds};
    int in = -1, out = -1;
    const char *outs[1] = {output};
    if ((st = ams_tfjs_build(teacher, g, &bo, output ? outs : NULL, 1, &out, &in, err)) !=
        AMS_OK)
        goto done;
    if ((st = ams_graph_plan(g, AMS_PLAN_INFER, err)) != AMS_OK) goto done;
    int64_t shape[AMS_MAX_DIMS];
    if (ams_graph_shape(g, out, shape) != 4 || shape[1] != height || shape[2] != width ||
        shape[3] != 1) {
        st = ams_err_set(err, AMS_E_SHAPE, "labels: the teacher's output is not (1,%d,%d,1)",
                         height, width);
        goto done;
    }
    if ((st = ams_label_writer_open(&w, path, &info, err)) != AMS_OK) goto done;
    double last = ams_label_writer_last_pts(w);
    for (long k = 0;; k++) {
        double t = (double)k / fps;
        if (duration >= 0 && t >= duration) break;
        if (t <= last + 1e-9) continue; /* resume */
        ams_video_frame f;
        if ((st = ams_video_read_at(vr, t, &f, err)) != AMS_OK) goto done;
        if (!f.rgb) break;
        for (size_t i = 0; i < npix * 3; i++) x[i] = (float)f.rgb[i] / 255.0f;
        if ((st = ams_graph_set_input(g, in, x, err)) != AMS_OK) goto done;
        if ((st = ams_graph_forward(g, ams_backend_ref(), err)) != AMS_OK) goto done;
        const float *y = ams_graph_value(g, out);
        for (size_t i = 0; i < npix; i++) lab[i] = y[i] > 0.5f;
        if ((st = ams_label_writer_append(w, t, lab, err)) != AMS_OK) goto done;
        if (progress) progress(progress_ctx, t, duration, "label");
    }
    st = ams_label_writer_close(w, err);
done:
    ams_label_writer_free(w);
    ams_graph_free(g);
    ams_video_free(vr);
    free(x);
    free(lab);
    return st;
}
