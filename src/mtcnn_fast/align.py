"""Face crops for recognition models: similarity-aligned crops on the common 5-point template,
and plain square crops with a margin.

The template is the 112 x 112 layout that ArcFace-style recognisers are trained on (the numbers
come from insightface, MIT License, Copyright (c) 2018 Jiankang Deng and Jia Guo): left eye,
right eye, nose tip, left and right mouth corner, in pixels of a 112 x 112 crop; the same order
as mtcnn-fast's landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._input import as_rgb_frame

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
    pts = np.asarray(landmarks, np.float64)
    if pts.ndim == 2:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must have shape (N, 5, 2) or (5, 2), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks must be finite")
    # Five points at one place fix no scale or rotation: warping them would silently return an
    # arbitrary crop, so such a face is an error.
    spread = np.abs(pts - pts.mean(axis=1, keepdims=True)).max(axis=(1, 2))
    flat = np.flatnonzero(spread == 0)
    if len(flat):
        raise ValueError(f"the 5 landmarks of face {int(flat[0])} all coincide: no alignment is defined")
    return pts


def align(frame, landmarks, size: int = TEMPLATE_SIZE, *, bgr: bool = False) -> np.ndarray:
    """Warps each face onto the 5-point template scaled to size x size: (N, size, size, 3) uint8,
    in the frame's channel order (RGB, or BGR with bgr=True). landmarks: (N, 5, 2) as returned by
    FaceDetector.detect, or one face's (5, 2)."""
    img = as_rgb_frame(frame, bgr)
    pts = _check_points(landmarks)
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    template = ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)
    out = np.empty((len(pts), size, size, 3), np.uint8)
    for k, p in enumerate(pts):
        m = similarity_transform(p, template)
        out[k] = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return out[..., ::-1].copy() if bgr else out


def crop(frame, boxes, margin: float = 0.0, size: int = 160, *, bgr: bool = False) -> np.ndarray:
    """Square crops about each box's centre, of side max(w, h) * (1 + 2 * margin), resized to
    size x size: (N, size, size, 3) uint8; what lies outside the frame is black."""
    img = as_rgb_frame(frame, bgr)
    b = np.asarray(boxes, np.float64)
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4 or not np.isfinite(b).all():
        raise ValueError(f"boxes must be finite with shape (N, 4), got {b.shape}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    out = np.empty((len(b), size, size, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(b):
        side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
        if side <= 0:
            raise ValueError(f"box {k} is empty: {b[k].tolist()}")
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        scale = size / side
        # Maps the square's corner (cx - side/2, cy - side/2) to (0, 0), pixel centres aligned.
        m = np.array([[scale, 0, (side / 2 - cx) * scale], [0, scale, (side / 2 - cy) * scale]])
        kernel = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        out[k] = cv2.warpAffine(img, m, (size, size), flags=kernel, borderValue=0)
    return out[..., ::-1].copy() if bgr else out
