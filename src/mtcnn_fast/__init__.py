"""mtcnn-fast: fast, faithful MTCNN face and five-landmark detection.

    from mtcnn_fast import FaceDetector
    faces = FaceDetector().detect(rgb)   # rgb: H x W x 3 uint8, RGB order
    faces.boxes, faces.scores, faces.landmarks

Coordinates are the original networks' outputs unchanged: 0-based pixel coordinates in the frame
of the WIDER FACE annotations the networks were trained on.
"""

from .align import align, crop
from .detector import Detections, FaceDetector

__all__ = ["FaceDetector", "Detections", "align", "crop", "__version__"]
__version__ = "0.1.0"
