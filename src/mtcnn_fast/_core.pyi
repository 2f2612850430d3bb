"""Type stubs of the compiled core (csrc/bindings.cpp). Kept honest by tests/test_stubs.py, which
compares every signature here with the compiled module and with its NumPy twin (_reference.py)."""

from typing import List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> List[float]: ...
def pyramid_values(height: int, width: int, scales: Sequence[float]) -> int: ...
def pyramid(
    image: npt.NDArray[np.uint8],
    scales: Sequence[float],
    threads: int = 1,
    out: Optional[npt.NDArray[np.float32]] = None,
) -> List[npt.NDArray[np.float32]]: ...
def crop_windows(
    image: npt.NDArray[np.uint8],
    boxes: npt.NDArray[np.float32],
    size: int,
    threads: int = 1,
    out: Optional[npt.NDArray[np.float32]] = None,
) -> npt.NDArray[np.float32]: ...
def generate_windows(
    scores: npt.NDArray[np.float32],
    reg: npt.NDArray[np.float32],
    scale: float,
    threshold: float,
    first_row: int = 0,
) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
def nms(
    boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], threshold: float, mode: str = "union"
) -> npt.NDArray[np.int64]: ...
def calibrate(
    boxes: npt.NDArray[np.float32], reg: npt.NDArray[np.float32], plus_one: bool
) -> npt.NDArray[np.float32]: ...
def square(boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
