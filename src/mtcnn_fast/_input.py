"""Input checks: the one place where whatever a user passes becomes the detector's native input,
a C-contiguous uint8 H x W x 3 RGB numpy array.

Accepted (documented in the README, "Inputs"):
- numpy arrays and torch tensors (any device; copied to the CPU) laid out H x W x C;
- uint8, or any integer dtype whose values all lie in 0..255;
- C = 3 (RGB, or BGR with bgr=True), C = 4 (RGBA / BGRA: alpha is dropped), C = 1 or a plain
  H x W array (grayscale: replicated to three channels);
- views and non-contiguous arrays.
Refused with TypeError: None, other types, bool and floating-point dtypes (their scale, 0..1 or
0..255, cannot be told apart safely; convert to uint8 first). Refused with ValueError: empty
frames, ranks other than 2 and 3, 2 or more than 4 channels, channels-first layouts (the message
says how to transpose), integers outside 0..255.
"""

from __future__ import annotations

import numbers
import operator
import sys
from typing import List, Union

import numpy as np

CHANNELS = (1, 3, 4)
# The suffixes (any case) of the files that the command line and align-dataset read as images.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# What the annotations accept where a number is asked for: Python's and numpy's.
Number = Union[float, int, np.floating, np.integer]
Integer = Union[int, np.integer]


def decode_image(data: bytes) -> np.ndarray:
    """Decodes an encoded image (the bytes of a JPEG, PNG, ... file) as an RGB uint8 array
    (OpenCV, 8-bit colour); ValueError if it cannot be decoded. The package's one image reader:
    read_rgb, the command line and align-dataset all come through here."""
    from ._opencv import cv2

    if len(data) == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None:
        raise ValueError(f"cannot decode an image ({len(data)} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_rgb(path) -> np.ndarray:
    """Reads an image file as an RGB uint8 array; ValueError (naming the file) if it cannot be
    read or decoded."""
    from pathlib import Path

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read an image from {path}: {e.strerror or type(e).__name__}") from None
    try:
        return decode_image(data)
    except ValueError as e:
        raise ValueError(f"cannot read an image from {path}: {e}") from None


def as_float(name: str, value) -> float:
    """A Python float from any real number, numpy scalars included; TypeError for bools,
    strings and other objects. Range checks are the caller's."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def as_int(name: str, value) -> int:
    """A Python int from any integer, numpy integers included; TypeError for bools, floats,
    strings and other objects. Range checks are the caller's."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    return operator.index(value)


def _to_numpy(frame, name: str) -> np.ndarray:
    if frame is None:
        raise TypeError(f"{name} is None: pass an H x W x 3 uint8 numpy array")
    if isinstance(frame, np.ndarray):
        return frame
    # A tensor exists only once torch is imported: never import it here (align and crop stay
    # torch-free).
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(frame, torch.Tensor):
        return frame.detach().cpu().numpy()
    raise TypeError(
        f"{name} must be an H x W x 3 uint8 numpy array or torch tensor, got {type(frame).__name__}"
        " (for a PIL image pass np.asarray(image))"
    )


def as_rgb_frame(frame, bgr: bool = False, name: str = "frame") -> np.ndarray:
    """Validates one frame and returns it as a C-contiguous uint8 (H, W, 3) RGB array."""
    a = _to_numpy(frame, name)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        hint = ""
        if np.issubdtype(a.dtype, np.floating):
            hint = (": floating-point frames are refused because 0..1 and 0..255 cannot be told "
                    "apart; convert with (x * 255).round().astype(np.uint8) for 0..1 values or "
                    "x.round().clip(0, 255).astype(np.uint8) for 0..255 values")
        raise TypeError(f"{name} must have dtype uint8, got {a.dtype}{hint}")
    if a.ndim == 3 and a.shape[0] in CHANNELS and a.shape[2] not in CHANNELS:
        raise ValueError(
            f"{name} has shape {a.shape}, which looks channels-first (C, H, W); frames are "
            "H x W x C: pass frame.transpose(1, 2, 0) (numpy) or frame.permute(1, 2, 0) (torch)"
        )
    if a.ndim not in (2, 3):
        raise ValueError(f"{name} must be H x W x 3 (or H x W grayscale), got shape {a.shape}")
    if a.ndim == 3 and a.shape[2] not in CHANNELS:
        raise ValueError(
            f"{name} has {a.shape[2]} channels; accepted: 3 (RGB/BGR), 4 (RGBA/BGRA), 1 (gray)"
        )
    if a.size == 0:
        raise ValueError(f"{name} is empty: shape {a.shape}")
    if a.dtype != np.uint8:
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"{name} holds values {lo}..{hi}; integer frames must lie in 0..255")
        a = a.astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(a, 3, axis=2))
    a = a[:, :, :3]
    if bgr:
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def as_frame_list(frames, bgr: bool = False) -> List[np.ndarray]:
    """A list/tuple of frames, or an N x H x W x C array or tensor, as a list of native frames."""
    if isinstance(frames, (list, tuple)):
        items = list(frames)
    else:
        items = list(_to_numpy(frames, "frames"))
    return [as_rgb_frame(f, bgr, name=f"frames[{i}]") for i, f in enumerate(items)]


def is_batch(frames) -> bool:
    """Lists, tuples and 4-D arrays or tensors are batches (a list of results comes back)."""
    if isinstance(frames, (list, tuple)):
        return True
    return getattr(frames, "ndim", None) == 4
