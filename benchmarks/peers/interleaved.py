"""facenet-pytorch 2.6.0 and mtcnn-fast frame by frame in turn, in one process (or each in its own):
the same torch, the same frames, the same minutes of the machine. compare.py runs each implementation after the
other, and on a shared VM whose speed drifts the ratio it prints carries that drift (mtcnn-fast's
own times moved by 1.3 to 1.5x between two compare.py runs minutes apart, benchmarks/README.md);
here each frame is detected by both, one right after the other (which goes first alternates by
round), and the speed-up of a frame size is the median of those paired ratios.

It runs in facenet-pytorch's venv (see peers/facenet_pytorch.py) with mtcnn-fast installed there
too (its core does not link torch, so it runs on that venv's torch):
    /work/peers/facenet/bin/pip install --no-deps .          # from the repo root, or a wheel
    /work/peers/facenet/bin/python benchmarks/peers/interleaved.py --threads 1 2 [--repeat 5] \
        [--sizes 640x480 1280x720 1920x1080 wider] [--processes [--gap 0.01] [--keep-freed-memory]]
Both detectors use the protocol's settings (min face 20, thresholds 0.6 / 0.7 / 0.7, factor
0.709, the CPU); 2 warm-up detections per frame each, then `repeat` rounds of every frame. Each
detector's time is longer than alone (the other refills the caches, and they share one C heap,
which mtcnn-fast trims after each frame of a new size): a ratio, not either's own speed.

--processes runs each detector in a process of its own (same venv, same torch), as a user runs
it: its own C heap and allocator state, nothing of the other's between its calls but the caches.
The frames are still paired: the parent asks one process for a frame, then the other, `--gap`
seconds apart (so that the idle one's OpenMP workers have stopped spinning), and the speed-up
is again the median of the paired ratios, each time taken inside its own process.

--keep-freed-memory (with --processes only: the setting is the whole process's, and in one process
it would be facenet-pytorch's too) runs mtcnn-fast with keep_freed_memory=True, as a service that
opts in to it does: no trim after frames of new sizes, so the WIDER photos' ratio without the
trim's page faults (benchmarks/README.md, issue #18).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

import frames  # noqa: E402
from mtcnn_fast import FaceDetector  # noqa: E402
from speed_protocol import SIZE_CHOICES  # noqa: E402

PEER = "facenet-pytorch 2.6.0"
THRESHOLDS = (0.6, 0.7, 0.7)


def facenet_runner():
    """peers/facenet_pytorch.py as a module (its make_detector and detect), loaded by path: the
    file is named like the package it drives."""
    spec = importlib.util.spec_from_file_location("facenet_runner", HERE / "facenet_pytorch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def size_frames(size: str):
    return frames.wider_photos() if size == "wider" else frames.frames(size, 3)


def make_call(name: str, keep_freed_memory: bool = False):
    """One detector of the protocol's settings: a function of a frame, timed by the caller
    (mtcnn-fast with keep_freed_memory if asked)."""
    if name == PEER:
        runner = facenet_runner()
        peer = runner.make_detector(20.0, THRESHOLDS)
        return lambda img: len(runner.detect(peer, img)[0])
    ours = FaceDetector(min_face_size=20.0, thresholds=THRESHOLDS, device="cpu",
                        keep_freed_memory=keep_freed_memory)
    return lambda img: len(ours.detect(img))


def timed(call, img) -> float:
    t0 = time.perf_counter()
    call(img)
    return time.perf_counter() - t0


def serve(conn, name: str, threads: int, keep_freed_memory: bool = False) -> None:
    """A worker process (--processes): one detector; detects (size, index) when asked and sends
    back the seconds it took, measured here; None ends it."""
    torch.set_num_interop_threads(1)
    torch.set_num_threads(threads)
    call = make_call(name, keep_freed_memory)
    imgs = {}
    conn.send("ready")
    while (job := conn.recv()) is not None:
        size, i = job
        if size not in imgs:
            imgs[size] = size_frames(size)
        conn.send(timed(call, imgs[size][i]))


def run(threads: int, sizes, repeat: int, processes: bool = False, gap: float = 0.0,
        keep_freed_memory: bool = False) -> dict:
    """Each size's paired runs; keep_freed_memory (mtcnn-fast's, with processes only: main checks)."""
    names = [PEER, "mtcnn-fast"]
    workers = {}
    if processes:
        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: nothing inherited
        for name in names:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=serve, args=(child, name, threads, keep_freed_memory),
                               daemon=True)
            proc.start()
            workers[name] = (parent, proc)
        for parent, _ in workers.values():
            if parent.recv() != "ready":
                raise RuntimeError("a worker did not start")

        def detect(name, size, i, img):
            time.sleep(gap)
            conn = workers[name][0]
            conn.send((size, i))
            return conn.recv()
    else:
        torch.set_num_threads(threads)
        calls = {name: make_call(name) for name in names}

        def detect(name, size, i, img):
            return timed(calls[name], img)

    results = {}
    for size in sizes:
        imgs = size_frames(size)
        for i, img in enumerate(imgs):
            for name in names:
                for _ in range(2):
                    detect(name, size, i, img)
        times = {name: [] for name in names}
        ratios = []
        for r in range(repeat):
            order = names if r % 2 == 0 else names[::-1]
            for i, img in enumerate(imgs):
                took = {}
                for name in order:
                    took[name] = detect(name, size, i, img)
                    times[name].append(took[name])
                ratios.append(took[PEER] / took["mtcnn-fast"])
        results[size] = {
            "median_ms": {name: statistics.median(times[name]) * 1000 for name in names},
            "speedup": statistics.median(ratios),
        }
        print(f"{threads}t {size}: " + ", ".join(f"{n} {v:.1f} ms" for n, v in results[size]["median_ms"].items())
              + f"; speed-up {results[size]['speedup']:.2f}x (median of {len(ratios)} paired frames)",
              file=sys.stderr, flush=True)
    for conn, proc in workers.values():
        conn.send(None)
        proc.join()
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", nargs="+", default=SIZE_CHOICES, choices=SIZE_CHOICES)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--processes", action="store_true",
                    help="each detector in a process of its own, the frames still paired")
    ap.add_argument("--gap", type=float, default=0.01,
                    help="--processes: seconds between two detections (default 0.01)")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="--processes: mtcnn-fast with keep_freed_memory=True (no trim after new sizes)")
    args = ap.parse_args(argv)
    if args.gap < 0:
        ap.error("--gap must be >= 0")
    if args.keep_freed_memory and not args.processes:
        ap.error("--keep-freed-memory needs --processes (the setting is the whole process's)")
    torch.set_num_interop_threads(1)  # as both runners do; must precede any parallel work
    table = {t: run(t, args.sizes, args.repeat, args.processes, args.gap, args.keep_freed_memory)
             for t in args.threads}
    where = "each in its own process" if args.processes else "in one process"
    if args.keep_freed_memory:
        where += ", mtcnn-fast with keep_freed_memory"
    print(f"median ms per frame, and the median of paired per-frame ratios {PEER} / mtcnn-fast, "
          f"{where} (torch {torch.__version__})")
    print(f"{'':26s}" + "".join(f"{s:>22s}" for s in args.sizes))
    for t, res in table.items():
        for name in (PEER, "mtcnn-fast"):
            print(f"{name + f' @{t}t':26s}" + "".join(f"{res[s]['median_ms'][name]:22.1f}" for s in args.sizes))
        print(f"{f'speed-up @{t}t':26s}" + "".join(f"{res[s]['speedup']:21.2f}x" for s in args.sizes))


if __name__ == "__main__":
    main()
