"""Readers for the training sets: WIDER FACE (official text layout and the JSON-lines layout of
../shared/data) for faces, and 5-point landmark sets (the landmarks_5pt JSON-lines layout and the
CelebA landmark list) for landmark faces.

Boxes are (x1, y1, x2, y2) with x2 = x + w, the WIDER FACE annotation frame the detector reports
in. Landmarks are (5, 2): left eye, right eye, nose, left and right mouth corner (image left first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np


@dataclass
class FaceImage:
    """One annotated photo: faces to learn from, and boxes that only veto negatives."""

    path: Path
    boxes: np.ndarray  # (N, 4) faces
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (M, 4) invalid / unsure

    @property
    def all_boxes(self) -> np.ndarray:
        return np.concatenate([self.boxes, self.ignore]).reshape(-1, 4)


@dataclass
class LandmarkFace:
    """One image with one face: its box (None when unknown) and its five points."""

    path: Path
    box: Optional[np.ndarray]  # (4,)
    points: np.ndarray  # (5, 2)


def _boxes(rows) -> np.ndarray:
    return np.asarray(rows or [], np.float64).reshape(-1, 4)


def load_wider_jsonl(root) -> List[FaceImage]:
    """ROOT/annotations.jsonl: {"image", "boxes", "ignore"} per line, images relative to ROOT."""
    root = Path(root)
    ann = root / "annotations.jsonl"
    if not ann.is_file():
        raise ValueError(f"{ann} not found (expected the JSON-lines WIDER layout)")
    out = []
    for line in ann.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out.append(FaceImage(root / rec["image"], _boxes(rec.get("boxes")), _boxes(rec.get("ignore"))))
    return out


def load_wider_official(gt_txt, images_dir) -> List[FaceImage]:
    """wider_face_train_bbx_gt.txt: image path, face count, then per face
    `x y w h blur expression illumination invalid occlusion pose`. Faces marked invalid, or of zero
    width or height, go to `ignore`."""
    gt_txt, images_dir = Path(gt_txt), Path(images_dir)
    if not gt_txt.is_file():
        raise ValueError(f"{gt_txt} not found")
    lines = [ln.strip() for ln in gt_txt.read_text().splitlines()]
    out, i = [], 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        name = lines[i]
        try:
            count = int(lines[i + 1])
        except (IndexError, ValueError):
            raise ValueError(f"{gt_txt}:{i + 2}: expected a face count after {name}") from None
        rows = [r.split() for r in lines[i + 2 : i + 2 + max(count, 1)]][:count]
        good, bad = [], []
        for r in rows:
            x, y, w, h = map(float, r[:4])
            invalid = len(r) > 7 and r[7] == "1"
            (bad if invalid or w <= 0 or h <= 0 else good).append([x, y, x + w, y + h])
        out.append(FaceImage(images_dir / name, _boxes(good), _boxes(bad)))
        i += 2 + max(count, 1)  # an image with no face still has one dummy row
    return out


def load_landmarks_jsonl(path, root=None) -> List[LandmarkFace]:
    """The landmarks_5pt layout: {"image", "boxes": [[x1, y1, x2, y2]], "landmarks": [[[x, y] x5]]}."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            box = rec.get("boxes") or [None]
            out.append(LandmarkFace(root / rec["image"],
                                    None if box[0] is None else np.asarray(box[0], np.float64),
                                    np.asarray(rec["landmarks"][0], np.float64).reshape(5, 2)))
    return out


def load_celeba(landmarks_txt, images_dir, bbox_txt=None) -> List[LandmarkFace]:
    """CelebA's list_landmarks_celeba.txt (a count line, a header line, then
    `name lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y
    rightmouth_x rightmouth_y`), with the boxes of list_bbox_celeba.txt (`name x y w h`) when given."""
    images_dir = Path(images_dir)

    def rows(path):
        lines = Path(path).read_text().splitlines()
        for ln in lines[2:]:
            parts = ln.split()
            if parts:
                yield parts[0], [float(v) for v in parts[1:]]

    boxes = {}
    if bbox_txt is not None:
        for name, (x, y, w, h) in rows(bbox_txt):
            boxes[name] = np.array([x, y, x + w, y + h])
    out = []
    for name, values in rows(landmarks_txt):
        if len(values) != 10:
            raise ValueError(f"{landmarks_txt}: {name} has {len(values)} numbers, expected 10")
        out.append(LandmarkFace(images_dir / name, boxes.get(name), np.asarray(values).reshape(5, 2)))
    return out


def noisy_landmarks(points: np.ndarray, min_eye_distance: float = 12.0, min_mouth_y: float = 40.0) -> bool:
    """The rule ../shared/data/README.md gives for lfw_5590's broken labels (points squeezed into
    the top of the 80 x 80 crop): eyes under 12 px apart, or a mouth corner above y = 40."""
    eyes = float(np.hypot(*(points[1] - points[0])))
    return eyes < min_eye_distance or float(points[3:, 1].min()) < min_mouth_y


def box_from_points(points: np.ndarray, prior: Sequence[float]) -> np.ndarray:
    """A square face box in the detector's frame estimated from five points: centre at the points'
    centre shifted by (prior[0], prior[1]) units, side prior[2] units, where one unit is the
    distance from the eyes' midpoint to the mouth corners' midpoint."""
    points = np.asarray(points, np.float64)
    unit = float(np.hypot(*(points[3:].mean(0) - points[:2].mean(0))))
    cx, cy = points.mean(0) + np.asarray(prior[:2]) * unit
    half = prior[2] * unit / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def split_landmark_faces(faces: Sequence[LandmarkFace], noisy_rule: bool) -> Tuple[List[LandmarkFace], int]:
    """Drops the noisy crops (when asked); returns (kept, number dropped)."""
    if not noisy_rule:
        return list(faces), 0
    kept = [f for f in faces if not noisy_landmarks(f.points)]
    return kept, len(faces) - len(kept)
