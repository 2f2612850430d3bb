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
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import queue
import re
import threading
import traceback
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ._detections import face_record
from ._input import decode_image

__all__ = ["align_dataset", "read_manifest", "DatasetSummary"]

MANIFEST = "manifest.jsonl"
SETTINGS = "settings.json"
RECORDS = ".records"
ALIGNED = "aligned"
MARGIN = "margin"
FORMAT = 1
# Temporary names: ".<final name>.<32 hex digits>.tmp" in the final file's folder.
_TMP = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


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


@dataclass(frozen=True)
class _Config:
    in_dir: str
    out_dir: str
    size: int
    margin: float | None
    margin_size: int
    detector: dict[str, object]  # FaceDetector keyword arguments

    def make_detector(self, **overrides):
        from .detector import FaceDetector

        return FaceDetector(**{**self.detector, **overrides})


# --- finding and reading images ---------------------------------------------------------------


def list_images(in_dir: str | Path, exclude: str | Path | None = None) -> list[str]:
    """Relative, "/"-separated paths of the image files under in_dir (by suffix, any case),
    sorted; symlinked folders are not followed; `exclude` (a folder) is left out."""
    from .cli import IMAGE_SUFFIXES

    root = os.path.realpath(in_dir)
    skip = os.path.realpath(exclude) if exclude is not None else None
    found = []
    for folder, dirs, files in os.walk(root):
        if skip is not None:
            dirs[:] = [d for d in dirs if os.path.join(folder, d) != skip]
        rel_folder = os.path.relpath(folder, root)
        for name in files:
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                rel = name if rel_folder == "." else os.path.join(rel_folder, name)
                found.append(rel.replace(os.sep, "/"))
    return sorted(found)


def _load(cfg: _Config, rel: str) -> tuple[str, np.ndarray | None, str | None]:
    """(rel, rgb, None) or (rel, None, error message); never raises for a bad file."""
    try:
        data = Path(cfg.in_dir, rel).read_bytes()
    except OSError as e:
        return rel, None, f"cannot read the file: {e.strerror or type(e).__name__}"
    try:
        return rel, decode_image(data), None
    except ValueError as e:
        return rel, None, str(e)


# --- one image: record and crops ---------------------------------------------------------------


def _crop_name(kind: str, rel: str, k: int) -> str:
    return f"{kind}/{rel}_{k}.png"


def _record_text(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True) + "\n"


def _analyse(cfg: _Config, det, rel: str, rgb: np.ndarray | None,
             error: str | None) -> tuple[str, int, list[tuple[str, np.ndarray]]]:
    """Detects faces in one image: its record text, its face count and its crops (name, RGB)."""
    if error is not None:
        return _record_text({"image": rel, "error": error}), 0, []
    from .align import align, crop

    faces = det.detect(rgb)
    aligned = align(rgb, faces, cfg.size)
    margins = (crop(rgb, faces, margin_fraction=cfg.margin, size=cfg.margin_size)
               if cfg.margin is not None else None)
    entries, files = [], []
    for k, face in enumerate(faces):
        entry = face_record(*face)
        entry["aligned"] = _crop_name(ALIGNED, rel, k)
        files.append((entry["aligned"], aligned[k]))
        if margins is not None:
            entry["margin"] = _crop_name(MARGIN, rel, k)
            files.append((entry["margin"], margins[k]))
        entries.append(entry)
    record = {"image": rel, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "faces": entries}
    return _record_text(record), len(entries), files


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _encode_png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - PNG encoding of a uint8 array does not fail
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _record_path(out_dir: str | Path, rel: str) -> Path:
    return Path(out_dir, RECORDS, rel + ".json")


def _write_image(out_dir: str, rel: str, text: str, files: Sequence[tuple[str, np.ndarray]]) -> None:
    """Crops first, the record last: the record's presence means every crop is in place."""
    for name, pixels in files:
        _atomic_write(Path(out_dir, name), _encode_png(pixels))
    _atomic_write(_record_path(out_dir, rel), text.encode())


def _read_record(out_dir: str, rel: str) -> dict | None:
    """The image's record if the image is done: record readable, for this image, no error, every
    crop it names present and non-empty. None otherwise (the image is to be processed)."""
    try:
        rec = json.loads(_record_path(out_dir, rel).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("image") != rel or "error" in rec:
        return None
    for face in rec.get("faces", ()):
        for key in (ALIGNED, MARGIN):
            name = face.get(key)
            if name is not None:
                try:
                    if os.stat(Path(out_dir, name)).st_size == 0:
                        return None
                except OSError:
                    return None
    return rec


# --- the local pipeline: reader threads -> detector -> writer thread ----------------------------

_END = object()


def _process(cfg: _Config, det, next_job: Callable[[], str | None],
             report: Callable[[str, int, str | None], None], io_threads: int) -> None:
    """Runs the images that next_job() hands out (None: no more) through the detector.

    io_threads reader threads read and decode ahead into a bounded queue, so the detector does
    not wait on the disk; one writer thread encodes and writes the crops and records, so it
    does not wait on the disk either. report(rel, faces, error) is called once each image is
    fully written."""
    ready: queue.Queue = queue.Queue(maxsize=2 * io_threads)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def reader() -> None:
        try:
            while not stop.is_set():
                rel = next_job()
                if rel is None:
                    break
                put(_load(cfg, rel))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            put(e)
        finally:
            put(_END)

    readers = [threading.Thread(target=reader, daemon=True) for _ in range(io_threads)]
    for t in readers:
        t.start()
    pending: deque = deque()
    try:
        with ThreadPoolExecutor(max_workers=1) as writer:

            def harvest(block: bool) -> None:
                while pending and (block or pending[0][0].done()):
                    future, rel, n, error = pending.popleft()
                    future.result()
                    report(rel, n, error)

            ended = 0
            while ended < io_threads:
                item = ready.get()
                if item is _END:
                    ended += 1
                    continue
                if isinstance(item, BaseException):
                    raise item
                rel, rgb, error = item
                text, n, files = _analyse(cfg, det, rel, rgb, error)
                pending.append((writer.submit(_write_image, cfg.out_dir, rel, text, files), rel, n, error))
                harvest(block=len(pending) > 2 * io_threads)
            harvest(block=True)
    finally:
        stop.set()
        for t in readers:
            t.join()


def _worker_main(cfg: _Config, threads: int, io_threads: int, tasks, results) -> None:
    """One worker process (spawned): its own detector, `threads` torch threads."""
    try:
        import torch

        torch.set_num_threads(threads)
        det = cfg.make_detector()
        _process(cfg, det, tasks.get, lambda rel, n, err: results.put(("done", rel, n, err)), io_threads)
        results.put(("finished", None, 0, None))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        results.put(("failed", traceback.format_exc(), 0, None))


def _run_processes(cfg: _Config, jobs: list[str], workers: int, threads: int, io_threads: int,
                   report) -> None:
    ctx = multiprocessing.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for rel in jobs:
        tasks.put(rel)
    for _ in range(workers * io_threads):
        tasks.put(None)
    procs = [ctx.Process(target=_worker_main, args=(cfg, threads, io_threads, tasks, results),
                         name=f"mtcnn-fast-worker-{i}", daemon=True) for i in range(workers)]
    for p in procs:
        p.start()
    try:
        finished = 0
        while finished < workers:
            try:
                kind, rel, n, error = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"worker process {dead[0].name} died (exit code "
                                       f"{dead[0].exitcode}); rerun to resume") from None
                continue
            if kind == "done":
                report(rel, n, error)
            elif kind == "finished":
                finished += 1
            else:
                raise RuntimeError(f"a worker process failed; rerun to resume:\n{rel}")
    finally:
        for p in procs:
            if p.is_alive():
                p.join(timeout=5 if finished == workers else 0)
            if p.is_alive():
                p.terminate()
                p.join()
        for q in (tasks, results):
            q.cancel_join_thread()
            q.close()


# --- the Ray pipeline ---------------------------------------------------------------------------


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


# --- the driver -------------------------------------------------------------------------------


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


def _cleanup_temporaries(out: Path) -> None:
    """Removes the temporary files an interrupted run left behind (only ours, by name)."""
    for sub in (out / ALIGNED, out / MARGIN, out / RECORDS):
        for folder, _, files in os.walk(sub):
            for name in files:
                if _TMP.match(name):
                    os.unlink(os.path.join(folder, name))
    for name in os.listdir(out):
        if _TMP.match(name) and os.path.isfile(out / name):
            os.unlink(out / name)


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS
    text = json.dumps(settings, indent=1, sort_keys=True) + "\n"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old != json.loads(text):
            changed = sorted(k for k in set(settings) | set(old or {})
                             if not isinstance(old, dict) or old.get(k) != settings.get(k))
            raise ValueError(f"{out} holds crops made with other settings ({', '.join(changed)} "
                             f"differ; see {path}): use a new output folder, or delete it")
    else:
        _atomic_write(path, text.encode())


def _write_manifest(out: Path, rels: Sequence[str]) -> tuple[int, int, dict[str, str]]:
    """Concatenates the records in rel order into OUT/manifest.jsonl (atomically)."""
    path = out / MANIFEST
    tmp = out / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    faces, errors = 0, {}
    try:
        with open(tmp, "wb") as f:
            for rel in rels:
                try:
                    data = _record_path(out, rel).read_bytes()
                except OSError:
                    raise RuntimeError(f"no record for {rel} after the run; rerun to resume") from None
                rec = json.loads(data)
                if "error" in rec:
                    errors[rel] = rec["error"]
                faces += len(rec.get("faces", ()))
                f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return faces, len(errors), errors


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
    precision: str = "float32",
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
    settings = {"min_face_size": min_face_size, "thresholds": tuple(thresholds),
                "scale_factor": scale_factor, "device": device, "precision": precision,
                "weights": str(Path(weights).resolve()) if weights is not None else None}
    cfg = _Config(str(in_path.resolve()), str(out_path.resolve()), size, margin, margin_size, settings)
    # Validates the detector settings (and loads the weights) before anything is written. With
    # Ray the detectors run on the cluster's devices: here the check runs on the CPU in float32
    # (the actors check device and precision themselves).
    from .detector import PRECISIONS

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
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
            _run_ray(cfg, jobs, ray, workers, threads or 1, report)
        elif workers == 1:
            import torch

            before = torch.get_num_threads()
            if threads is not None:
                torch.set_num_threads(threads)
            try:
                lock, it = threading.Lock(), iter(jobs)

                def next_job() -> str | None:
                    with lock:
                        return next(it, None)

                _process(cfg, det, next_job, report, io_threads)
            finally:
                torch.set_num_threads(before)
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

