"""Helpers and assertions shared by the test modules (kept out of conftest.py so that they import by a unique
name next to benchmarks/)."""

from pathlib import Path

import numpy as np

from mtcnn_fast import Detections
from mtcnn_fast._input import read_rgb  # noqa: F401  (the tests' image reader)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
WIDER_VAL = SHARED_DATA / "wider_val_dev"


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
