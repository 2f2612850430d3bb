"""Helpers shared by the benchmark modules."""

import numpy as np

import frames as frame_sets

SIZES = list(frame_sets.SIZES) + ["wider"]


def frames_for(size: str):
    """Two frames of a named size, or four WIDER photos at their own size for "wider"."""
    return frame_sets.wider_photos(4) if size == "wider" else frame_sets.frames(size, 2)


def same_detections(a, b) -> bool:
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ("boxes", "scores", "landmarks"))
