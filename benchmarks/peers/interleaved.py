"""facenet-pytorch 2.6.0 and mtcnn-fast in one process, frame by frame in turn: the same torch,
the same frames, the same minutes of the machine. compare.py runs each implementation after the
other, and on a shared VM whose speed drifts the ratio it prints carries that drift (mtcnn-fast's
own times moved by 1.3 to 1.5x between two compare.py runs minutes apart, benchmarks/README.md);
here each frame is detected by both, one right after the other (which goes first alternates by
round), and the speed-up of a frame size is the median of those paired ratios.

It runs in facenet-pytorch's venv (see peers/facenet_pytorch.py) with mtcnn-fast installed there
too (its core does not link torch, so it runs on that venv's torch):
    /work/peers/facenet/bin/pip install --no-deps .          # from the repo root, or a wheel
    /work/peers/facenet/bin/python benchmarks/peers/interleaved.py --threads 1 2 [--repeat 5] \
        [--sizes 640x480 1280x720 1920x1080 wider]
Both detectors use the protocol's settings (min face 20, thresholds 0.6 / 0.7 / 0.7, factor
0.709, the CPU); 2 warm-up detections per frame each, then `repeat` rounds of every frame. Each
detector's time is longer than alone (the other refills the caches, and they share one C heap,
which mtcnn-fast trims after each frame of a new size): a ratio, not either's own speed.
"""

from __future__ import annotations

import argparse
import importlib.util
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


def run(threads: int, sizes, repeat: int) -> dict:
    torch.set_num_threads(threads)
    runner = facenet_runner()
    peer = runner.make_detector(20.0, THRESHOLDS)
    ours = FaceDetector(min_face_size=20.0, thresholds=THRESHOLDS, device="cpu")
    calls = {PEER: lambda img: len(runner.detect(peer, img)[0]), "mtcnn-fast": lambda img: len(ours.detect(img))}
    names = list(calls)
    results = {}
    for size in sizes:
        imgs = frames.wider_photos() if size == "wider" else frames.frames(size, 3)
        for img in imgs:
            for name in names:
                for _ in range(2):
                    calls[name](img)
        times = {name: [] for name in names}
        ratios = []
        for r in range(repeat):
            order = names if r % 2 == 0 else names[::-1]
            for img in imgs:
                took = {}
                for name in order:
                    t0 = time.perf_counter()
                    calls[name](img)
                    took[name] = time.perf_counter() - t0
                    times[name].append(took[name])
                ratios.append(took[PEER] / took["mtcnn-fast"])
        results[size] = {
            "median_ms": {name: statistics.median(times[name]) * 1000 for name in names},
            "speedup": statistics.median(ratios),
        }
        print(f"{threads}t {size}: " + ", ".join(f"{n} {v:.1f} ms" for n, v in results[size]["median_ms"].items())
              + f"; speed-up {results[size]['speedup']:.2f}x (median of {len(ratios)} paired frames)",
              file=sys.stderr, flush=True)
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", nargs="+", default=SIZE_CHOICES, choices=SIZE_CHOICES)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_interop_threads(1)  # as both runners do; must precede any parallel work
    table = {t: run(t, args.sizes, args.repeat) for t in args.threads}
    print(f"median ms per frame, and the median of paired per-frame ratios {PEER} / mtcnn-fast "
          f"(torch {torch.__version__})")
    print(f"{'':26s}" + "".join(f"{s:>22s}" for s in args.sizes))
    for t, res in table.items():
        for name in (PEER, "mtcnn-fast"):
            print(f"{name + f' @{t}t':26s}" + "".join(f"{res[s]['median_ms'][name]:22.1f}" for s in args.sizes))
        print(f"{f'speed-up @{t}t':26s}" + "".join(f"{res[s]['speedup']:21.2f}x" for s in args.sizes))


if __name__ == "__main__":
    main()
