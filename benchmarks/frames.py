"""The frames every speed measurement uses, made the same way for mtcnn-fast and for the peers.

Frames of 640x480, 1280x720 and 1920x1080 are cut from real photos: a photo is scaled (OpenCV's
area kernel when shrinking, bilinear when enlarging) so that it covers the frame, then centre-
cropped. The photos are a fixed list of WIDER FACE validation images (../shared/data) when present,
else the bundled astronaut photo (tiled 2 x 2). Depends only on numpy and OpenCV, so peer venvs
can import it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
WIDER_VAL = REPO.parent / "shared" / "data" / "wider_val_dev"
ASTRONAUT = REPO / "src" / "mtcnn_fast" / "data" / "astronaut.png"
SIZES: Dict[str, Tuple[int, int]] = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
# Every 54th image of wider_val_dev (sorted as in annotations.jsonl): 10 photos, various scenes.
WIDER_STEP = 54


def read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def wider_photo_paths() -> List[Path]:
    ann = WIDER_VAL / "annotations.jsonl"
    if not ann.is_file():
        return []
    records = [json.loads(line) for line in ann.read_text().splitlines() if line.strip()]
    return [WIDER_VAL / r["image"] for r in records[::WIDER_STEP]]


def source_photos() -> List[np.ndarray]:
    """The photos frames are made from: the fixed WIDER list, else the bundled astronaut tiled
    2 x 2 (a single 512 x 512 portrait cropped to 16:9 would lose its face; tiled, every frame
    size keeps at least one face)."""
    paths = wider_photo_paths()
    if not paths:
        return [np.ascontiguousarray(np.tile(read_rgb(ASTRONAUT), (2, 2, 1)))]
    return [read_rgb(p) for p in paths]


def fit(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scales img to cover width x height, then centre-crops it to exactly that size."""
    h, w = img.shape[:2]
    s = max(width / w, height / h)
    nw, nh = max(width, round(w * s)), max(height, round(h * s))
    kernel = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    big = cv2.resize(img, (nw, nh), interpolation=kernel)
    x0, y0 = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(big[y0 : y0 + height, x0 : x0 + width])


def frames(size: str, count: int = 3) -> List[np.ndarray]:
    """`count` RGB frames of the named size ("640x480", "1280x720", "1920x1080")."""
    w, h = SIZES[size]
    photos = source_photos()
    return [fit(photos[i % len(photos)], w, h) for i in range(count)]


def wider_photos(count: int = 10) -> List[np.ndarray]:
    """The fixed WIDER photos at their own size (about 1024 x 700); the tiled astronaut if absent."""
    return source_photos()[:count]
