"""Face crops for recognition models: similarity-aligned crops on the common 5-point template,
and plain square crops with a margin.

The template is the 112 x 112 layout that ArcFace-style recognisers are trained on (the numbers
come from insightface, MIT License, Copyright (c) 2018 Jiankang Deng and Jia Guo): left eye,
right eye, nose tip, left and right mouth corner, in pixels of a 112 x 112 crop; the same order
as mtcnn-fast's landmarks.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ._detections import Detections, Face
from ._input import Integer, Number, as_float, as_int, as_rgb_frame

ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
TEMPLATE_SIZE = 112


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix of the rotation + uniform scale + translation that maps the points src
    (N, 2) onto dst (N, 2) with the least squared error (closed form, no reflection)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1
    rot = u @ fix @ vt
    scale = (sig * np.diag(fix)).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def _check_points(landmarks) -> np.ndarray:
    if isinstance(landmarks, (Detections, Face)):
        landmarks = landmarks.landmarks
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim == 2:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must be a Detections, a Face, or an array of shape (N, 5, 2) "
                         f"or (5, 2), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks must be finite")
    # Five points at one place fix no scale or rotation: warping them would silently return an
    # arbitrary crop, so such a face is an error.
    spread = np.abs(pts - pts.mean(axis=1, keepdims=True)).max(axis=(1, 2))
    flat = np.flatnonzero(spread == 0)
    if len(flat):
        raise ValueError(f"the 5 landmarks of face {int(flat[0])} all coincide: no alignment is defined")
    return pts


def _check_boxes(boxes) -> np.ndarray:
    if isinstance(boxes, Detections):
        boxes = boxes.boxes
    elif isinstance(boxes, Face):
        boxes = boxes.box
    b = np.asarray(boxes, np.float64)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4 or not np.isfinite(b).all():
        raise ValueError(f"boxes must be a Detections, a Face, or finite numbers of shape (N, 4) "
                         f"or (4,), got shape {b.shape}")
    return b


def _check_size(size, low: int) -> int:
    try:
        size = as_int("size", size)
    except TypeError:
        raise ValueError(f"size must be an integer >= {low}, got {size!r}") from None
    if size < low:
        raise ValueError(f"size must be an integer >= {low}, got {size!r}")
    return size


def align(frame, landmarks, size: Integer = TEMPLATE_SIZE, *, bgr: bool = False) -> np.ndarray:
    """Warps each face onto the 5-point template scaled to size x size: (N, size, size, 3) uint8,
    in the frame's channel order (RGB, or BGR with bgr=True).

    landmarks: the Detections that FaceDetector.detect returned, one Face of it, or the points
    themselves: (N, 5, 2), or one face's (5, 2). size: an integer >= 8 (numpy integers too)."""
    img = as_rgb_frame(frame, bgr)
    pts = _check_points(landmarks)
    size = _check_size(size, 8)
    template = ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)
    from ._opencv import cv2  # here, not at the top: detection needs no OpenCV

    out = np.empty((len(pts), size, size, 3), np.uint8)
    for k, p in enumerate(pts):
        m = similarity_transform(p, template)
        out[k] = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return out[..., ::-1].copy() if bgr else out


def _check_margin(name: str, value) -> float:
    value = as_float(name, value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def crop(frame, boxes, margin_fraction: Number = 0.0, size: Integer = 160, *, margin_px: Optional[Number] = None,
         bgr: bool = False, margin: Optional[Number] = None) -> np.ndarray:
    """Square crops about each box's centre, resized to size x size: (N, size, size, 3) uint8, in
    the frame's channel order; what lies outside the frame is black.

    boxes: the Detections that FaceDetector.detect returned, one Face of it, or boxes (N, 4) or
    (4,) x1, y1, x2, y2.
    margin_fraction: the margin on each side as a fraction of the box's longer side: the square
        has side max(w, h) * (1 + 2 * margin_fraction) (0.2 adds 20% on each side).
    margin_px: instead, the margin in pixels of the output crop, split between the two sides,
        as facenet-pytorch's ``margin``: the box's longer side fills size - margin_px pixels.
        Must be below size.
    margin: the name of margin_fraction in mtcnn-fast 0.1, kept for fractions up to 1; a value
        above 1 (which would be a crop almost all black, and is most likely meant in pixels) is
        a ValueError that says to write margin_px= or margin_fraction=.
    """
    img = as_rgb_frame(frame, bgr)
    b = _check_boxes(boxes)
    size = _check_size(size, 1)
    if margin is not None:
        given = _check_margin("margin", margin)
        if given > 1:
            raise ValueError(
                f"crop(margin={margin!r}): the margin is a fraction of the box side (0.2 = 20% on "
                f"each side), and {margin!r} looks like pixels; write margin_px={margin!r} for a "
                f"margin in pixels of the crop (facenet-pytorch's margin), or margin_fraction= for "
                f"a fraction")
        if margin_fraction != 0.0 or margin_px is not None:
            raise ValueError("give one of margin_fraction, margin_px and margin (the old name of margin_fraction)")
        margin_fraction = given
    fraction = _check_margin("margin_fraction", margin_fraction)
    if margin_px is not None:
        if fraction != 0.0:
            raise ValueError("give either margin_fraction or margin_px, not both")
        px = _check_margin("margin_px", margin_px)
        if px >= size:
            raise ValueError(f"margin_px must be below size ({size}): the face would fill "
                             f"{size} - {px:g} pixels of the crop, got margin_px={margin_px!r}")
        # The box's longer side L maps onto size - px pixels: the square's side is L * size / (size - px).
        fraction = px / (2 * (size - px))
    from ._opencv import cv2

    out = np.empty((len(b), size, size, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(b):
        side = max(x2 - x1, y2 - y1) * (1 + 2 * fraction)
        if side <= 0:
            raise ValueError(f"box {k} is empty: {b[k].tolist()}")
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        scale = size / side
        # Maps the square's corner (cx - side/2, cy - side/2) to (0, 0), pixel centres aligned.
        m = np.array([[scale, 0, (side / 2 - cx) * scale], [0, scale, (side / 2 - cy) * scale]])
        kernel = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        out[k] = cv2.warpAffine(img, m, (size, size), flags=kernel, borderValue=0)
    return out[..., ::-1].copy() if bgr else out
