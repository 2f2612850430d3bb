"""align_dataset's files: the output folder's layout, one image's record and crops, their atomic
writes, the check of what an earlier run left done, and the manifest built from the records.
Both runners (_local_runner: worker processes; _ray_runner: Ray Data) write through here, so
their outputs are byte-identical."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._detections import face_record
from ._input import IMAGE_SUFFIXES, decode_image
from ._opencv import cv2

MANIFEST = "manifest.jsonl"
SETTINGS = "settings.json"
RECORDS = ".records"
ALIGNED = "aligned"
MARGIN = "margin"
FORMAT = 1
# Temporary names: ".<final name>.<32 hex digits>.tmp" in the final file's folder.
_TMP = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


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


# --- the output folder as a whole ------------------------------------------------------------


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
