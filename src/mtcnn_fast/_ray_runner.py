"""align_dataset's Ray runner: Ray Data reads and decodes the images in tasks, a pool of detector
actors analyses them, and tasks write the crops and records. Ray is imported only when this
runner runs (pip install 'mtcnn-fast[ray]')."""

from __future__ import annotations

import os

import numpy as np

from ._dataset_records import ALIGNED, MARGIN, _analyse, _Config, _crop_name, _write_image
from ._input import decode_image


def _ray_decode(batch, in_dir: str):
    """Ray Data task: file bytes -> raw RGB pixels (same decoder as the local path)."""
    rels, pixels, heights, widths, errors = [], [], [], [], []
    for path, data in zip(batch["path"], batch["bytes"]):
        rel = os.path.relpath(str(path), in_dir).replace(os.sep, "/")
        if rel.startswith("../") or os.path.isabs(rel):
            raise RuntimeError(f"Ray Data returned the path {path!r}, outside {in_dir!r}")
        rels.append(rel)
        try:
            rgb = decode_image(bytes(data))
            pixels.append(rgb.tobytes())
            heights.append(rgb.shape[0])
            widths.append(rgb.shape[1])
            errors.append("")
        except ValueError as e:
            pixels.append(b"")
            heights.append(0)
            widths.append(0)
            errors.append(str(e))
    return {"rel": np.array(rels, dtype=object), "pixels": np.array(pixels, dtype=object),
            "height": np.array(heights, np.int64), "width": np.array(widths, np.int64),
            "error": np.array(errors, dtype=object)}


class _RayDetector:
    """Ray Data actor: one FaceDetector; pixels -> record text and raw crops."""

    def __init__(self, cfg: _Config, threads: int, device: str) -> None:
        import torch

        torch.set_num_threads(threads)
        self.cfg = cfg
        self.det = cfg.make_detector(device=device)

    def __call__(self, batch):
        texts, aligned, margins, counts = [], [], [], []
        for rel, pix, h, w, error in zip(batch["rel"], batch["pixels"], batch["height"],
                                         batch["width"], batch["error"]):
            rgb = None if error else np.frombuffer(bytes(pix), np.uint8).reshape(int(h), int(w), 3)
            text, n, files = _analyse(self.cfg, self.det, str(rel), rgb, str(error) or None)
            texts.append(text)
            counts.append(n)
            aligned.append(b"".join(a.tobytes() for name, a in files if name.startswith(ALIGNED + "/")))
            margins.append(b"".join(a.tobytes() for name, a in files if name.startswith(MARGIN + "/")))
        return {"rel": batch["rel"], "record": np.array(texts, dtype=object),
                "faces": np.array(counts, np.int64), "error": batch["error"],
                "aligned": np.array(aligned, dtype=object), "margin": np.array(margins, dtype=object)}


def _ray_write(batch, cfg: _Config):
    """Ray Data task: writes a batch of images' crops and records (each atomically, an image's
    record after its crops), as the local writer thread does."""
    for rel, text, n, aligned, margin in zip(batch["rel"], batch["record"], batch["faces"],
                                             batch["aligned"], batch["margin"]):
        rel, n = str(rel), int(n)
        a = np.frombuffer(bytes(aligned), np.uint8).reshape(n, cfg.size, cfg.size, 3)
        m = (np.frombuffer(bytes(margin), np.uint8).reshape(n, cfg.margin_size, cfg.margin_size, 3)
             if cfg.margin is not None else None)
        files = []
        for k in range(n):
            files.append((_crop_name(ALIGNED, rel, k), a[k]))
            if m is not None:
                files.append((_crop_name(MARGIN, rel, k), m[k]))
        _write_image(cfg.out_dir, rel, str(text), files)
    return {"rel": batch["rel"], "faces": batch["faces"], "error": batch["error"]}


def _run_ray(cfg: _Config, jobs: list[str], address: bool | str, workers: int,
             threads: int, report) -> None:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ImportError("the Ray path needs Ray: pip install 'mtcnn-fast[ray]' "
                          "(or pip install 'ray[data]>=2.9')") from e

    started = False
    if not ray.is_initialized():
        ray.init(address=address if isinstance(address, str) else None)
        started = True
    try:
        device = str(cfg.detector.get("device", "auto"))
        if device == "auto":
            gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        else:
            gpus = 1 if device.startswith("cuda") else 0
        # The actors hold their CPUs for the whole run; the read, decode and write tasks need at
        # least one more, or the pipeline waits for ever.
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if workers * threads >= cpus:
            raise ValueError(f"the Ray cluster has {cpus} CPU(s): {workers} detector actor(s) x "
                             f"{threads} thread(s) must leave at least one for reading and writing "
                             f"(use workers <= {max(cpus - 1, 0) // threads})")
        # Each actor sees the GPU Ray gives it as "cuda"; "cuda:N" would name another.
        actor_device = ("cuda" if gpus else "cpu") if device != "auto" else "auto"
        paths = [os.path.join(cfg.in_dir, rel) for rel in jobs]
        ds = ray.data.read_binary_files(paths, include_paths=True)
        ds = ds.map_batches(_ray_decode, fn_kwargs={"in_dir": cfg.in_dir}, batch_size=4,
                            batch_format="numpy")
        ds = ds.map_batches(_RayDetector, fn_constructor_kwargs={"cfg": cfg, "threads": threads,
                                                                 "device": actor_device},
                            compute=ray.data.ActorPoolStrategy(size=workers), batch_size=1,
                            batch_format="numpy", num_cpus=threads, num_gpus=gpus)
        ds = ds.map_batches(_ray_write, fn_kwargs={"cfg": cfg}, batch_size=4, batch_format="numpy")
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for rel, n, error in zip(batch["rel"], batch["faces"], batch["error"]):
                report(str(rel), int(n), str(error) or None)
    finally:
        if started:
            ray.shutdown()
