"""Agreement of mtcnn-fast with the independent plain implementation (tests/independent_mtcnn.py)
on WIDER FACE validation photos: the share of the plain implementation's faces that mtcnn-fast
also returns at IoU >= 0.95 with all five landmarks within 1 px.

    python benchmarks/agreement.py --root ../shared/data/wider_val_dev [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import independent_mtcnn  # noqa: E402

from mtcnn_fast import FaceDetector  # noqa: E402
from mtcnn_fast.metrics import iou_matrix  # noqa: E402


def agreement(fast, plain):
    """(faces of plain, matched at IoU >= 0.95, matched with landmarks within 1 px)."""
    pb, _, pl = plain
    if len(pb) == 0:
        return 0, 0, 0
    iou = iou_matrix(pb, fast.boxes)
    matched = landmarks_ok = 0
    for i in range(len(pb)):
        if iou.shape[1] == 0:
            break
        j = int(np.argmax(iou[i]))
        if iou[i, j] >= 0.95:
            matched += 1
            if np.linalg.norm(pl[i] - fast.landmarks[j], axis=1).max() <= 1.0:
                landmarks_ok += 1
    return len(pb), matched, landmarks_ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("../shared/data/wider_val_dev"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--step", type=int, default=1, help="use every step-th image")
    args = ap.parse_args(argv)
    records = [json.loads(l) for l in (args.root / "annotations.jsonl").read_text().splitlines()]
    records = records[:: args.step]
    if args.limit:
        records = records[: args.limit]
    det = FaceDetector(device="cpu")
    nets = independent_mtcnn.Nets()
    totals = np.zeros(3, int)
    fast_faces = 0
    for k, rec in enumerate(records):
        img = cv2.cvtColor(cv2.imread(str(args.root / rec["image"])), cv2.COLOR_BGR2RGB)
        fast = det.detect(img)
        fast_faces += len(fast)
        totals += agreement(fast, independent_mtcnn.detect(nets, img))
        if (k + 1) % 20 == 0:
            print(f"{k + 1}/{len(records)} images: {totals.tolist()}", flush=True)
    n, m, l = totals
    print(f"images {len(records)}; faces: plain {n}, mtcnn-fast {fast_faces}")
    print(f"matched at IoU >= 0.95: {m}/{n} = {m / max(n, 1):.4f}")
    print(f"... and landmarks within 1 px: {l}/{n} = {l / max(n, 1):.4f}")


if __name__ == "__main__":
    main()
