"""Small geometric helpers shared by the evaluation tools, tests and benchmarks."""

from __future__ import annotations

import numpy as np


def iou_matrix(a, b, plus_one: bool = False) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), as an (N, M) float64 array.

    plus_one: count areas as (x2 - x1 + 1) * (y2 - y1 + 1), the WIDER FACE protocol's way."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    one = 1.0 if plus_one else 0.0
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
