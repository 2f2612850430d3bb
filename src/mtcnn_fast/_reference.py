"""Plain NumPy twin of the C++ core (``mtcnn_fast._core``).

This module is the specification of every compiled op: same arguments, same results (bit for
bit: float32 arithmetic in the same order), same exceptions. Property tests compare the two,
and the whole detector can run on either backend (``FaceDetector(backend="numpy")``).
"""

from __future__ import annotations

import math
import operator
from typing import List, Sequence, Tuple

import numpy as np

_MEAN = np.float32(127.5)
_SCALE = np.float32(0.0078125)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_MAX_COORD = 1e9
_MAX_THREADS = 1024  # the core's OpenMP regions take exactly the thread count asked for
_MAX_LEVELS = 1000.0  # more pyramid levels than this means nonsensical settings
# A first pyramid level larger than this (2^26 pixels) means settings that would exhaust memory:
# a detection needed about 150 bytes per pixel of its first level when the bound was set (about
# 10 GB), about 33 since the pyramid and the large crops sweep their summed-area tables (an
# 8000 x 6000 frame at min face 20: +563 MB), so about 2.2 GB; the bound was kept.
_MAX_LEVEL_PIXELS = 67108864.0


def _require(obj, name: str, dtype) -> np.ndarray:
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(obj).__name__}")
    if obj.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {obj.dtype}")
    return np.ascontiguousarray(obj)


def _require_image(obj) -> np.ndarray:
    img = _require(obj, "image", np.uint8)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3) with H, W >= 1, got {img.shape}")
    return img


def _require_finite(a: np.ndarray, name: str, limit: float) -> None:
    if a.size and not (np.isfinite(a).all() and np.abs(a).max() <= limit):
        raise ValueError(f"{name} must hold finite values of magnitude <= {limit}")


def _require_boxes(obj, name: str = "boxes") -> np.ndarray:
    b = _require(obj, name, np.float32)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {b.shape}")
    _require_finite(b, name, _MAX_COORD)
    return b


def _require_unit(v: float, name: str) -> float:
    v = float(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {v}")
    return v


def _require_threads(threads) -> int:
    """The core's thread count: an integer in [1, 1024] (the twin itself runs serially)."""
    threads = operator.index(threads)
    if not 1 <= threads <= _MAX_THREADS:
        raise ValueError(f"threads must lie in [1, {_MAX_THREADS}], got {threads}")
    return threads


def _require_out(obj, need: int, image: np.ndarray) -> np.ndarray:
    """The caller's buffer for an output (`out`): a writeable, C-contiguous, one-dimensional
    float32 array of at least `need` values that shares no memory with the image."""
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(obj).__name__}")
    if obj.dtype != np.float32:
        raise TypeError(f"out must have dtype float32, got {obj.dtype}")
    if obj.ndim != 1 or not obj.flags.c_contiguous or not obj.flags.writeable:
        raise ValueError(f"out must be a writeable, contiguous one-dimensional array, got shape {obj.shape}")
    if obj.shape[0] < need:
        raise ValueError(f"out holds {obj.shape[0]} values; this call needs {need}")
    if np.may_share_memory(obj, image):
        raise ValueError("out must not share memory with the image")
    return obj


def _padded(values: int) -> int:
    """Values from one level's start to the next one's in a caller's buffer (64-byte steps)."""
    return -(-values // 16) * 16


def _require_positive(v: float, name: str) -> float:
    v = float(v)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {v}")
    return v


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> List[float]:
    """Scales m * factor**k (m = 12 / min_face_size) while min(height, width) * scale >= 12."""
    if height < 0 or width < 0:
        raise ValueError("height and width must be >= 0")
    _require_positive(min_face_size, "min_face_size")
    factor = float(factor)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"scale_factor must lie strictly between 0 and 1, got {factor}")
    m = 12.0 / float(min_face_size)
    min_side = float(min(height, width)) * m
    # Refuse settings that would make an absurd pyramid (or never end) before building it.
    if not math.isfinite(min_side) or (
        min_side >= 12.0 and math.log(min_side / 12.0) / -math.log(factor) > _MAX_LEVELS
    ):
        raise ValueError(
            f"min_face_size and scale_factor give more than {int(_MAX_LEVELS)} pyramid levels"
        )
    if min_side >= 12.0 and float(height) * m * float(width) * m > _MAX_LEVEL_PIXELS:
        raise ValueError(
            f"min_face_size {float(min_face_size)} on a {height} x {width} frame makes a first "
            f"pyramid level of more than {int(_MAX_LEVEL_PIXELS)} pixels (the frame scaled by "
            "12 / min_face_size); use a larger min_face_size or a smaller frame"
        )
    scales = []
    k = 0
    while min_side >= 12.0:
        scales.append(m * math.pow(factor, k))
        min_side *= factor
        k += 1
    return scales


def _axis(n_in: int, n_out: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centred sampling of one axis: low and high neighbour (clamped), weight of high."""
    step = float(n_in) / float(n_out)
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * step - 0.5
    fl = np.floor(s)
    frac = (s - fl).astype(np.float32)
    i0 = fl.astype(np.int64)
    return np.clip(i0, 0, n_in - 1), np.clip(i0 + 1, 0, n_in - 1), frac


def _resample(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of an (h, w, 3) float32 source, normalised, as (out_h, out_w, 3)."""
    ylo, yhi, fy = _axis(src.shape[0], out_h)
    xlo, xhi, fx = _axis(src.shape[1], out_w)
    fx = fx[None, :, None]
    gx = _ONE - fx
    fy = fy[:, None, None]
    gy = _ONE - fy
    top = src[ylo][:, xlo] * gx + src[ylo][:, xhi] * fx
    bottom = src[yhi][:, xlo] * gx + src[yhi][:, xhi] * fx
    v = top * gy + bottom * fy
    return np.ascontiguousarray((v - _MEAN) * _SCALE)


def _shrinks(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """The resize kernel: area averaging when neither side grows, bilinear otherwise."""
    return out_h <= in_h and out_w <= in_w


def _integral(src: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Summed-area table of src[y0:y1, x0:x1] (uint8, HxWx3) as float64, (rows + 1, cols + 1, 3):
    S[y, x] = sum of the pixels above and left of (y, x). Integers, so exact in any order."""
    region = src[y0:y1, x0:x1].astype(np.float64)
    table = np.zeros((region.shape[0] + 1, region.shape[1] + 1, 3), np.float64)
    table[1:, 1:] = region.cumsum(0).cumsum(1)
    return table


def _corners(start: float, step: float, n: int, limit: int):
    """Cell edges start + k * step (k = 0..n) clamped into [0, limit]: the table column (row) at
    or left of each edge, and the edge's fraction past it."""
    pos = np.clip(float(start) + np.arange(n + 1, dtype=np.float64) * step, 0.0, float(limit))
    i = np.minimum(np.floor(pos), float(limit - 1))
    return i.astype(np.int64), pos - i


def _area(table: np.ndarray, ox: int, oy: int, in_h: int, in_w: int, out_h: int, out_w: int):
    """Area-averaging resize of the in_h x in_w rectangle at (ox, oy) of the table's region (zero
    outside it) to out_h x out_w, normalised: each output pixel is the mean of the source over
    its cell, partial pixels weighted by the part inside. The integral of the source up to a
    point is bilinear between the table's entries, so each cell is four interpolated lookups."""
    rows, cols = table.shape[0] - 1, table.shape[1] - 1
    if rows == 0 or cols == 0:
        return np.full((out_h, out_w, 3), (np.float32(0.0) - _MEAN) * _SCALE, np.float32)
    sx = float(in_w) / float(out_w)
    sy = float(in_h) / float(out_h)
    xi, fx = _corners(ox, sx, out_w, cols)
    yi, fy = _corners(oy, sy, out_h, rows)
    fx = fx[None, :, None]
    gx = 1.0 - fx
    fy = fy[:, None, None]
    gy = 1.0 - fy
    top = table[yi][:, xi] * gx + table[yi][:, xi + 1] * fx
    bottom = table[yi + 1][:, xi] * gx + table[yi + 1][:, xi + 1] * fx
    cum = top * gy + bottom * fy
    v = ((cum[1:, 1:] - cum[1:, :-1]) - (cum[:-1, 1:] - cum[:-1, :-1])) * (1.0 / (sx * sy))
    return np.ascontiguousarray((v.astype(np.float32) - _MEAN) * _SCALE)


def _level_sizes(h: int, w: int, scales: Sequence[float]) -> List[Tuple[int, int]]:
    sizes = []
    for s in scales:
        s = _require_positive(s, "scale")
        lh, lw = math.ceil(h * s), math.ceil(w * s)
        if lh > _MAX_COORD or lw > _MAX_COORD:
            raise ValueError("pyramid level too large")
        sizes.append((lh, lw))
    return sizes


def _values(sizes: Sequence[Tuple[int, int]]) -> int:
    """Values a caller's buffer needs for levels of these sizes (each on a 64-byte step)."""
    return sum(_padded(lh * lw * 3) for lh, lw in sizes)


def pyramid_values(height: int, width: int, scales: Sequence[float]) -> int:
    """How many float32 values pyramid's `out` needs for a height x width frame."""
    if height < 1 or width < 1:
        raise ValueError("height and width must be >= 1")
    return _values(_level_sizes(height, width, scales))


def pyramid(image, scales: Sequence[float], threads: int = 1, out=None) -> List[np.ndarray]:
    """Each level: the image resized to ceil(H * s) x ceil(W * s), normalised, float32 HWC
    (channels-last, the layout the networks run fastest in). Levels smaller than the image are
    area averages (_area), larger ones bilinear (_resample). `threads`: checked as the core
    checks it (the core runs on that many OpenMP threads; the numbers do not depend on it).
    `out`: a one-dimensional float32 buffer the levels are written to, as views of it (each
    starting on a multiple of 16 values; pyramid_values says how many it needs); else new
    arrays."""
    _require_threads(threads)
    img = _require_image(image)
    h, w = img.shape[:2]
    sizes = _level_sizes(h, w, scales)
    if out is not None:
        out = _require_out(out, _values(sizes), img)
    src = img.astype(np.float32)
    table = None
    levels = []
    start = 0
    for lh, lw in sizes:
        if _shrinks(h, w, lh, lw):
            if table is None:
                table = _integral(img, 0, 0, w, h)
            level = _area(table, 0, 0, h, w, lh, lw)
        else:
            level = _resample(src, lh, lw)
        if out is not None:
            view = out[start : start + level.size].reshape(level.shape)
            view[...] = level
            level = view
            start += _padded(level.size)
        levels.append(level)
    return levels


def crop_windows(image, boxes, size: int, threads: int = 1, out=None) -> np.ndarray:
    """Windows (1-based inclusive pixel numbers, truncated) cut out with zero fill, resized to
    size x size (area averages when the window is at least size wide and high, else bilinear),
    normalised: (N, size, size, 3) float32 (channels-last). `threads` as in pyramid. `out`: a
    one-dimensional float32 buffer of at least N * size * size * 3 values, the crops written to
    its start (a view of it is returned); else a new array."""
    _require_threads(threads)
    img = _require_image(image)
    b = _require_boxes(boxes)
    size = int(size)
    if not 1 <= size <= 4096:
        raise ValueError("size must lie in [1, 4096]")
    h, w = img.shape[:2]
    shape = (b.shape[0], size, size, 3)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    else:
        n = b.shape[0] * size * size * 3
        out = _require_out(out, n, img)[:n].reshape(shape)
    src = img.astype(np.float32)
    t = np.trunc(b).astype(np.int64)
    cw, ch = t[:, 2] - t[:, 0] + 1, t[:, 3] - t[:, 1] + 1
    area = (cw >= size) & (ch >= size)  # size >= 1: never an empty window
    table = None
    if area.any():
        # One table over the part of the image the area-averaged windows cover.
        rx0 = int(np.clip(t[area, 0].min() - 1, 0, w))
        ry0 = int(np.clip(t[area, 1].min() - 1, 0, h))
        rx1 = int(np.clip(t[area, 2].max(), rx0, w))
        ry1 = int(np.clip(t[area, 3].max(), ry0, h))
        table = _integral(img, rx0, ry0, rx1, ry1)
    for k, (x1, y1, x2, y2) in enumerate(t):
        if cw[k] <= 0 or ch[k] <= 0:
            out[k] = (np.float32(0.0) - _MEAN) * _SCALE
            continue
        if area[k]:
            out[k] = _area(table, x1 - 1 - rx0, y1 - 1 - ry0, int(ch[k]), int(cw[k]), size, size)
            continue
        ylo, yhi, fy = _axis(int(ch[k]), size)
        xlo, xhi, fx = _axis(int(cw[k]), size)
        # Sample only the rows and columns the resize reads; outside the image they are zero.
        rows = np.concatenate([ylo, yhi]) + (y1 - 1)
        cols = np.concatenate([xlo, xhi]) + (x1 - 1)
        patch = np.zeros((rows.size, cols.size, 3), dtype=np.float32)
        rin = (rows >= 0) & (rows < h)
        cin = (cols >= 0) & (cols < w)
        patch[np.ix_(rin, cin)] = src[np.ix_(rows[rin], cols[cin])]
        n = size
        fxx, fyy = fx[None, :, None], fy[:, None, None]
        top = patch[:n, :n] * (_ONE - fxx) + patch[:n, n:] * fxx
        bottom = patch[n:, :n] * (_ONE - fxx) + patch[n:, n:] * fxx
        v = top * (_ONE - fyy) + bottom * fyy
        out[k] = (v - _MEAN) * _SCALE
    return out


def generate_windows(scores, reg, scale: float, threshold: float, first_row: int = 0):
    """P-Net cells with score >= threshold (row-major) mapped to their windows:
    x1 = fix((2x + 1) / s), y1 = fix((2y + 1) / s), x2 = fix((2x + 12) / s), y2 = fix((2y + 12) / s),
    y counted from first_row (the maps' first row's number in the whole map they are a band of).
    Returns (boxes (K, 4), scores (K,), reg (K, 4)), all float32."""
    sc = _require(scores, "scores", np.float32)
    rg = _require(reg, "reg", np.float32)
    if sc.ndim != 2:
        raise ValueError(f"scores must have shape (H, W), got {sc.shape}")
    if rg.ndim != 3 or rg.shape[0] != 4 or rg.shape[1:] != sc.shape:
        raise ValueError(f"reg must have shape (4, H, W) matching scores {sc.shape}, got {rg.shape}")
    scale = _require_positive(scale, "scale")
    threshold = _require_unit(threshold, "threshold")
    first_row = operator.index(first_row)  # TypeError for anything but an integer
    if first_row < 0 or first_row + sc.shape[0] > _MAX_COORD:
        raise ValueError(f"first_row must be >= 0 with first_row + H <= 1e9, got {first_row}")
    ys, xs = np.nonzero(sc >= np.float32(threshold))
    x = xs.astype(np.float64)
    y = (ys + first_row).astype(np.float64)
    boxes = np.stack(
        [
            np.trunc((2.0 * x + 1.0) / scale),
            np.trunc((2.0 * y + 1.0) / scale),
            np.trunc((2.0 * x + 12.0) / scale),
            np.trunc((2.0 * y + 12.0) / scale),
        ],
        axis=1,
    ).astype(np.float32)
    return boxes.reshape(-1, 4), sc[ys, xs], np.ascontiguousarray(rg[:, ys, xs].T).reshape(-1, 4)


def nms(boxes, scores, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression with +1 areas. A box is dropped when its overlap with a
    kept, higher-scored box exceeds threshold; overlap is intersection over union ("union") or
    over the smaller area ("min"), 0 where that denominator is not positive. Returns the kept
    indices (int64), highest score first, ties broken by the lower index."""
    b = _require_boxes(boxes)
    s = _require(scores, "scores", np.float32)
    if s.ndim != 1 or s.shape[0] != b.shape[0]:
        raise ValueError(f"scores must have shape (N,) matching boxes {b.shape}, got {s.shape}")
    _require_finite(s, "scores", 3.4e38)
    _require_unit(threshold, "threshold")
    if mode not in ("union", "min"):
        raise ValueError(f"mode must be 'union' or 'min', got '{mode}'")
    thr = np.float32(threshold)
    x1, y1, x2, y2 = b.T
    area = (x2 - x1 + _ONE) * (y2 - y1 + _ONE)
    order = np.argsort(-s, kind="stable")
    keep = []
    zero = np.float32(0.0)
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + _ONE)
        ih = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + _ONE)
        inter = iw * ih
        if mode == "min":
            denom = np.minimum(area[i], area[rest])
        else:
            denom = area[i] + area[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            o = np.where(denom > zero, inter / denom, zero)
        order = rest[~(o > thr)]
    return np.asarray(keep, dtype=np.int64)


def calibrate(boxes, reg, plus_one: bool) -> np.ndarray:
    """Box regression: x1 + dx1 * w, y1 + dy1 * h, x2 + dx2 * w, y2 + dy2 * h, where
    w = x2 - x1 (+ 1 when plus_one, as after R-Net and O-Net) and likewise h."""
    b = _require_boxes(boxes)
    r = _require(reg, "reg", np.float32)
    if r.ndim != 2 or r.shape[1] != 4 or r.shape[0] != b.shape[0]:
        raise ValueError(f"reg must have shape (N, 4) matching boxes {b.shape}, got {r.shape}")
    _require_finite(r, "reg", _MAX_COORD)
    one = _ONE if plus_one else np.float32(0.0)
    w = b[:, 2] - b[:, 0] + one
    h = b[:, 3] - b[:, 1] + one
    return np.stack(
        [b[:, 0] + r[:, 0] * w, b[:, 1] + r[:, 1] * h, b[:, 2] + r[:, 2] * w, b[:, 3] + r[:, 3] * h],
        axis=1,
    ).reshape(-1, 4)


def square(boxes) -> np.ndarray:
    """Squares boxes about their centres (side = max(x2 - x1, y2 - y1)), truncated toward zero."""
    b = _require_boxes(boxes)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    x1 = b[:, 0] + w * _HALF - side * _HALF
    y1 = b[:, 1] + h * _HALF - side * _HALF
    return np.trunc(np.stack([x1, y1, x1 + side, y1 + side], axis=1)).reshape(-1, 4)
