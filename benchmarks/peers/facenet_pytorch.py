"""Peer runner for facenet-pytorch 2.6.0's MTCNN, the reference implementation mtcnn-fast is compared with.

It runs in its own virtual environment (outside the repo), never in mtcnn-fast's. Create it with:

    python3 -m venv /work/peers/facenet
    /work/peers/facenet/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/peers/facenet/bin/pip install --no-deps facenet-pytorch==2.6.0
    /work/peers/facenet/bin/pip install pillow tqdm requests numpy opencv-python-headless

(`--no-deps` because facenet-pytorch 2.6.0 pins torch<2.3, numpy<2 and Pillow<10.3; its MTCNN
works with the newer releases above. The P/R/O-Net weights ship inside the wheel, so nothing is
downloaded at run time.) Then, from the repo root:

    # WIDER FACE style detections: one JSON line per image of DIR/annotations.jsonl
    /work/peers/facenet/bin/python benchmarks/peers/facenet_pytorch.py widerface \
        --root ../shared/data/wider_val_dev --out PRED.jsonl \
        [--min-face-size 20] [--thresholds 0.6 0.7 0.7] [--limit N]

    # 5-point landmarks: each 80x80 crop is edge-padded by 40 px to a 160x160 canvas first;
    # boxes and points are written in canvas coordinates
    /work/peers/facenet/bin/python benchmarks/peers/facenet_pytorch.py landmarks \
        --file ../shared/data/landmarks_5pt/test.jsonl --out PRED.jsonl [--min-face-size 20]

    # speed on the shared benchmark frames (benchmarks/frames.py); CPU unless --device cuda
    # (which needs a CUDA build of torch in this venv); --batch B times lists of B frames
    /work/peers/facenet/bin/python benchmarks/peers/facenet_pytorch.py speed --threads T \
        [--sizes 640x480 1280x720 1920x1080 wider] [--repeat 10] [--json OUT.json] \
        [--device cuda] [--batch B]

Every prediction line is {"image": ..., "boxes": [[x1, y1, x2, y2], ...], "scores": [...],
"landmarks": [[[x, y] * 5], ...]}, with empty lists where nothing was found. The detector is always
MTCNN(min_face_size, thresholds, factor=0.709, device='cpu' (or --device), keep_all=True, post_process=False),
fed the RGB uint8 HxWx3 array (facenet-pytorch takes numpy arrays as RGB, same as a PIL image).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Sequence

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent
# This file is named like the package it drives: drop its own folder (sys.path[0] when run as a
# script) so that `import facenet_pytorch` finds the installed package, not this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from facenet_pytorch import MTCNN  # noqa: E402

import frames  # noqa: E402
from speed_protocol import add_device_options, add_speed_options, speed  # noqa: E402

PEER = "facenet-pytorch 2.6.0"
PAD = 40
PROGRESS_EVERY = 50


def make_detector(min_face_size: float, thresholds: Sequence[float], device: str = "cpu") -> MTCNN:
    # select_largest=False only changes the order of the returned faces (by score rather than area);
    # with keep_all=True every face is returned either way.
    return MTCNN(
        min_face_size=min_face_size,
        thresholds=[float(t) for t in thresholds],
        factor=0.709,
        device=device,
        keep_all=True,
        post_process=False,
        select_largest=False,
    )


def detect(detector: MTCNN, rgb: np.ndarray):
    """Runs facenet's detect on one RGB uint8 image; returns (boxes, scores, landmarks) as numpy."""
    boxes, scores, points = detector.detect(np.ascontiguousarray(rgb, dtype=np.uint8), landmarks=True)
    if boxes is None or len(boxes) == 0:
        return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
    return boxes, scores, points


def record(image: str, boxes: np.ndarray, scores: np.ndarray, points: np.ndarray) -> dict:
    return {
        "image": image,
        "boxes": [[float(v) for v in b] for b in boxes],
        "scores": [float(s) for s in scores],
        "landmarks": [[[float(p[0]), float(p[1])] for p in pts] for pts in points],
    }


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_records(detector: MTCNN, items, out: Path, what: str) -> None:
    """items: list of (relative image name, RGB array loader). Writes one JSON line per item."""
    out.parent.mkdir(parents=True, exist_ok=True)
    total, empty, faces = len(items), 0, 0
    start = time.perf_counter()
    with out.open("w") as fh:
        for i, (name, load) in enumerate(items, 1):
            boxes, scores, points = detect(detector, load())
            empty += len(boxes) == 0
            faces += len(boxes)
            fh.write(json.dumps(record(name, boxes, scores, points)) + "\n")
            if i % PROGRESS_EVERY == 0 or i == total:
                fh.flush()
                elapsed = time.perf_counter() - start
                print(f"[{what}] {i}/{total} done, {faces} faces, {empty} with none, {elapsed:.0f}s",
                      file=sys.stderr, flush=True)
    print(f"wrote {total} lines to {out} ({faces} faces; {empty} {what} with no detection)", file=sys.stderr)


def cmd_widerface(args) -> None:
    root = Path(args.root)
    records = read_jsonl(root / "annotations.jsonl")
    if args.limit is not None:
        records = records[: args.limit]
    detector = make_detector(args.min_face_size, args.thresholds)
    items = [(r["image"], (lambda p=root / r["image"]: frames.read_rgb(p))) for r in records]
    run_records(detector, items, Path(args.out), "images")


def padded_crop(path: Path) -> np.ndarray:
    img = frames.read_rgb(path)
    return cv2.copyMakeBorder(img, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)


def cmd_landmarks(args) -> None:
    file = Path(args.file)
    records = read_jsonl(file)
    if args.limit is not None:
        records = records[: args.limit]
    detector = make_detector(args.min_face_size, args.thresholds)
    items = [(r["image"], (lambda p=file.parent / r["image"]: padded_crop(p))) for r in records]
    run_records(detector, items, Path(args.out), "crops")


def detect_many(detector: MTCNN, rgbs: List[np.ndarray]) -> int:
    """facenet-pytorch's batched call (frames of one size in one list); returns the faces found."""
    boxes, _ = detector.detect([np.ascontiguousarray(r, dtype=np.uint8) for r in rgbs])
    return sum(0 if b is None else len(b) for b in boxes)


def cmd_speed(args) -> None:
    torch.set_num_threads(args.threads)
    detector = make_detector(args.min_face_size, args.thresholds, args.device)
    speed(lambda img: detect(detector, img)[0], PEER, args,
          detect_many=lambda rgbs: detect_many(detector, rgbs))

def main(argv=None) -> None:
    torch.set_num_interop_threads(1)  # must precede any parallel work
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def detector_opts(p):
        p.add_argument("--min-face-size", type=float, default=20)
        p.add_argument("--thresholds", type=float, nargs=3, default=[0.6, 0.7, 0.7])

    p = sub.add_parser("widerface", help="detect on every image of ROOT/annotations.jsonl")
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int)
    detector_opts(p)
    p.set_defaults(func=cmd_widerface)

    p = sub.add_parser("landmarks", help="detect on each 80x80 crop, edge-padded to 160x160")
    p.add_argument("--file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int)
    detector_opts(p)
    p.set_defaults(func=cmd_landmarks)

    p = sub.add_parser("speed", help="median ms per frame on the shared benchmark frames")
    add_speed_options(p)
    add_device_options(p)
    detector_opts(p)
    p.set_defaults(func=cmd_speed)

    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
