"""Landmark error and mean signed offset of saved predictions, on landmarks_5pt-style crops.

Used by accuracy.sh to compare detectors on two landmark sets annotated by different people:
AFLW (test.jsonl) and LFW (train.jsonl, which the MTCNN authors' landmark training data comes
from). A detector whose points lean the same way on both has a bias; opposite leanings mean the
two sets place their points differently and a fixed shift cannot help on both.

    # a clean subset of a landmarks_5pt file (the data README's rule: eyes >= 12 px apart)
    python benchmarks/landmark_offsets.py subset --file ../shared/data/landmarks_5pt/train.jsonl \\
        --out benchmarks/results/lfw/subset.jsonl --limit 1500
    # then predictions on it (mtcnn-fast eval landmarks --save-predictions, the peer runners), and
    python benchmarks/landmark_offsets.py score --file SUBSET_OR_TEST.jsonl --predictions A.jsonl B.jsonl \\
        [--shift 0.5 0.5]   # also each file's points moved by half a pixel (facenet-pytorch's offset)

Predictions are in canvas coordinates (each crop centred on a canvas padded by 40 px, as
`mtcnn-fast eval landmarks` and the peer runners make them). The face scored in a crop is the most
confident detection whose box centre lies in the middle half of the crop: the LFW crops' box is
the whole crop, so the IoU rule of `mtcnn-fast eval landmarks` rejects most of their faces.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from mtcnn_fast import evaluation as ev


def cmd_subset(args) -> int:
    src = Path(args.file)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    for line in src.read_text().splitlines():
        if not line.strip():
            continue
        pts = np.asarray(json.loads(line)["landmarks"][0], np.float64)
        if np.linalg.norm(pts[0] - pts[1]) >= args.min_eye_distance:
            kept.append(line)
    kept = kept[: args.limit] if args.limit else kept
    out.write_text("".join(k + "\n" for k in kept))
    # The images stay where they are: link their folders beside the subset.
    for rec in {json.loads(k)["image"].split("/")[0] for k in kept}:
        link = out.parent / rec
        if not link.exists():
            os.symlink((src.parent / rec).resolve(), link)
    print(f"wrote {len(kept)} crops to {out}")
    return 0


def score(samples, pred: dict, shift=(0.0, 0.0)):
    """Per crop: error over the inter-ocular distance and mean signed offset (NaN where no face),
    with the predicted points moved by `shift` pixels first."""
    errors = np.full(len(samples), np.nan)
    offsets = np.full((len(samples), 2), np.nan)
    pad = ev.CANVAS_PAD
    for k, s in enumerate(samples):
        p = pred.get(s.image)
        if p is None or len(p.scores) == 0:
            continue
        lo, hi = s.box[:2] + (s.box[2:] - s.box[:2]) / 4, s.box[2:] - (s.box[2:] - s.box[:2]) / 4
        centre = (p.boxes[:, :2] + p.boxes[:, 2:]) / 2 - pad
        inside = np.all((centre > lo) & (centre < hi), axis=1)
        if not inside.any():
            continue
        j = int(np.flatnonzero(inside)[np.argmax(p.scores[inside])])
        pts = p.landmarks[j] - pad + np.asarray(shift)
        iod = np.linalg.norm(s.points[0] - s.points[1])
        errors[k] = np.linalg.norm(pts - s.points, axis=1).mean() / iod
        offsets[k] = (pts - s.points).mean(axis=0)
    return errors, offsets


def cmd_score(args) -> int:
    samples = ev.load_landmarks_jsonl(Path(args.file))
    results = {}
    for p in args.predictions:
        pred = ev.read_predictions_jsonl(Path(p))
        results[p] = score(samples, pred)
        if args.shift:
            results[f"{p} {args.shift[0]:+g},{args.shift[1]:+g} px"] = score(samples, pred, args.shift)
    both = np.all([np.isfinite(e) for e, _ in results.values()], axis=0)
    print(f"{args.file}: {len(samples)} crops, {int(both.sum())} with a face from every detector")
    print(f"{'predictions':64s} {'found':>6s} {'error':>7s} {'on common':>10s} {'fail>10%':>9s} {'dx px':>7s} {'dy px':>7s}")
    for name, (e, off) in results.items():
        ok = np.isfinite(e)
        print(f"{name:64s} {int(ok.sum()):6d} {100 * e[ok].mean():6.2f}% {100 * e[both].mean():9.2f}% "
              f"{100 * (e[ok] > ev.LANDMARK_FAILURE).mean():8.1f}% {np.nanmean(off[:, 0]):+7.2f} {np.nanmean(off[:, 1]):+7.2f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("subset", help="the crops whose eyes are far enough apart")
    p.add_argument("--file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--min-eye-distance", type=float, default=12.0)
    p.add_argument("--limit", type=int, default=0, help="first N kept crops (0: all)")
    p.set_defaults(func=cmd_subset)
    p = sub.add_parser("score", help="error and mean offset of prediction files")
    p.add_argument("--file", required=True)
    p.add_argument("--predictions", nargs="+", required=True)
    p.add_argument("--shift", nargs=2, type=float, metavar=("DX", "DY"),
                   help="also score every prediction file with its points moved by DX, DY pixels")
    p.set_defaults(func=cmd_score)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
