"""Training samples: windows cut from annotated photos, labelled by IoU as the paper does.

Kinds: negatives (IoU < 0.3 with every face), positives (IoU >= 0.65), part faces
(0.4 <= IoU < 0.65) and landmark faces; windows with 0.3 <= IoU < 0.4 are not used.

A window is a box in the detector's own frame, and it is cut out exactly the way the detector
cuts its inputs (the core's crop_windows: truncated, zero fill, the detector's resize kernel), so a network learns
from what it will see. Targets follow the detector's decoding (mtcnn_fast.detector):
- box offsets (gx1 - x1) / W, (gy1 - y1) / H, (gx2 - x2) / W, (gy2 - y2) / H, with W = x2 - x1 for
  P-Net and x2 - x1 + 1 for R-Net and O-Net (what `calibrate` inverts);
- landmarks (px - x1 + 1) / (W + 1) for the five x, then the five y (what `output` inverts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from mtcnn_fast._input import read_rgb
from mtcnn_fast._reference import _MEAN, _SCALE
from mtcnn_fast.metrics import iou_matrix
from mtcnn_fast.ops import get_ops

from .data import box_from_points

NEG, POS, PART, LANDMARK = 0, 1, 2, 3
KIND_NAMES = ("negative", "positive", "part", "landmark")
NEG_IOU, PART_IOU, POS_IOU = 0.3, 0.4, 0.65
INPUT_SIZE = {"pnet": 12, "rnet": 24, "onet": 48}


def label_ious(ious: np.ndarray) -> np.ndarray:
    """Kind per window from its best IoU with any face: NEG, PART, POS, or -1 (not used)."""
    ious = np.asarray(ious, np.float64)
    kind = np.full(ious.shape, -1, np.int8)
    kind[ious < NEG_IOU] = NEG
    kind[(ious >= PART_IOU) & (ious < POS_IOU)] = PART
    kind[ious >= POS_IOU] = POS
    return kind


def label_windows(windows: np.ndarray, faces: np.ndarray, veto: Optional[np.ndarray] = None):
    """Labels windows (K, 4) against faces (N, 4): kinds (K,) and the matched face per window
    (K, 4; its best-IoU face). Boxes in `veto` (ignored faces) turn would-be negatives that
    overlap them (IoU >= 0.3) into unused windows: an unsure face is no negative."""
    windows = np.asarray(windows, np.float64).reshape(-1, 4)
    faces = np.asarray(faces, np.float64).reshape(-1, 4)
    if len(faces):
        ious = iou_matrix(windows, faces)
        best = ious.argmax(axis=1)
        kind = label_ious(ious[np.arange(len(windows)), best])
        matched = faces[best]
    else:
        kind = np.full(len(windows), NEG, np.int8)
        matched = np.zeros((len(windows), 4))
    if veto is not None and len(veto):
        unsure = iou_matrix(windows, veto).max(axis=1) >= NEG_IOU
        kind[(kind == NEG) & unsure] = -1
    return kind, matched


def box_offsets(windows: np.ndarray, faces: np.ndarray, plus_one: bool) -> np.ndarray:
    """The regression targets that `calibrate(windows, targets, plus_one)` maps back to faces."""
    w = np.asarray(windows, np.float64).reshape(-1, 4)
    f = np.asarray(faces, np.float64).reshape(-1, 4)
    one = 1.0 if plus_one else 0.0
    ww = (w[:, 2] - w[:, 0] + one)[:, None]
    hh = (w[:, 3] - w[:, 1] + one)[:, None]
    d = f - w
    return np.concatenate([d[:, 0:1] / ww, d[:, 1:2] / hh, d[:, 2:3] / ww, d[:, 3:4] / hh], axis=1)


def landmark_targets(windows: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(K, 10) fractions of the window: x1..x5 then y1..y5, as O-Net outputs them."""
    w = np.asarray(windows, np.float64).reshape(-1, 4)
    p = np.asarray(points, np.float64).reshape(-1, 5, 2)
    ww = (w[:, 2] - w[:, 0] + 1.0)[:, None]
    hh = (w[:, 3] - w[:, 1] + 1.0)[:, None]
    xs = (p[:, :, 0] - w[:, 0:1] + 1.0) / ww
    ys = (p[:, :, 1] - w[:, 1:2] + 1.0) / hh
    return np.concatenate([xs, ys], axis=1)


@dataclass
class SampleSet:
    """Network inputs as uint8 (N, S, S, 3) RGB, with kind (N,), box targets (N, 4) and landmark
    targets (N, 10) (zeros where a kind has none)."""

    images: np.ndarray
    kind: np.ndarray
    box: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    @staticmethod
    def empty(size: int) -> "SampleSet":
        return SampleSet(np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int8),
                         np.zeros((0, 4), np.float32), np.zeros((0, 10), np.float32))

    @staticmethod
    def concat(parts: Sequence["SampleSet"], size: int) -> "SampleSet":
        parts = [p for p in parts if len(p)]
        if not parts:
            return SampleSet.empty(size)
        return SampleSet(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("images", "kind", "box", "points")))

    def counts(self) -> Dict[str, int]:
        return {name: int((self.kind == k).sum()) for k, name in enumerate(KIND_NAMES)}

    def save(self, path) -> None:
        np.savez(path, images=self.images, kind=self.kind, box=self.box, points=self.points)

    @staticmethod
    def load(path) -> "SampleSet":
        with np.load(path, allow_pickle=False) as d:
            return SampleSet(d["images"], d["kind"], d["box"], d["points"])


def cut(image: np.ndarray, windows: np.ndarray, size: int) -> np.ndarray:
    """The detector's crops of `windows`, back in uint8 (rounding the bilinear values)."""
    ops = get_ops("cpp")
    x = ops.crop_windows(image, np.ascontiguousarray(windows, np.float32), size)
    return np.clip(np.rint(x / _SCALE + _MEAN), 0, 255).astype(np.uint8)


def _square_near(face: np.ndarray, rng: np.random.Generator, n: int, shift: float, scale: float) -> np.ndarray:
    """n square windows around a face: side max(w, h) times a factor in [1 - scale, 1 + scale],
    centre moved by up to `shift` of the side in x and y."""
    w, h = face[2] - face[0], face[3] - face[1]
    side = np.maximum(w, h) * rng.uniform(1 - scale, 1 + scale, n)
    cx = (face[0] + face[2]) / 2 + rng.uniform(-shift, shift, n) * w
    cy = (face[1] + face[3]) / 2 + rng.uniform(-shift, shift, n) * h
    x1, y1 = np.floor(cx - side / 2), np.floor(cy - side / 2)
    side = np.floor(side)
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def _random_squares(h: int, w: int, rng: np.random.Generator, n: int, min_side: int) -> np.ndarray:
    max_side = max(min_side + 1, min(h, w) // 2)
    side = rng.integers(min_side, max_side, n).astype(np.float64)
    x1 = np.floor(rng.uniform(0, 1, n) * np.maximum(w - side, 1))
    y1 = np.floor(rng.uniform(0, 1, n) * np.maximum(h - side, 1))
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def _select(kind, matched, windows, plus_one, image, size, quota: Dict[int, int], rng) -> SampleSet:
    """At most quota[k] windows of each kind k, cut out with their targets."""
    chosen = []
    for k, limit in quota.items():
        idx = np.flatnonzero(kind == k)
        if len(idx) > limit:
            idx = rng.choice(idx, limit, replace=False)
        chosen.append(idx)
    idx = np.sort(np.concatenate(chosen)).astype(np.int64)
    if not len(idx):
        return SampleSet.empty(size)
    k = kind[idx]
    box = np.where(np.isin(k, [POS, PART])[:, None], box_offsets(windows[idx], matched[idx], plus_one), 0.0)
    return SampleSet(cut(image, windows[idx], size), k.astype(np.int8), box.astype(np.float32),
                     np.zeros((len(idx), 10), np.float32))


def random_samples(images: Iterable, size: int, rng: np.random.Generator, *, negatives: int = 50,
                   near_per_face: int = 20, min_face: float = 12.0, progress=None) -> SampleSet:
    """Random windows, labelled by IoU: squares anywhere in each photo (negatives) and squares
    around each face of at least `min_face` px (positives, part faces and close negatives). All of
    P-Net's face samples; for R-Net and O-Net they add to the windows the cascade gives."""
    plus_one = size != INPUT_SIZE["pnet"]
    out = []
    for item in images:
        img = read_rgb(item.path)
        h, w = img.shape[:2]
        faces = item.boxes
        big = faces[np.minimum(faces[:, 2] - faces[:, 0], faces[:, 3] - faces[:, 1]) >= min_face] if len(faces) else faces
        near = [_square_near(f, rng, near_per_face, 0.25, 0.3) for f in big]
        windows = np.concatenate([_random_squares(h, w, rng, negatives * 3, 12)] + near).reshape(-1, 4)
        windows = windows[(windows[:, 2] - windows[:, 0]) >= 12]
        kind, _ = label_windows(windows, item.all_boxes)
        # targets from the face a window was cut around, among the faces big enough to learn from
        kind_big, matched = label_windows(windows, big)
        kind = np.where(kind == NEG, NEG, np.where(kind_big >= 1, kind_big, -1)).astype(np.int8)
        n_faces = len(big)
        quota = {NEG: negatives + n_faces * 2, POS: n_faces * near_per_face, PART: n_faces * near_per_face}
        out.append(_select(kind, matched, windows, plus_one, img, size, quota, rng))
        if progress:
            progress.update()
    return SampleSet.concat(out, size)


def cascade_samples(images: Iterable, size: int, windows_of, rng: np.random.Generator, *,
                    max_negatives: int = 60, progress=None) -> SampleSet:
    """R-Net's and O-Net's samples: the windows the earlier stages produce on each photo
    (`windows_of(image) -> (K, 4)`), labelled by IoU with its faces (hard examples from the
    cascade itself), at most `max_negatives` negatives per photo."""
    out = []
    for item in images:
        img = read_rgb(item.path)
        windows = np.asarray(windows_of(img), np.float64).reshape(-1, 4)
        kind, _ = label_windows(windows, item.boxes, veto=item.ignore)
        _, matched = label_windows(windows, item.boxes)
        quota = {NEG: max_negatives, POS: len(windows), PART: len(windows)}
        out.append(_select(kind, matched, windows, True, img, size, quota, rng))
        if progress:
            progress.update()
    return SampleSet.concat(out, size)


def landmark_samples(faces: Iterable, size: int, rng: np.random.Generator, *, per_face: int = 10,
                     prior: Optional[Sequence[float]] = (0.0, -0.19, 2.42), pad: int = 40, progress=None) -> SampleSet:
    """Landmark faces: windows around each face (IoU >= 0.65 with its box: the data's own box when
    prior is None, else a box estimated from the points by `prior`, see data.box_from_points), cut from the photo padded by `pad` px of
    edge replication (the padded canvas the landmark evaluation also uses)."""
    import cv2

    out = []
    for item in faces:
        img = read_rgb(item.path)
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        points = item.points + pad
        if prior is None and item.box is None:
            raise ValueError(f"{item.path}: no face box in the data; give a box prior to estimate one")
        face = (item.box if prior is None else box_from_points(item.points, prior)) + pad
        windows = _square_near(face, rng, per_face * 4, 0.1, 0.15)
        ious = iou_matrix(windows, face[None])[:, 0]
        windows = windows[ious >= POS_IOU][:per_face]
        if len(windows):
            out.append(SampleSet(cut(img, windows, size), np.full(len(windows), LANDMARK, np.int8),
                                 np.zeros((len(windows), 4), np.float32),
                                 landmark_targets(windows, np.repeat(points[None], len(windows), 0)).astype(np.float32)))
        if progress:
            progress.update()
    return SampleSet.concat(out, size)


def mix_counts(batch_size: int, ratio: Sequence[int] = (3, 1, 1, 2)) -> List[int]:
    """Per-kind counts (negative, positive, part, landmark) for one batch in the given ratio;
    the remainder of an uneven division goes to the kinds in order."""
    total = sum(ratio)
    counts = [batch_size * r // total for r in ratio]
    for i in range(batch_size - sum(counts)):
        counts[i % len(counts)] += 1
    return counts
