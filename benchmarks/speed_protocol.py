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
from typing import Callable

import frames

SIZE_CHOICES = list(frames.SIZES) + ["wider"]


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--sizes", nargs="+", default=SIZE_CHOICES, choices=SIZE_CHOICES)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", help="write the results here as JSON")


def speed_main(cmd_speed: Callable, description: str, argv=None) -> None:
    """The command line every peer runner has: `<runner> speed --threads T ...`, handed to
    cmd_speed(args)."""
    ap = argparse.ArgumentParser(description=description)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("speed", help="median ms per frame on the shared benchmark frames")
    add_speed_options(p)
    args = ap.parse_args(argv)
    cmd_speed(args)


def speed(detect: Callable, peer: str, args) -> dict:
    """Times detect(rgb) (returning anything with len(): the faces) under the protocol; prints
    a table, writes args.json if given, returns {size: {"median_ms", "faces"}}."""
    results = {}
    for size in args.sizes:
        imgs = frames.wider_photos() if size == "wider" else frames.frames(size, 3)
        for img in imgs:
            for _ in range(2):
                detect(img)
        times, faces = [], 0
        for r in range(args.repeat):
            for img in imgs:
                t0 = time.perf_counter()
                found = detect(img)
                times.append((time.perf_counter() - t0) * 1000.0)
                if r == 0:
                    faces += len(found)
        results[size] = {"median_ms": statistics.median(times), "faces": faces}
        print(f"{size}: {results[size]['median_ms']:.2f} ms ({len(imgs)} frames x {args.repeat})",
              file=sys.stderr, flush=True)
    print(f"{peer}, {args.threads} thread(s), median ms per frame over {args.repeat} round(s)")
    print(f"{'size':<12}{'median ms':>12}{'faces':>8}")
    for size, res in results.items():
        print(f"{size:<12}{res['median_ms']:>12.2f}{res['faces']:>8d}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"peer": peer, "threads": args.threads, "results": results}, indent=2) + "\n")
    return results
