"""Helpers shared by the test modules (kept out of conftest.py so that they import by a unique
name next to benchmarks/)."""

from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
WIDER_VAL = SHARED_DATA / "wider_val_dev"


def read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
