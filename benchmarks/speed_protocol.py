"""The speed protocol every runner in benchmarks/peers/ follows, mtcnn-fast's included, so that
their figures compare: the frames of frames.py (3 per size, or the fixed WIDER photos), 2 warm-up
detections per frame, then `repeat` rounds of detecting every frame once, each call timed with
time.perf_counter; the median ms per frame per size, and the faces found in the first round.
Depends only on the standard library and frames.py (numpy, OpenCV), so every peer venv can use it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import frames

SIZE_CHOICES = list(frames.SIZES) + ["wider"]


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--sizes", nargs="+", default=SIZE_CHOICES, choices=SIZE_CHOICES)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", help="write the results here as JSON")


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """For the runners that can use a GPU and take several frames per call (mtcnn-fast and
    facenet-pytorch)."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--batch", type=int, default=1,
                        help="frames per call (same-size frames only, so WIDER photos are skipped "
                             "when > 1); the time reported is per frame")


def speed_main(cmd_speed: Callable, description: str, argv=None) -> None:
    """The command line every peer runner has: `<runner> speed --threads T ...`, handed to
    cmd_speed(args)."""
    ap = argparse.ArgumentParser(description=description)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("speed", help="median ms per frame on the shared benchmark frames")
    add_speed_options(p)
    args = ap.parse_args(argv)
    cmd_speed(args)


def speed(detect: Callable, peer: str, args, detect_many: Optional[Callable] = None) -> dict:
    """Times detect(rgb) (returning anything with len(): the faces) under the protocol; prints
    a table, writes args.json if given, returns {size: {"median_ms", "faces"}}.

    With args.batch = B > 1 (add_device_options), detect_many(list of B frames) -> faces found in
    all of them is timed instead, on B frames cycled from the size's 3, and each call's time is
    divided by B: the median ms per frame of a batched call."""
    batch = getattr(args, "batch", 1)
    device = getattr(args, "device", "cpu")
    if batch < 1:
        raise SystemExit("--batch must be >= 1")
    if batch > 1 and detect_many is None:
        raise SystemExit(f"{peer}: this runner has no batched detection")
    results = {}
    for size in args.sizes:
        if batch > 1 and size == "wider":
            print("wider: skipped (batches need frames of one size)", file=sys.stderr, flush=True)
            continue
        imgs = frames.wider_photos() if size == "wider" else frames.frames(size, 3)
        if batch > 1:
            group = [imgs[i % len(imgs)] for i in range(batch)]
            calls = [lambda g=group: detect_many(g)]
        else:
            calls = [lambda img=img: len(detect(img)) for img in imgs]
        for call in calls:
            for _ in range(2):
                call()
        times, faces = [], 0
        for r in range(args.repeat):
            for call in calls:
                t0 = time.perf_counter()
                found = call()
                times.append((time.perf_counter() - t0) * 1000.0 / batch)
                if r == 0:
                    faces += found
        results[size] = {"median_ms": statistics.median(times), "faces": faces}
        print(f"{size}: {results[size]['median_ms']:.2f} ms ({len(calls) * batch} frames x {args.repeat})",
              file=sys.stderr, flush=True)
    where = f", {device}" if device != "cpu" else ""
    per_call = f", batches of {batch}" if batch > 1 else ""
    print(f"{peer}, {args.threads} thread(s){where}{per_call}, median ms per frame over {args.repeat} round(s)")
    print(f"{'size':<12}{'median ms':>12}{'faces':>8}")
    for size, res in results.items():
        print(f"{size:<12}{res['median_ms']:>12.2f}{res['faces']:>8d}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"peer": peer, "threads": args.threads,
                                   "device": device, "batch": batch,
                                   "results": results}, indent=2) + "\n")
    return results
