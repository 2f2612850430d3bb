"""mtcnn-fast: fast, faithful MTCNN face and five-landmark detection.

    from mtcnn_fast import FaceDetector
    faces = FaceDetector().detect(rgb)   # rgb: H x W x 3 uint8, RGB order
    faces.boxes, faces.scores, faces.landmarks
    for box, score, landmarks in faces: ...

Coordinates are the original networks' outputs unchanged: 0-based pixel coordinates in the frame
of the WIDER FACE annotations the networks were trained on.

The public API is what ``__all__`` lists: FaceDetector, Detections, Face, align, crop and
__version__ (with ``mtcnn_fast.dataset.align_dataset`` and ``mtcnn_fast.export.export_onnx``,
documented in the README). Importing the package does not import torch: FaceDetector is loaded
on first use, so ``from mtcnn_fast import align, crop`` stays light.
"""

from typing import TYPE_CHECKING, Any

from ._detections import Detections, Face
from .align import align, crop

if TYPE_CHECKING:
    from .detector import FaceDetector

__all__ = ["FaceDetector", "Detections", "Face", "align", "crop", "__version__"]
__version__ = "0.1.0"  # the one version source (pyproject reads it)


_SUBMODULES = {"cli", "dataset", "detector", "evaluation", "export", "metrics", "nets", "ops", "video"}


def __getattr__(name: str) -> Any:
    # FaceDetector needs torch: imported on first access only (and so are the submodules).
    if name == "FaceDetector":
        from .detector import FaceDetector

        return FaceDetector
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | {"FaceDetector"})
