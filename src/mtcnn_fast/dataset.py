"""Whole photo collections: detect every face of a folder tree, write aligned (and optionally
margin) crops mirroring the tree, and one JSON-lines manifest.

    from mtcnn_fast.dataset import align_dataset
    summary = align_dataset("photos/", "faces/", workers=2, margin=0.2)

Output layout (names relative to OUT, "/"-separated; <rel> is an image's path relative to IN,
extension included, so that a.jpg and a.png never share a name):

    OUT/manifest.jsonl             one line per image, sorted by <rel>
    OUT/settings.json              the settings the crops were made with
    OUT/aligned/<rel>_<k>.png      face k (0 = best score) warped onto the ArcFace template
    OUT/margin/<rel>_<k>.png       square crop with a margin (only when margin is given)
    OUT/.records/<rel>.json        the image's manifest line; its presence marks the image done

Every file is written under a temporary name in its folder and moved into place with
os.replace, crops before the record, so an interrupted run leaves each image either done (record
and all its crops present) or not done (it is processed again by the next run); the manifest is
rebuilt from the records at the end of every run. Manifest lines are the records' text, made by
one function with fixed key order and fixed rounding, so two runs over the same photos with the
same settings give byte-identical manifests whatever the number of workers or the Ray path.

Importing this module does not import Ray; only align_dataset(..., ray=...) does.

The pieces: _dataset_records (the output folder: records, crops, manifest), _local_runner (this
process or spawned worker processes) and _ray_runner (Ray Data); this module checks the
arguments and drives one of the runners.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._dataset_records import (FORMAT, MANIFEST, _check_settings, _cleanup_temporaries, _Config,
                               _read_record, _write_manifest, list_images)
from ._input import decode_image  # noqa: F401  (re-exported: the decoder align-dataset uses)
from ._local_runner import _run_here, _run_processes

__all__ = ["align_dataset", "read_manifest", "list_images", "DatasetSummary"]


@dataclass(frozen=True)
class DatasetSummary:
    """What align_dataset did. images: images found under IN; skipped: already done by an
    earlier run; processed: read (and detected) by this run; failed: images whose record holds an
    error (unreadable or corrupt); faces: faces in the manifest; manifest: its path."""

    images: int
    skipped: int
    processed: int
    failed: int
    faces: int
    manifest: Path
    errors: dict[str, str] = field(default_factory=dict)


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _weights_digest(weights) -> str:
    from .nets import WEIGHT_FILES, weights_dir

    h = hashlib.sha256()
    for name in sorted(WEIGHT_FILES.values()):
        h.update((weights_dir(weights) / name).read_bytes())
    return h.hexdigest()


def align_dataset(
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    size: int = 112,
    margin: float | None = None,
    margin_size: int = 160,
    workers: int = 1,
    threads: int | None = None,
    io_threads: int = 2,
    min_face_size: float = 20.0,
    thresholds: Sequence[float] = (0.6, 0.7, 0.7),
    scale_factor: float = 0.709,
    device: str = "auto",
    weights: None | str | Path = None,
    precision: str | Mapping[str, str] = "float32",
    ray: bool | str = False,
    progress: bool = True,
) -> DatasetSummary:
    """Detects the faces of every image under in_dir and writes their crops and a manifest.

    Images are the files under in_dir (recursively, sorted) whose suffix is .jpg, .jpeg, .png,
    .bmp, .tif, .tiff or .webp in any case; out_dir, when inside in_dir, is left out.

    size: side of the aligned crops (align(): the 112 x 112 ArcFace template, scaled).
    margin: None (no margin crops) or a fraction >= 0: also write crop(frame, box,
        margin_fraction=margin, size=margin_size), the square of side max(w, h) * (1 + 2 * margin) about each box's centre.
    workers: worker processes (spawned; each with its own FaceDetector), or with Ray the size
        of the detector actor pool. Results do not depend on it.
    threads: torch threads per worker (default: torch's own for one local worker, else
        cpu_count // workers; 1 per Ray actor, which reserves that many CPUs).
    io_threads: reader threads per worker that read and decode images ahead of the detector.
    min_face_size, thresholds, scale_factor, device, weights, precision: as for FaceDetector.
    ray: False (local processes); True (Ray: the instance this process is connected to, else
        ray.init(), which joins the cluster named by RAY_ADDRESS, else the last one started on
        this machine, else starts a local one); or a cluster address for ray.init(address=...).
        Needs pip install 'mtcnn-fast[ray]'. Input and output folders must be visible to every
        node at the same paths.
    progress: show a progress bar (images per second) on stderr when it is a terminal.

    A rerun on the same out_dir skips the images already done and finishes the rest; images
    recorded with an error are tried again. out_dir must not be used by two runs at once.
    Returns a DatasetSummary. Raises ValueError for bad arguments, or when out_dir holds crops
    made with other settings.
    """
    from ._progress import Progress

    in_path, out_path = Path(in_dir), Path(out_dir)
    if not in_path.is_dir():
        raise ValueError(f"input folder {str(in_path)!r} does not exist or is not a folder")
    if out_path.exists() and not out_path.is_dir():
        raise ValueError(f"output {str(out_path)!r} exists and is not a folder")
    if out_path.resolve() == in_path.resolve():
        raise ValueError("the output folder must differ from the input folder")
    size = _check_int("size", size, 8)
    margin_size = _check_int("margin_size", margin_size, 1)
    workers = _check_int("workers", workers, 1)
    io_threads = _check_int("io_threads", io_threads, 1)
    if threads is not None:
        threads = _check_int("threads", threads, 1)
    if margin is not None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float, np.floating, np.integer)) \
                or not math.isfinite(margin) or margin < 0:
            raise ValueError(f"margin must be None or a finite number >= 0, got {margin!r}")
        margin = float(margin)
    if not (isinstance(ray, bool) or (isinstance(ray, str) and ray)):
        raise ValueError(f"ray must be True, False or a cluster address, got {ray!r}")
    from .detector import precision_setting

    precision = precision_setting(precision)  # one name, or a dict naming each network's
    settings = {"min_face_size": min_face_size, "thresholds": tuple(thresholds),
                "scale_factor": scale_factor, "device": device, "precision": precision,
                "weights": str(Path(weights).resolve()) if weights is not None else None}
    cfg = _Config(str(in_path.resolve()), str(out_path.resolve()), size, margin, margin_size, settings)
    # Validates the detector settings (and loads the weights) before anything is written. With
    # Ray the detectors run on the cluster's devices: here the check runs on the CPU in float32
    # (the actors check device and precision themselves).
    if ray and device != "auto":
        import torch

        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            kind = None
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    det = cfg.make_detector(**({"device": "cpu", "precision": "float32"} if ray else {}))
    fingerprint = {"format": FORMAT, "size": size, "margin": margin,
                   "margin_size": margin_size if margin is not None else None,
                   "min_face_size": det.min_face_size, "thresholds": list(det.thresholds),
                   "scale_factor": det.scale_factor, "precision": precision,
                   "weights_sha256": _weights_digest(weights)}

    rels = list_images(in_path, exclude=out_path)
    out_path.mkdir(parents=True, exist_ok=True)
    out = Path(cfg.out_dir)
    _check_settings(out, fingerprint)
    _cleanup_temporaries(out)
    jobs = [rel for rel in rels if _read_record(cfg.out_dir, rel) is None]

    label = f"align-dataset ({len(rels) - len(jobs)} of {len(rels)} already done)"
    with Progress(len(jobs), label, enabled=None if progress else False, unit="img") as bar:

        def report(rel: str, n: int, error: str | None) -> None:
            bar.update()

        if not jobs:
            pass
        elif ray:
            from ._ray_runner import _run_ray

            _run_ray(cfg, jobs, ray, workers, threads or 1, report)
        elif workers == 1:
            _run_here(cfg, det, jobs, threads, io_threads, report)
        else:
            per_worker = threads or max(1, (os.cpu_count() or 1) // workers)
            _run_processes(cfg, jobs, workers, per_worker, io_threads, report)
    faces, failed, errors = _write_manifest(out, rels)
    return DatasetSummary(images=len(rels), skipped=len(rels) - len(jobs), processed=len(jobs),
                          failed=failed, faces=faces, manifest=out / MANIFEST, errors=errors)


def read_manifest(path: str | Path) -> Iterator[dict]:
    """The records of a manifest.jsonl, one dict per image, in file order."""
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)

