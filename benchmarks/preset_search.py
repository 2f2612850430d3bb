"""The WIDER FACE preset: each idea measured on its own and together on ../shared/data/wider_val_dev.

    python benchmarks/preset_search.py                     # every configuration below
    python benchmarks/preset_search.py original flip       # some of them
    python benchmarks/preset_search.py --table             # the markdown table of accuracy.md

Each configuration is a set of FaceDetector keyword arguments (the cascade and the original
weights unchanged). For each, the detector runs over the 538 photos (torch at --threads, default
2, the figure the issue asks for), the official protocol scores easy / medium / hard AP
(mtcnn_fast.evaluation), and one JSON line goes to --out with the AP, the mean time per photo
and the easy faces' recall ceiling (the share with any detection at IoU >= 0.5). "top-K" rows
keep only the K best-scored detections per photo of another configuration's predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "wider_val_dev"
OUT = REPO / "benchmarks" / "results" / "preset_search.jsonl"
TIMING = REPO / "benchmarks" / "results" / "preset_timing.jsonl"
PUBLISHED = {"easy": 0.851, "medium": 0.820, "hard": 0.607}

CONFIGS = {
    "original": {},
    "thresholds 0.5/0.5/0.5": {"thresholds": (0.5, 0.5, 0.5)},
    "thresholds 0.4/0.4/0.5": {"thresholds": (0.4, 0.4, 0.5)},
    "thresholds 0.3/0.3/0.4": {"thresholds": (0.3, 0.3, 0.4)},
    "min face 10": {"min_face_size": 10.0},
    "scale factor 0.8": {"scale_factor": 0.8},
    "final NMS 0.9 (min)": {"nms_thresholds": (0.5, 0.7, 0.7, 0.9)},
    "flip + box voting": {"flip": True},
    "min 10, 0.4/0.4/0.5": {"min_face_size": 10.0, "thresholds": (0.4, 0.4, 0.5)},
    "min 10, 0.3/0.3/0.4": {"min_face_size": 10.0, "thresholds": (0.3, 0.3, 0.4)},
    "min 10, 0.4/0.4/0.5, flip": {"min_face_size": 10.0, "thresholds": (0.4, 0.4, 0.5), "flip": True},
    "min 10, 0.4/0.4/0.5, scale 0.8": {"min_face_size": 10.0, "thresholds": (0.4, 0.4, 0.5), "scale_factor": 0.8},
    "final NMS 0.5 (min)": {"nms_thresholds": (0.5, 0.7, 0.7, 0.5)},
    "0.4/0.4/0.5, flip": {"thresholds": (0.4, 0.4, 0.5), "flip": True},
    "0.3/0.3/0.4, flip": {"thresholds": (0.3, 0.3, 0.4), "flip": True},
    "0.4/0.4/0.5, flip, scale 0.8": {"thresholds": (0.4, 0.4, 0.5), "flip": True, "scale_factor": 0.8},
    "min 10, 0.3/0.3/0.4, flip": {"min_face_size": 10.0, "thresholds": (0.3, 0.3, 0.4), "flip": True},
    "min 10, 0.2/0.2/0.3, flip": {"min_face_size": 10.0, "thresholds": (0.2, 0.2, 0.3), "flip": True},
    "min 14, 0.4/0.4/0.5, flip": {"min_face_size": 14.0, "thresholds": (0.4, 0.4, 0.5), "flip": True},
    "min 12, 0.3/0.3/0.4, flip": {"min_face_size": 12.0, "thresholds": (0.3, 0.3, 0.4), "flip": True},
}


def recall_ceiling(gt, predictions, setting="easy") -> float:
    """Share of the setting's faces with any detection at IoU >= 0.5 (+1 areas, as the protocol)."""
    from mtcnn_fast.metrics import iou_matrix

    hit = total = 0
    for g in gt:
        faces = g.boxes[g.keep[setting]]
        total += len(faces)
        boxes = predictions[g.image].boxes
        if len(faces) and len(boxes):
            hit += int((iou_matrix(faces, boxes, plus_one=True).max(axis=1) >= 0.5).sum())
    return hit / max(total, 1)


def top_k(predictions, k):
    from mtcnn_fast.evaluation import Prediction

    out = {}
    for name, p in predictions.items():
        order = np.argsort(-p.scores, kind="stable")[:k]
        out[name] = Prediction(p.boxes[order], p.scores[order], None if p.landmarks is None else p.landmarks[order])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="*", help=f"names among {list(CONFIGS)} (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--top-k", type=int, nargs="*", default=[],
                    help="also score the K best detections per photo of each configuration")
    ap.add_argument("--table", action="store_true", help="print the table of --out and stop")
    ap.add_argument("--timing", type=int, default=0, metavar="N",
                    help="only time the configurations on N photos spread over the set (seconds per photo "
                         "at --threads, wall and CPU; run it on an otherwise idle machine) and stop")
    args = ap.parse_args(argv)
    if args.table:
        times = {}
        if TIMING.is_file():
            for line in TIMING.read_text().splitlines():
                t = json.loads(line)
                times[t["name"]] = t["wall_seconds_per_photo"]
        base = times.get("original")
        print("| setting | easy | medium | hard | easy recall ceiling | s per photo | x original |")
        print("|---|---|---|---|---|---|---|")
        print(f"| published (full validation set) | {PUBLISHED['easy']} | {PUBLISHED['medium']} | {PUBLISHED['hard']} | | | |")
        rows = {}
        for line in args.out.read_text().splitlines():  # the last run of each configuration
            r = json.loads(line)
            rows[r["name"]] = r
        for r in rows.values():
            t = times.get(r["name"])
            cost = f"{t:.3f} | {t / base:.1f}" if t is not None and base else " | "
            print(f"| {r['name']} | {r['easy']:.4f} | {r['medium']:.4f} | {r['hard']:.4f} | "
                  f"{r['easy_recall']:.3f} | {cost} |")
        return 0

    import torch

    from mtcnn_fast import FaceDetector
    from mtcnn_fast import evaluation as ev
    from mtcnn_fast._input import read_rgb

    if not (DATA / "annotations.jsonl").is_file():
        raise SystemExit(f"needs {DATA}")
    torch.set_num_threads(args.threads)
    gt = ev.load_widerface_jsonl(DATA)
    photos = [(g.image, read_rgb(DATA / g.image)) for g in gt]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.timing:
        for name in args.configs or list(CONFIGS):
            det = FaceDetector(device="cpu", **CONFIGS[name])
            det.detect(photos[0][1])
            wall, cpu = time.perf_counter(), time.process_time()
            sample = photos[:: max(1, len(photos) // args.timing)][: args.timing]  # spread over the set
            for _, rgb in sample:
                det.detect(rgb)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            row = {"name": name, "photos": args.timing, "threads": args.threads,
                   "cpu_seconds_per_photo": round(cpu / args.timing, 4),
                   "wall_seconds_per_photo": round(wall / args.timing, 4)}
            print(json.dumps(row), flush=True)
            with TIMING.open("a") as f:
                f.write(json.dumps(row) + "\n")
        return 0
    for name in args.configs or list(CONFIGS):
        det = FaceDetector(device="cpu", **CONFIGS[name])
        det.detect(photos[0][1])  # warm-up
        predictions, start = {}, time.perf_counter()
        for image, rgb in photos:
            faces = det.detect(rgb)
            predictions[image] = ev.Prediction(faces.boxes.astype(np.float64), faces.scores.astype(np.float64),
                                               faces.landmarks.astype(np.float64))
        seconds = (time.perf_counter() - start) / len(photos)
        variants = [(name, predictions)] + [(f"{name}, top {k}", top_k(predictions, k)) for k in args.top_k]
        for label, preds in variants:
            results = ev.evaluate_widerface(gt, preds)
            row = {"name": label, "settings": {k: v for k, v in CONFIGS[name].items()},
                   **{s: round(r.ap, 4) for s, r in results.items()},
                   "easy_recall": round(recall_ceiling(gt, preds), 4),
                   "seconds_per_photo": round(seconds, 3), "threads": args.threads,
                   "detections": int(sum(len(p.scores) for p in preds.values()))}
            print(json.dumps(row), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
