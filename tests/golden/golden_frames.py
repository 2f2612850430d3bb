"""The golden multi-face frames: how they are composed, where their expected detections are kept,
and how a detection is compared with them. Shared by tests/test_golden.py and the benchmark suites
(benchmarks/test_bench_pipeline.py); tests/golden/make_golden.py writes the expected detections.

The frames are made only from the bundled public-domain photo (src/mtcnn_fast/data/astronaut.png,
see its README), so they need not be stored: each frame is a grey canvas with copies of the photo
pasted at fixed places, at rational scales p/q, some mirrored. The scaling is exact integer
arithmetic (each pixel repeated p times along both axes, then q x q blocks averaged with round-half-
up), so the frames come out the same, bit for bit, on every CPU and with every numpy or OpenCV
version; only the PNG decoder is used from OpenCV, and PNG is lossless.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
# The installed package's copy of the bundled photo (the suite also runs against an installed wheel,
# from a copy of tests/ without the source tree).
ASTRONAUT = Path(str(resources.files("mtcnn_fast") / "data" / "astronaut.png"))
EXPECTED = HERE / "expected.json"
BACKGROUND = 118  # grey, every channel

# How far a detection may lie from the fixture. The detector is bit for bit deterministic on one
# CPU (any batch, chunk or thread count), but other convolution kernels round differently in the
# last bits: under the five dispatch settings of .ci/run on the 2-core Intel Xeon (AVX-512, AMX)
# the largest deviations were 1.22e-4 px (boxes and landmarks; ONEDNN_MAX_CPU_ISA=SSE41 and AVX2,
# about one float32 step at these coordinates) and 1.01e-6 (scores); the MKL settings and
# AVX512_CORE gave this CPU's own bits. The tolerances are about 8x and 10x those: loose enough
# for another CPU's kernels, tight enough that nudging O-Net's box regression bias by 1e-4 (a
# shift of about 0.003-0.011 px on these faces) fails (tests/test_golden.py).
COORD_TOL = 1e-3  # px, boxes and landmarks
SCORE_TOL = 1e-5


class Tile(NamedTuple):
    """The photo scaled by p/q (512 * p / q pixels square), mirrored left-right if flip, with its
    top-left corner at (x, y) of the frame."""

    p: int
    q: int
    flip: bool
    x: int
    y: int


# name -> (width, height, tiles). The photo's one face spans about 88 x 114 of its 512 pixels, so
# a tile of side s holds a face about s / 5.8 wide: 160 -> 28 px, 768 -> 132 px (min face 20).
RECIPE: Dict[str, Tuple[int, int, List[Tile]]] = {
    # 2 x 2 and a column of three: faces of 44 and 33 px, three of them mirrored.
    "640x480": (640, 480, [
        Tile(1, 2, False, 0, 0), Tile(1, 2, True, 0, 224),        # 256 px
        Tile(3, 8, False, 256, 0), Tile(3, 8, True, 256, 240),    # 192 px
        Tile(3, 8, False, 448, 0), Tile(3, 8, True, 448, 192),    # 192 px
        Tile(5, 16, False, 480, 384),                             # 160 px, partly off the frame
    ]),
    # A row of three large ones over a row of four medium ones: faces of 66 and 55 px.
    "1280x720": (1280, 720, [
        Tile(3, 4, False, 0, 0), Tile(3, 4, True, 384, 0), Tile(3, 4, False, 768, 0),      # 384
        Tile(5, 8, True, 0, 392), Tile(5, 8, False, 320, 392),                           # 320
        Tile(5, 8, True, 640, 392), Tile(5, 8, False, 960, 392),                         # 320
    ]),
    # Enlarged (5/4) down to half size: faces of 110, 88, 66, 55 and 44 px.
    "1920x1080": (1920, 1080, [
        Tile(5, 4, False, 0, 0), Tile(1, 1, True, 640, 0),                               # 640, 512
        Tile(3, 4, False, 1152, 0), Tile(3, 4, True, 1536, 0),                           # 384
        Tile(3, 4, True, 0, 648), Tile(3, 4, False, 384, 648),                           # 384
        Tile(1, 2, False, 768, 648), Tile(1, 2, True, 1024, 648),                        # 256
        Tile(5, 8, False, 1280, 648), Tile(5, 8, True, 1600, 648),                       # 320
    ]),
    # A crowd of small faces (28 px) at the size of a WIDER FACE photo, plus two larger ones.
    "1024x768-crowd": (1024, 768, [
        *(Tile(5, 16, (r + c) % 2 == 1, 160 * c, 160 * r) for r in range(3) for c in range(4)),
        Tile(3, 4, False, 640, 0), Tile(3, 4, True, 640, 384),                           # 384
    ]),
}
NAMES = list(RECIPE)


def astronaut() -> np.ndarray:
    img = cv2.imread(str(ASTRONAUT), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(ASTRONAUT)
    return np.ascontiguousarray(img[:, :, ::-1])  # RGB


def scaled(img: np.ndarray, p: int, q: int) -> np.ndarray:
    """img scaled by p/q with exact integer area averaging (sides must be multiples of q after
    enlarging by p)."""
    if p > 1:
        img = np.repeat(np.repeat(img, p, axis=0), p, axis=1)
    h, w = img.shape[0] // q, img.shape[1] // q
    if h * q != img.shape[0] or w * q != img.shape[1]:
        raise ValueError(f"{img.shape[:2]} is not a multiple of {q}")
    sums = img.reshape(h, q, w, q, 3).sum(axis=(1, 3), dtype=np.int64)
    n = q * q
    return ((sums + n // 2) // n).astype(np.uint8)


def frame(name: str, photo: Optional[np.ndarray] = None) -> np.ndarray:
    """The named golden frame, H x W x 3 uint8 RGB."""
    width, height, tiles = RECIPE[name]
    photo = astronaut() if photo is None else photo
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    for t in tiles:
        tile = scaled(photo, t.p, t.q)
        if t.flip:
            tile = tile[:, ::-1]
        h, w = min(tile.shape[0], height - t.y), min(tile.shape[1], width - t.x)
        canvas[t.y : t.y + h, t.x : t.x + w] = tile[:h, :w]
    return canvas


def frames() -> Dict[str, np.ndarray]:
    photo = astronaut()
    return {name: frame(name, photo) for name in NAMES}


def digest(img: np.ndarray) -> str:
    """sha256 of a frame's shape and pixels: the fixture records it, so that a changed recipe is
    told apart from changed detections."""
    return hashlib.sha256(repr(img.shape).encode() + np.ascontiguousarray(img).tobytes()).hexdigest()


# --- expected detections ----------------------------------------------------------------------


class Expected(NamedTuple):
    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    landmarks: np.ndarray  # (N, 5, 2) float32


def as_record(faces) -> dict:
    """A Detections as JSON lists, each float32 written with 9 significant digits (which read
    back to the same float32)."""

    def short(a):
        return np.vectorize(lambda v: float(f"{v:.9g}"), otypes=[float])(np.asarray(a)).tolist()

    return {"boxes": short(faces.boxes), "scores": short(faces.scores), "landmarks": short(faces.landmarks)}


def load(path: Path = EXPECTED) -> Tuple[dict, Dict[str, Dict[str, Expected]]]:
    """The fixture's header and, per setting ("defaults", ...) and frame, the expected faces."""
    data = json.loads(Path(path).read_text())
    out: Dict[str, Dict[str, Expected]] = {}
    for setting, per_frame in data["expected"].items():
        out[setting] = {}
        for name, rec in per_frame.items():
            n = len(rec["scores"])
            out[setting][name] = Expected(np.array(rec["boxes"], np.float32).reshape(n, 4),
                                          np.array(rec["scores"], np.float32).reshape(n),
                                          np.array(rec["landmarks"], np.float32).reshape(n, 5, 2))
    return data, out


def pair(want_boxes: np.ndarray, got_boxes: np.ndarray) -> np.ndarray:
    """For each expected face, the index of the detected face whose box corners are nearest (the
    sum of the four corner distances). The order of the result is not trusted: identical tiles
    give faces whose scores may tie or swap in their last bits."""
    if len(want_boxes) == 0 or len(got_boxes) == 0:
        return np.zeros(0, np.int64)
    d = np.abs(want_boxes[:, None, :].astype(np.float64) - got_boxes[None, :, :]).sum(axis=2)
    return d.argmin(axis=1)


def deviations(want: Expected, got) -> Dict[str, float]:
    """Largest absolute differences between expected and detected faces, paired one to one.
    Raises AssertionError if the faces cannot be paired one to one."""
    assert len(got) == len(want.scores), f"{len(got)} faces detected, {len(want.scores)} expected"
    idx = pair(want.boxes, got.boxes)
    assert len(set(idx.tolist())) == len(idx), "two expected faces pair with the same detected face"
    if len(idx) == 0:
        return {"boxes": 0.0, "landmarks": 0.0, "scores": 0.0}
    return {
        "boxes": float(np.abs(got.boxes[idx].astype(np.float64) - want.boxes).max()),
        "landmarks": float(np.abs(got.landmarks[idx].astype(np.float64) - want.landmarks).max()),
        "scores": float(np.abs(got.scores[idx].astype(np.float64) - want.scores).max()),
    }


def check(want: Expected, got, where: str = "") -> Dict[str, float]:
    """Asserts that `got` (a Detections) is the expected faces within COORD_TOL and SCORE_TOL,
    paired one to one; returns the deviations."""
    try:
        dev = deviations(want, got)
    except AssertionError as e:
        raise AssertionError(f"{where}: {e}") from None
    assert dev["boxes"] <= COORD_TOL, f"{where}: boxes off by {dev['boxes']:.3g} px (tolerance {COORD_TOL})"
    assert dev["landmarks"] <= COORD_TOL, f"{where}: landmarks off by {dev['landmarks']:.3g} px (tolerance {COORD_TOL})"
    assert dev["scores"] <= SCORE_TOL, f"{where}: scores off by {dev['scores']:.3g} (tolerance {SCORE_TOL})"
    return dev
