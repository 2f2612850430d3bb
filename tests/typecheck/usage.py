"""Type-checked, never run (.ci/run: mypy): the annotations say what the API gives back, so that
an editor and a type checker see a Detections for one frame and a list of them for a batch."""

from typing import Iterator, List, Tuple

import numpy as np
import torch

from mtcnn_fast import Detections, Face, FaceDetector, align, crop


def one_frame(det: FaceDetector, rgb: np.ndarray) -> Detections:
    faces: Detections = det.detect(rgb)
    return faces


def one_tensor(det: FaceDetector, rgb: torch.Tensor) -> Detections:
    return det.detect(rgb, bgr=False)


def batch(det: FaceDetector, frames: List[np.ndarray]) -> List[Detections]:
    many: List[Detections] = det.detect(frames)
    pair: List[Detections] = det.detect((frames[0], frames[1]))
    return many + pair


def records(faces: Detections) -> Tuple[Face, Detections, float]:
    first: Face = faces[0]
    top: Detections = faces[:2]
    box: np.ndarray = first.box
    best = 0.0
    for face in faces:
        best = max(best, float(face.score))
    for box, score, landmarks in faces:
        landmarks.shape
    return first, top, best


def crops(rgb: np.ndarray, faces: Detections) -> np.ndarray:
    aligned: np.ndarray = align(rgb, faces, size=np.int64(112))
    squares: np.ndarray = crop(rgb, faces, margin_px=20, size=160)
    return np.concatenate([aligned, crop(rgb, faces[0], margin_fraction=np.float32(0.2), size=112)])


def stream(det: FaceDetector) -> Iterator[Tuple[np.ndarray, Detections]]:
    return det.stream("clip.mp4", track=np.int64(2))


def settings() -> FaceDetector:
    return FaceDetector(min_face_size=np.float32(20), thresholds=(0.6, 0.7, 0.7), scale_factor=0.709)


def per_network_precision() -> FaceDetector:
    return FaceDetector(device="cpu", precision={"onet": "bfloat16"})
