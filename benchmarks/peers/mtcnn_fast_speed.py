"""mtcnn-fast under exactly the protocol of the peer speed runners (benchmarks/peers/*.py speed):
the frames of benchmarks/frames.py, 2 warm-up detections per frame, then R rounds of detecting
every frame once, timing each call; the median ms per frame is reported per size.

    .venv/bin/python benchmarks/peers/mtcnn_fast_speed.py --threads T [--sizes ...] [--repeat R] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import frames  # noqa: E402

from mtcnn_fast import FaceDetector, __version__  # noqa: E402

PEER = f"mtcnn-fast {__version__}"


def main(argv=None) -> None:
    torch.set_num_interop_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1280x720", "1920x1080", "wider"],
                    choices=list(frames.SIZES) + ["wider"])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--min-face-size", type=float, default=20)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    detector = FaceDetector(min_face_size=args.min_face_size, device="cpu")
    results = {}
    for size in args.sizes:
        imgs = frames.wider_photos() if size == "wider" else frames.frames(size, 3)
        for img in imgs:
            for _ in range(2):
                detector.detect(img)
        times, faces = [], 0
        for r in range(args.repeat):
            for img in imgs:
                t0 = time.perf_counter()
                found = detector.detect(img)
                times.append((time.perf_counter() - t0) * 1000.0)
                if r == 0:
                    faces += len(found)
        results[size] = {"median_ms": statistics.median(times), "faces": faces}
    print(f"{PEER}, {args.threads} thread(s), median ms per frame over {args.repeat} round(s)")
    print(f"{'size':<12}{'median ms':>12}{'faces':>8}")
    for size, res in results.items():
        print(f"{size:<12}{res['median_ms']:>12.2f}{res['faces']:>8d}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"peer": PEER, "threads": args.threads, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
