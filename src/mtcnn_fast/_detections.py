"""What detection returns: Detections (the faces of one frame) and Face (one of them), and the
one function that turns a face into a JSON record (the command line and align-dataset share it).

Torch-free, so that ``import mtcnn_fast`` and ``align``/``crop`` do not load torch.
"""

from __future__ import annotations

import dis
import functools
import numbers
import sys
from dataclasses import dataclass
from typing import Any, Dict, Iterator, NamedTuple, Union, overload

import numpy as np


class Face(NamedTuple):
    """One detected face: box (4,) float32 x1, y1, x2, y2; score, the O-Net face probability
    (a numpy float32); landmarks (5, 2) float32, as in Detections. A named tuple, so
    ``box, score, landmarks = face`` works."""

    box: np.ndarray
    score: np.float32
    landmarks: np.ndarray


UNPACK_HINT = (
    "a Detections is not unpacked: in facenet-pytorch `boxes, probs = mtcnn.detect(img)` (and "
    "`boxes, probs, points = ...` with landmarks=True) gives arrays, while a Detections is a "
    "sequence of faces, so the same line would silently mean faces here. For the arrays write "
    "`boxes, scores, landmarks = faces.boxes, faces.scores, faces.landmarks`; for the faces "
    "`faces[0]`, `a, b = list(faces)` or `for box, score, landmarks in faces`"
)


@functools.lru_cache(maxsize=512)
def _is_unpacking(code, offset: int) -> bool:
    for ins in dis.get_instructions(code):
        if ins.offset == offset:
            return ins.opname.startswith(("UNPACK_SEQUENCE", "UNPACK_EX"))
    return False


def _caller_unpacks() -> bool:
    """Whether the Python code that asked for an iterator is an unpacking statement
    (``a, b = x``, ``a, *b = x``; CPython: its current instruction is UNPACK_SEQUENCE or
    UNPACK_EX). False where this cannot be told."""
    try:
        frame = sys._getframe(2)
        return _is_unpacking(frame.f_code, frame.f_lasti)
    except (AttributeError, ValueError, TypeError):  # pragma: no cover - other interpreters
        return False


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame, best score first.

    boxes: (N, 4) float32, x1, y1, x2, y2. scores: (N,) float32, O-Net face probability.
    landmarks: (N, 5, 2) float32, (x, y) of left eye, right eye, nose tip, left mouth corner,
    right mouth corner ("left" = image left). N may be 0; the arrays are never None.

    A Detections is also a read-only sequence of its faces: ``len(faces)``, ``faces[0]`` (a Face:
    box, score, landmarks), ``for face in faces``, ``for box, score, landmarks in faces``;
    ``faces[1:3]``, an integer index array or a boolean mask select a Detections.

    A Detections is never unpacked: ``boxes, probs = faces`` and ``boxes, probs, points = faces``
    (facenet-pytorch's ``mtcnn.detect`` idioms, which give arrays there) raise TypeError saying
    what to write instead, whatever the number of faces, rather than silently giving faces.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @overload
    def __getitem__(self, index: Union[int, np.integer]) -> Face: ...

    @overload
    def __getitem__(self, index: Union[slice, np.ndarray, list]) -> "Detections": ...

    def __getitem__(self, index: Any) -> Union[Face, "Detections"]:
        if isinstance(index, numbers.Integral) and not isinstance(index, (bool, np.bool_)):
            n = len(self)
            i = int(index)
            if not -n <= i < n:
                raise IndexError(f"face index {i} out of range: {n} face(s)")
            i %= n
            return Face(self.boxes[i], self.scores[i], self.landmarks[i])
        if isinstance(index, (slice, list, np.ndarray)):
            sel = np.asarray(index) if not isinstance(index, slice) else index
            if isinstance(sel, np.ndarray):
                if sel.ndim != 1 or not (sel.dtype == np.bool_ or np.issubdtype(sel.dtype, np.integer)):
                    if not (sel.size == 0 and sel.ndim == 1):
                        raise IndexError(
                            f"faces can be selected by an integer, a slice, a 1-D integer array "
                            f"or a boolean mask, got an array of dtype {sel.dtype} and shape {sel.shape}")
                    sel = sel.astype(np.intp)
                if sel.dtype == np.bool_ and sel.shape != (len(self),):
                    raise IndexError(f"boolean mask of shape {sel.shape} for {len(self)} face(s)")
            return Detections(np.ascontiguousarray(self.boxes[sel]), np.ascontiguousarray(self.scores[sel]),
                              np.ascontiguousarray(self.landmarks[sel]))
        if isinstance(index, str):
            raise TypeError(f"faces[{index!r}]: a Detections is indexed by face; for the arrays "
                            f"write faces.boxes, faces.scores or faces.landmarks")
        raise TypeError(f"faces are indexed by integers, slices, integer arrays or boolean masks, "
                        f"got {type(index).__name__}")

    def __iter__(self) -> Iterator[Face]:
        if _caller_unpacks():
            raise TypeError(UNPACK_HINT)
        return (Face(b, s, p) for b, s, p in zip(self.boxes, self.scores, self.landmarks))

    @staticmethod
    def empty() -> "Detections":
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        )


def face_record(box, score, landmarks) -> Dict[str, Any]:
    """One face as JSON-ready numbers, with the fixed key order and rounding that the command
    line's JSON and align-dataset's manifest use (boxes and landmarks to 0.01 px, scores to 1e-6)."""
    return {"box": [round(float(v), 2) for v in box], "score": round(float(score), 6),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in landmarks]}
