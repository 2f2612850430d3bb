"""What idle threads that once ran torch do to `detect` in another thread.

    .venv/bin/python benchmarks/idle_threads.py [--threads 2] [--idle 1] [--rounds 3]

A thread that has run a parallel torch operation (a `detect` call) with torch at T > 1 threads
keeps its own OpenMP team of T - 1 workers while it lives. libgomp (the OpenMP runtime torch
ships) counts those workers, and once it counts more threads than cores it stops spinning
between parallel regions: every later region, in every thread, waits for its team to wake up.
This script times `detect` on the fixed WIDER photos (benchmarks/frames.py; the sample photo
if ../shared is absent) in the main thread three ways: alone, while `--idle` threads that each
called `detect` once wait on an event, and after those threads have ended. Medians of
`--rounds` passes, ms per photo. Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import frames  # noqa: E402

from mtcnn_fast import FaceDetector  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--idle", type=int, default=1, help="idle threads that called detect once (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the photos per setting (default 3)")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.idle < 1 or args.rounds < 1:
        ap.error("--threads, --idle and --rounds must be at least 1")

    torch.set_num_threads(args.threads)
    det = FaceDetector(device="cpu")
    photos = frames.wider_photos(10)

    def per_photo() -> float:
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            for p in photos:
                det.detect(p)
            times.append((time.perf_counter() - t) * 1000 / len(photos))
        return statistics.median(times)

    per_photo()  # warm-up
    alone = per_photo()
    release = threading.Event()

    def idle() -> None:
        det.detect(photos[0])
        release.wait()

    workers = [threading.Thread(target=idle) for _ in range(args.idle)]
    for w in workers:
        w.start()
    time.sleep(1.0)  # their detect calls are done; their OpenMP workers have gone to sleep
    with_idle = per_photo()
    release.set()
    for w in workers:
        w.join()
    after = per_photo()
    print(f"{len(photos)} photos, torch at {args.threads} thread(s), {args.idle} idle thread(s); "
          f"ms per photo, median of {args.rounds} passes")
    print(f"alone {alone:.1f}   with the idle threads {with_idle:.1f} ({with_idle / alone:.2f}x)   "
          f"after they ended {after:.1f} ({after / alone:.2f}x)")


if __name__ == "__main__":
    main()
