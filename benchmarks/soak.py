"""A long-lived process fed photos of ever new sizes: resident memory and per-frame time.

    python benchmarks/soak.py --frames 1000 --threads 1
    python benchmarks/soak.py --frames 1000 --threads 2
    python benchmarks/soak.py --frames 1000 --threads 1 --callers 4     # 4 threads, one detector
    python benchmarks/soak.py --frames 300 --detector-arg keep_freed_memory=True
    /work/peers/facenet/bin/python benchmarks/soak.py --runner facenet-pytorch --frames 1000
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 python benchmarks/soak.py --frames 1000

Every call gets a new frame: a random crop of one of the source photos (the fixed WIDER list of
benchmarks/frames.py when ../shared is there, else the bundled astronaut tiled 2 x 2) resized to a
random size, width 200..1100 and height 200..1500 (seeded, so runs are comparable). Resident memory
(VmRSS) is read after every frame; the report gives it at the checkpoints, the peak, and the
plateau's growth: the median over the last 50 frames less the median over frames 276 to 325 (the
level, not single frames: with several callers a reading can land while other frames are in
flight). Also the median and 99th percentile time per frame (every frame is a new size, so every
one pays its first-call costs), and per frame the process's minor page faults and system CPU
time (what handing memory back costs: each page given back is faulted in again when next used;
these two move far less than wall time on a shared machine), and the allocator preloaded, if
any (`ld_preload`: jemalloc or tcmalloc serve malloc then, not glibc). One process per
configuration: memory figures from one process say nothing about another.

--runner facenet-pytorch runs facenet-pytorch 2.6's MTCNN (same weights, keep_all, CPU) on the
same frames, from its own venv (benchmarks/peers/facenet_pytorch.py says how to make it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import frames as bench_frames  # noqa: E402

CHECKPOINTS = (0, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def frame_stream(count: int, seed: int):
    """`count` RGB frames of random sizes, made one at a time (so the stream itself holds no
    memory)."""
    photos = bench_frames.source_photos()
    rng = np.random.default_rng(seed)
    for _ in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        ch, cw = int(rng.integers(h // 2, h + 1)), int(rng.integers(w // 2, w + 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out_w, out_h = int(rng.integers(200, 1101)), int(rng.integers(200, 1501))
        crop = photo[y : y + ch, x : x + cw]
        kernel = cv2.INTER_AREA if out_w * out_h < cw * ch else cv2.INTER_LINEAR
        yield np.ascontiguousarray(cv2.resize(crop, (out_w, out_h), interpolation=kernel))


def run(detect, count: int, seed: int, callers: int):
    """Feeds `count` frames to detect() from `callers` threads; returns (rss per frame, seconds
    per frame)."""
    rss, times = [rss_mb()], []
    lock = threading.Lock()
    stream = frame_stream(count, seed)

    def work():
        while True:
            with lock:
                frame = next(stream, None)
            if frame is None:
                return
            t = time.perf_counter()
            detect(frame)
            dt = time.perf_counter() - t
            with lock:
                times.append(dt)
                rss.append(rss_mb())

    threads = [threading.Thread(target=work) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rss, times


def summarize(rss, times, count):
    marks = {n: round(rss[n], 1) for n in CHECKPOINTS if n < len(rss)}
    marks[count] = round(rss[min(count, len(rss) - 1)], 1)
    plateau = None
    if len(rss) > 375:
        plateau = round(float(np.median(rss[-50:]) - np.median(rss[276:326])), 1)
    return {
        "rss_mb": marks,
        "peak_mb": round(max(rss), 1),
        "peak_after_300_mb": round(max(rss[300:]), 1) if len(rss) > 300 else None,
        "growth_300_to_end_mb": plateau,
        "median_ms": round(float(np.median(times)) * 1e3, 1),
        "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--callers", type=int, default=1, help="threads calling one shared detector")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detector-arg", action="append", default=[], metavar="NAME=VALUE",
                    help="a FaceDetector keyword argument (Python literal), e.g. keep_freed_memory=True")
    ap.add_argument("--runner", choices=["mtcnn-fast", "facenet-pytorch"], default="mtcnn-fast")
    ap.add_argument("--json", type=Path, help="append the result as one JSON line to this file")
    args = ap.parse_args(argv)

    import ast

    import torch

    torch.set_num_threads(args.threads)
    kwargs = {}
    for item in args.detector_arg:
        name, _, value = item.partition("=")
        kwargs[name] = ast.literal_eval(value)
    if args.runner == "facenet-pytorch":
        from facenet_pytorch import MTCNN

        peer = MTCNN(keep_all=True, device="cpu", post_process=False, **kwargs)

        def detect(frame):
            return peer.detect(frame, landmarks=True)
    else:
        from mtcnn_fast import FaceDetector

        detect = FaceDetector(device="cpu", **kwargs).detect
    before = resource.getrusage(resource.RUSAGE_SELF)
    rss, times = run(detect, args.frames, args.seed, args.callers)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cost = {"page_faults_per_frame": round((after.ru_minflt - before.ru_minflt) / args.frames),
            "system_ms_per_frame": round((after.ru_stime - before.ru_stime) * 1e3 / args.frames, 1)}
    result = {"runner": args.runner, "threads": args.threads, "callers": args.callers,
              "frames": args.frames, "seed": args.seed, "detector_args": kwargs,
              "torch": torch.__version__, "ld_preload": os.environ.get("LD_PRELOAD") or None,
              **summarize(rss, times, args.frames), **cost}
    print(json.dumps(result))
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
