"""Input checks: the one place where a user's frame becomes the detector's native input.

The native input is a uint8 H x W x 3 numpy array, RGB (or BGR with ``bgr=True``). Anything
else raises TypeError or ValueError saying what was wrong and what to pass instead.
"""

from __future__ import annotations

import numpy as np


def as_rgb_frame(frame, bgr: bool = False, name: str = "frame") -> np.ndarray:
    """Validates one frame and returns it as a C-contiguous uint8 (H, W, 3) RGB array."""
    if frame is None:
        raise TypeError(f"{name} is None: pass an H x W x 3 uint8 numpy array")
    if not isinstance(frame, np.ndarray):
        raise TypeError(
            f"{name} must be an H x W x 3 uint8 numpy array, got {type(frame).__name__}"
        )
    if frame.dtype != np.uint8:
        raise TypeError(
            f"{name} must have dtype uint8 (pixel values 0..255), got {frame.dtype}; "
            "convert with np.clip(x, 0, 255).astype(np.uint8)"
        )
    if frame.ndim != 3 or frame.shape[2] != 3:
        hint = ""
        if frame.ndim == 3 and frame.shape[0] == 3 and frame.shape[2] != 3:
            hint = " (it looks channels-first: pass frame.transpose(1, 2, 0))"
        raise ValueError(f"{name} must have shape (H, W, 3), got {frame.shape}{hint}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {frame.shape}")
    if bgr:
        frame = frame[:, :, ::-1]
    return np.ascontiguousarray(frame)
