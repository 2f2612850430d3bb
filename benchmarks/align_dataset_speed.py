"""Throughput of align_dataset (mtcnn-fast align-dataset): images per second at 1 and 2 worker
processes, one torch thread each, against the detector alone on images already in memory.

    .venv/bin/python benchmarks/align_dataset_speed.py [--folder DIR] [--limit 120]
        [--workers 1 2] [--threads 1] [--margin 0.2] [--ray-cpus N]

The images are the first --limit images (sorted by path) under --folder, default the shared WIDER
FACE subset (../shared/data/wider_val_dev/WIDER_val/images; the bundled sample photo, repeated,
when that is absent). They are linked into a temporary folder, and every run writes into a fresh
output folder, so nothing is skipped as already done. Wall time includes starting the worker
processes (each imports torch and builds its detector), so use enough images that this start
matters little. --ray-cpus N also times the Ray path on a local Ray instance with N CPUs (needs
mtcnn-fast[ray]). Time nothing while another heavy job runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from mtcnn_fast import FaceDetector
from mtcnn_fast.cli import sample_image_path
from mtcnn_fast.dataset import align_dataset, decode_image, list_images

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "wider_val_dev" / "WIDER_val" / "images"


def link_images(folder: Path, limit: int, into: Path) -> int:
    """Symlinks the first `limit` images under folder into `into` (tree kept); their count."""
    if folder.is_dir():
        chosen = [folder / rel for rel in list_images(folder)[:limit]]
        names = [p.relative_to(folder) for p in chosen]
    else:
        print(f"{folder} not found: using the bundled sample photo {limit} times", file=sys.stderr)
        chosen = [sample_image_path()] * limit
        names = [Path(f"sample_{k:05d}.png") for k in range(limit)]
    for src, name in zip(chosen, names):
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.abspath(src), target)
    return len(chosen)


def detect_only(folder: Path, threads: int) -> tuple:
    """The detector alone, one thread, on images decoded beforehand: (seconds, images)."""
    images = [decode_image((folder / rel).read_bytes()) for rel in list_images(folder)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        det = FaceDetector(device="cpu")
        det.detect(images[0])  # warm-up
        start = time.perf_counter()
        for img in images:
            det.detect(img)
        return time.perf_counter() - start, len(images)
    finally:
        torch.set_num_threads(before)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="folder of images")
    ap.add_argument("--limit", type=int, default=120, help="number of images (first, sorted)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (1 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (1)")
    ap.add_argument("--margin", type=float, default=None, help="also write margin crops")
    ap.add_argument("--ray-cpus", type=int, default=0, help="also time the Ray path on N local CPUs")
    args = ap.parse_args(argv)
    if args.limit < 1:
        ap.error("--limit must be >= 1")

    rows = []
    with tempfile.TemporaryDirectory(prefix="align_dataset_speed_") as tmp:
        images = Path(tmp) / "images"
        count = link_images(args.folder, args.limit, images)
        seconds, n = detect_only(images, args.threads)
        rows.append(("detect only, decoded", 1, args.threads, n, seconds))
        for workers in args.workers:
            start = time.perf_counter()
            summary = align_dataset(images, Path(tmp) / f"out_w{workers}", workers=workers,
                                    threads=args.threads, device="cpu", margin=args.margin,
                                    progress=False)
            rows.append(("align_dataset", workers, args.threads, summary.processed,
                         time.perf_counter() - start))
        if args.ray_cpus:
            import ray

            ray.init(num_cpus=args.ray_cpus)
            try:
                workers = max(1, (args.ray_cpus - 1) // args.threads)
                start = time.perf_counter()
                summary = align_dataset(images, Path(tmp) / "out_ray", workers=workers, ray=True,
                                        threads=args.threads, device="cpu", margin=args.margin,
                                        progress=False)
                rows.append((f"align_dataset --ray ({args.ray_cpus} CPUs)", workers, args.threads,
                             summary.processed, time.perf_counter() - start))
            finally:
                ray.shutdown()

    print(f"\n{count} images from {args.folder if args.folder.is_dir() else 'the sample photo'}; "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"{'run':<32} {'workers':>7} {'threads':>7} {'images':>6} {'wall s':>8} {'img/s':>7}")
    for name, workers, threads, n, secs in rows:
        print(f"{name:<32} {workers:>7} {threads:>7} {n:>6} {secs:>8.2f} {n / secs:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
