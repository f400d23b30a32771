#!/usr/bin/env python3
"""demo_report.py - the demo's glue: frames to .npy, and the student-vs-teacher report.

prepare OUT:  OUT/frames.rgb (N x 192 x 256 x 3 uint8) -> OUT/frames.npy (RGB/255 float32)
report OUT VIDEO T0 T1 T2 (start, student done, teacher done; seconds): reads OUT/student.npy and OUT/teacher.npy
    (person probability / alpha), labels person = value > 0.5, and writes OUT/report.md,
    OUT/metrics.json and side-by-side pictures (frame | student | teacher) as raw RGB
    for ffmpeg to turn into PNG.
"""
import json
import sys

import numpy as np

H, W = 192, 256


def prepare(out):
    raw = np.fromfile(out + "/frames.rgb", np.uint8).reshape(-1, H, W, 3)
    np.save(out + "/frames.npy", raw.astype(np.float32) / 255.0)


def iou(a, b):
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float("nan") if union == 0 else inter / union


def overlay(frame, mask, colour):
    img = frame.astype(np.float32)
    img[mask] = 0.45 * img[mask] + 0.55 * np.array(colour, np.float32)
    return img.astype(np.uint8)


def report(out, video, t_student, t_teacher):
    frames = (np.load(out + "/frames.npy") * 255.0 + 0.5).astype(np.uint8)
    student = np.load(out + "/student.npy")[..., 0] > 0.5
    teacher = np.load(out + "/teacher.npy")[..., 0] > 0.5
    n = frames.shape[0]
    rows = []
    for i in range(n):
        person = iou(student[i], teacher[i])
        background = iou(~student[i], ~teacher[i])
        vals = [v for v in (person, background) if v == v]
        tp = np.logical_and(student[i], teacher[i]).sum()
        rows.append(dict(t=i + 0.5, person_iou=person, background_iou=background,
                         miou=float(np.mean(vals)),
                         teacher_person_pct=100.0 * teacher[i].mean(),
                         student_person_pct=100.0 * student[i].mean(),
                         recall=float(tp / max(teacher[i].sum(), 1)),
                         precision=float(tp / max(student[i].sum(), 1))))
    miou = float(np.mean([r["miou"] for r in rows]))
    person = float(np.nanmean([r["person_iou"] for r in rows]))
    summary = dict(video=video, frames=n, size=[H, W], miou=miou, person_iou=person,
                   student_ms_per_frame=1000.0 * float(t_student) / n,
                   teacher_ms_per_frame=1000.0 * float(t_teacher) / n, per_frame=rows)
    with open(out + "/metrics.json", "w") as f:
        json.dump(summary, f, indent=1)
    picks = [0, n // 2, n - 1]
    for k, i in enumerate(picks):
        img = np.concatenate([frames[i], overlay(frames[i], student[i], (255, 40, 40)),
                              overlay(frames[i], teacher[i], (40, 220, 40))], axis=1)
        img.tofile("%s/frame%d.rgbimg" % (out, k))
        with open("%s/frame%d.size" % (out, k), "w") as f:
            f.write("%dx%d" % (img.shape[1], img.shape[0]))
    lines = [
        "# ams demo: the student against the teacher on vtest.avi",
        "",
        "Video: `%s`, %d frames at 1 fps (t = 0.5, 1.5, ... s), scaled to %dx%d (WxH)." % (video, n, W, H),
        "Student: MediaPipe selfie segmentation (106 k parameters, TF.js graph imported by ams).",
        "Teacher: Robust Video Matting (MobileNetV3, 3.7 M parameters), fresh recurrent state,",
        "downsample_ratio 1; person = alpha > 0.5. Both run by `ams infer --model` (reference kernels).",
        "",
        "| metric | value |",
        "|---|---|",
        "| student vs teacher mIoU (person, background; mean over frames) | %.1f |" % (100 * miou),
        "| student vs teacher person IoU | %.1f |" % (100 * person),
        "| student ms / frame | %.1f |" % summary["student_ms_per_frame"],
        "| teacher ms / frame | %.1f |" % summary["teacher_ms_per_frame"],
        "",
        "| t (s) | mIoU | person IoU | teacher person % | student person % | recall | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| %.1f | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |" % (
            r["t"], 100 * r["miou"], 100 * r["person_iou"], r["teacher_person_pct"],
            r["student_person_pct"], r["recall"], r["precision"]))
    lines += ["", "Pictures (frame | student in red | teacher in green): " +
              ", ".join("frame%d.png (t = %.1f s)" % (k, picks[k] + 0.5) for k in range(len(picks))),
              "",
              "The student misses most of the small pedestrians the teacher finds: the gap that",
              "Adaptive Model Streaming closes by fine-tuning the student on teacher labels",
              "(`ams sim`, issue 7, is not built yet)."]
    with open(out + "/report.md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    else:
        t0, t1, t2 = (float(v) for v in sys.argv[4:7])
        report(sys.argv[2], sys.argv[3], t1 - t0, t2 - t1)
