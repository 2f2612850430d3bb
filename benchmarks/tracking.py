"""Tracking mode (FaceDetector.stream(track=K)) against full detection on every frame: time per
frame and how many of the full detections tracking keeps.

    .venv/bin/python benchmarks/tracking.py [--threads 1] [--frames 90]

No real video clip with faces can be had here, so the clip is made from a real photo: a slow pan
and zoom (640 x 480 frames) over the WIDER FACE photo of frames.py's fixed list on which the
detector finds the most faces (the bundled astronaut if ../shared is absent). Recall = share of the faces that full detection finds on a frame which the
tracking run also returns (IoU >= 0.5); extra = tracking faces that full detection lacks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import frames as frame_sets  # noqa: E402

from mtcnn_fast import FaceDetector  # noqa: E402
from mtcnn_fast.metrics import iou_matrix  # noqa: E402


def make_clip(photo: np.ndarray, count: int, size=(640, 480)) -> list:
    """A pan from left to right while zooming in from 1.0x to 1.3x of the covering scale."""
    w, h = size
    ph, pw = photo.shape[:2]
    clip = []
    for k in range(count):
        t = k / max(count - 1, 1)
        zoom = max(w / pw, h / ph) * (1.0 + 0.3 * t)
        big = cv2.resize(photo, (round(pw * zoom), round(ph * zoom)), interpolation=cv2.INTER_AREA)
        x0 = int((big.shape[1] - w) * t)
        y0 = (big.shape[0] - h) // 2
        clip.append(np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w]))
    return clip


def run(det, clip, track):
    times, out = [], []
    gen = det.stream(clip, track=track)
    while True:
        t = time.perf_counter()
        try:
            _, faces = next(gen)
        except StopIteration:
            break
        times.append((time.perf_counter() - t) * 1000)
        out.append(faces)
    return statistics.median(times), sum(times) / len(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=90)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    det = FaceDetector(device="cpu")
    # The fixed photo on which the detector finds the most faces.
    photo = max(frame_sets.source_photos(), key=lambda p: len(det.detect(p)))
    clip = make_clip(photo, args.frames)
    run(det, clip[:3], 0)  # warm-up
    base_med, base_mean, full = run(det, clip, 0)
    total = sum(len(f) for f in full)
    print(f"clip: {len(clip)} frames of 640x480 from a real photo; {total} face detections in all "
          f"with full detection; {args.threads} thread(s)")
    print(f"{'mode':<14}{'median ms':>10}{'mean ms':>9}{'speed-up':>10}{'recall':>8}{'extra':>7}")
    print(f"{'full':<14}{base_med:>10.1f}{base_mean:>9.1f}{1.0:>10.2f}{1.0:>8.3f}{0:>7}")
    for k in (3, 5, 10):
        med, mean, tracked = run(det, clip, k)
        hit = extra = 0
        for a, b in zip(full, tracked):
            if len(a) and len(b):
                iou = iou_matrix(a.boxes, b.boxes)
                hit += int((iou.max(axis=1) >= 0.5).sum())
                extra += int((iou.max(axis=0) < 0.5).sum())
            else:
                extra += len(b)
        print(f"{'track=' + str(k):<14}{med:>10.1f}{mean:>9.1f}{base_mean / mean:>10.2f}"
              f"{hit / max(total, 1):>8.3f}{extra:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
