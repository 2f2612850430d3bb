"""Helpers and assertions shared by the test modules (kept out of conftest.py so that they import by a unique
name next to benchmarks/)."""

from pathlib import Path

import cv2
import numpy as np

from mtcnn_fast import Detections

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
WIDER_VAL = SHARED_DATA / "wider_val_dev"


def read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def assert_same(a: Detections, b: Detections):
    for name in ("boxes", "scores", "landmarks"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float32
        assert np.array_equal(x, y), name


def assert_empty(faces: Detections):
    assert len(faces) == 0
    assert faces.boxes.shape == (0, 4) and faces.boxes.dtype == np.float32
    assert faces.scores.shape == (0,) and faces.scores.dtype == np.float32
    assert faces.landmarks.shape == (0, 5, 2) and faces.landmarks.dtype == np.float32
