"""Accuracy the way the field measures it.

WIDER FACE: average precision for the easy, medium and hard settings under the official
protocol (the MATLAB `wider_eval` tool): scores min-max normalised over the whole set, 1000
thresholds, a detection hits the annotated face it overlaps most if that IoU >= 0.5 (areas
(x2 - x1 + 1) * (y2 - y1 + 1)), each face is recalled at most once, detections whose best face is
outside the setting's list are dropped, and AP is the area under the VOC-style interpolated
precision-recall curve.

Landmarks: mean point-to-point error over the inter-ocular distance (the distance between the two
annotated eye points) on 5-point face crops, and the share of crops whose error exceeds 10%. The
crops are tight 80x80 faces, too tight for a detector that expects context around a face: each
crop is placed at the centre of a canvas padded by 40 px of edge replication (160x160) and the full
detector runs on it; the detection overlapping the crop most (IoU >= 0.3) is scored, and crops
without one are counted as "no face".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .metrics import iou_matrix

SETTINGS = ("easy", "medium", "hard")
THRESHOLDS = 1000
IOU_HIT = 0.5
CANVAS_PAD = 40
LANDMARK_MATCH_IOU = 0.3
LANDMARK_FAILURE = 0.10


# --- ground truth and predictions -----------------------------------------------------------


@dataclass
class GroundTruth:
    """One image: every annotated face (x1, y1, x2, y2) and, per setting, which of them count."""

    image: str
    boxes: np.ndarray
    keep: Dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Prediction:
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2
    scores: np.ndarray  # (N,)
    landmarks: Optional[np.ndarray] = None  # (N, 5, 2)

    @staticmethod
    def from_lists(boxes, scores, landmarks=None) -> "Prediction":
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        s = np.asarray(scores, np.float64).reshape(-1)
        lm = None if landmarks is None else np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
        return Prediction(b, s, lm)


def _read_jsonl(path: Path, parse: Callable[[dict], object]) -> list:
    """parse() applied to each record of a JSON-lines file; a malformed line raises ValueError
    naming the file and the line."""
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(parse(json.loads(line)))
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ValueError(f"{path}, line {number}: not a valid record "
                             f"({type(e).__name__}: {e})") from e
    return out


def load_widerface_jsonl(root: Path) -> List[GroundTruth]:
    """The JSON-lines layout of ../shared/data (annotations.jsonl in root)."""
    return _read_jsonl(Path(root) / "annotations.jsonl", _widerface_record)


def _widerface_record(rec: dict) -> GroundTruth:
    hard = np.asarray(rec.get("boxes") or [], np.float64).reshape(-1, 4)
    ignored = np.asarray(rec.get("ignore") or [], np.float64).reshape(-1, 4)
    n, m = len(hard), len(ignored)
    flags = {}
    for setting in ("in_easy", "in_medium"):
        flags[setting] = np.asarray(rec.get(setting, [True] * n), bool).reshape(-1)
        if len(flags[setting]) != n:
            raise ValueError(f"{setting} has {len(flags[setting])} flags for {n} boxes")
    pad = np.zeros(m, bool)
    keep = {
        "easy": np.concatenate([flags["in_easy"], pad]),
        "medium": np.concatenate([flags["in_medium"], pad]),
        "hard": np.concatenate([np.ones(n, bool), pad]),
    }
    return GroundTruth(rec["image"], np.concatenate([hard, ignored]), keep)


def read_official_gt_txt(path: Path) -> Dict[str, np.ndarray]:
    """wider_face_*_bbx_gt.txt: image path, face count, then `x y w h ...` per face.
    Returns {relative image path: (N, 4) x1, y1, x2, y2} with x2 = x + w."""
    lines = [l.strip() for l in Path(path).read_text().splitlines()]
    out, i = {}, 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        try:
            name, count = lines[i], int(lines[i + 1])
            rows = lines[i + 2 : i + 2 + max(count, 1)]  # an image with 0 faces has one dummy row
            boxes = [list(map(float, r.split()[:4])) for r in rows[:count]]
            b = np.asarray(boxes, np.float64).reshape(count, 4)
        except (IndexError, ValueError) as e:
            raise ValueError(f"{path}, the image named on line {i + 1}: not in the official "
                             f"format (name, face count, x y w h per face): {e}") from e
        b[:, 2:] += b[:, :2]
        out[name] = b
        i += 2 + max(count, 1)
    return out


def load_widerface_official(gt_txt: Path, mat_dir: Path, image_prefix: str = "") -> List[GroundTruth]:
    """The official layout: the face boxes from wider_face_*_bbx_gt.txt and the easy / medium /
    hard face lists from ground_truth/wider_{easy,medium,hard}_val.mat (read with scipy, an
    optional dependency). Images absent from the text file are skipped, so .mat files that cover
    the whole validation set can evaluate a subset."""
    try:
        from scipy.io import loadmat
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("reading the official .mat lists needs scipy: pip install scipy") from e
    boxes = read_official_gt_txt(gt_txt)
    keep_lists: Dict[str, Dict[str, np.ndarray]] = {s: {} for s in SETTINGS}
    for setting in SETTINGS:
        mat = loadmat(str(Path(mat_dir) / f"wider_{setting}_val.mat"))
        events = mat["event_list"]
        for e in range(len(events)):
            event = str(events[e][0][0])
            files = mat["file_list"][e][0]
            lists = mat["gt_list"][e][0]
            for f in range(len(files)):
                name = f"{event}/{files[f][0][0]}.jpg"
                keep_lists[setting][name] = np.asarray(lists[f][0], np.int64).reshape(-1) - 1
    out = []
    for name, b in boxes.items():
        keep = {}
        for setting in SETTINGS:
            mask = np.zeros(len(b), bool)
            idx = keep_lists[setting].get(name, np.zeros(0, np.int64))
            mask[idx[idx < len(b)]] = True
            keep[setting] = mask
        out.append(GroundTruth(image_prefix + name, b, keep))
    return out


def write_predictions_jsonl(path: Path, predictions: Dict[str, Prediction]) -> None:
    with open(path, "w") as f:
        for image, p in predictions.items():
            rec = {"image": image, "boxes": p.boxes.tolist(), "scores": p.scores.tolist(),
                   "landmarks": None if p.landmarks is None else p.landmarks.tolist()}
            f.write(json.dumps(rec) + "\n")


def read_predictions_jsonl(path: Path) -> Dict[str, Prediction]:
    return dict(_read_jsonl(path, lambda rec: (
        rec["image"], Prediction.from_lists(rec["boxes"], rec["scores"], rec.get("landmarks")))))


def _official_name(image: str) -> Tuple[str, str]:
    """'WIDER_val/images/<event>/<name>.jpg' (or '<event>/<name>.jpg') -> ('<event>', '<name>')."""
    parts = Path(image).parts
    return parts[-2], Path(parts[-1]).stem


def write_predictions_official(out_dir: Path, predictions: Dict[str, Prediction]) -> None:
    """One `<event>/<name>.txt` per image: name, count, then `x y w h score` lines."""
    for image, p in predictions.items():
        event, name = _official_name(image)
        d = Path(out_dir) / event
        d.mkdir(parents=True, exist_ok=True)
        lines = [name, str(len(p.scores))]
        for (x1, y1, x2, y2), s in zip(p.boxes, p.scores):
            lines.append(f"{x1:.3f} {y1:.3f} {x2 - x1:.3f} {y2 - y1:.3f} {s:.6f}")
        (d / f"{name}.txt").write_text("\n".join(lines) + "\n")


def read_predictions_official(pred_dir: Path, images: Iterable[str]) -> Dict[str, Prediction]:
    """Reads `<event>/<name>.txt` files for the given images (missing files: no detections)."""
    out = {}
    for image in images:
        event, name = _official_name(image)
        path = Path(pred_dir) / event / f"{name}.txt"
        if path.is_file():
            lines = [l for l in path.read_text().splitlines() if l.strip()]
            try:
                count = int(lines[1]) if len(lines) > 1 else 0
                rows = [list(map(float, l.split()[:5])) for l in lines[2 : 2 + count]]
                a = np.asarray(rows, np.float64).reshape(count, 5)
            except ValueError as e:
                raise ValueError(f"{path}: not an official prediction file (name, count, then "
                                 f"x y w h score per line): {e}") from e
        else:
            a = np.zeros((0, 5))
        boxes = a[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        out[image] = Prediction(boxes, a[:, 4].copy())
    return out


# --- the official AP computation --------------------------------------------------------------


def _image_pr(pred_boxes, pred_scores, gt_boxes, keep, thresholds):
    """Per-threshold (proposals kept, faces recalled) of one image, as the official tool counts."""
    n = len(pred_scores)
    pr = np.zeros((len(thresholds), 2))
    if n == 0 or len(gt_boxes) == 0:
        return pr
    order = np.argsort(-pred_scores, kind="stable")
    boxes, scores = pred_boxes[order], pred_scores[order]
    overlaps = iou_matrix(boxes, gt_boxes, plus_one=True)
    recalled = np.zeros(len(gt_boxes), int)  # 0 not yet, 1 recalled, -1 ignored face hit
    proposal = np.ones(n, bool)
    pred_recall = np.zeros(n, int)
    for h in range(n):
        j = int(np.argmax(overlaps[h]))
        if overlaps[h, j] >= IOU_HIT:
            if not keep[j]:
                recalled[j] = -1
                proposal[h] = False
            elif recalled[j] == 0:
                recalled[j] = 1
        pred_recall[h] = int((recalled == 1).sum())
    for t, thr in enumerate(thresholds):
        above = np.nonzero(scores >= thr)[0]
        if len(above):
            r = above[-1]
            pr[t] = proposal[: r + 1].sum(), pred_recall[r]
    return pr


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mpre[idx]))


@dataclass
class APResult:
    ap: float
    precision: np.ndarray
    recall: np.ndarray
    faces: int


def evaluate_widerface(
    gt: Sequence[GroundTruth], predictions: Dict[str, Prediction], settings=SETTINGS
) -> Dict[str, APResult]:
    """AP per setting under the official protocol. Images without predictions count as no
    detections."""
    all_scores = [p.scores for p in predictions.values() if len(p.scores)]
    lo = hi = 0.0
    if all_scores:
        cat = np.concatenate(all_scores)
        lo, hi = float(cat.min()), float(cat.max())
    span = hi - lo

    def norm(s):
        return (s - lo) / span if span > 0 else np.ones_like(s)

    thresholds = 1.0 - np.arange(1, THRESHOLDS + 1) / THRESHOLDS
    results = {}
    for setting in settings:
        curve = np.zeros((THRESHOLDS, 2))
        faces = 0
        for g in gt:
            keep = g.keep[setting]
            faces += int(keep.sum())
            p = predictions.get(g.image)
            if p is None or len(p.scores) == 0:
                continue
            curve += _image_pr(p.boxes, norm(p.scores), g.boxes, keep, thresholds)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(curve[:, 0] > 0, curve[:, 1] / curve[:, 0], 0.0)
        recall = curve[:, 1] / max(faces, 1)
        results[setting] = APResult(voc_ap(recall, precision), precision, recall, faces)
    return results


# --- running a detector -----------------------------------------------------------------------


def detect_all(detect: Callable[[np.ndarray], object], images: Sequence[Tuple[str, Path]],
               progress: bool = True, label: str = "detecting") -> Dict[str, Prediction]:
    """Runs `detect(rgb) -> Detections` over (key, path) pairs."""
    from ._progress import Progress
    from ._input import read_rgb

    out = {}
    with Progress(len(images), label, enabled=None if progress else False) as bar:
        for key, path in images:
            faces = detect(read_rgb(path))
            out[key] = Prediction(faces.boxes.astype(np.float64), faces.scores.astype(np.float64),
                                  faces.landmarks.astype(np.float64))
            bar.update()
    return out


# --- landmarks --------------------------------------------------------------------------------


@dataclass
class LandmarkSample:
    image: str
    box: np.ndarray  # (4,) the face box in the crop
    points: np.ndarray  # (5, 2)


def load_landmarks_jsonl(path: Path) -> List[LandmarkSample]:
    return _read_jsonl(path, lambda rec: LandmarkSample(
        rec["image"], np.asarray(rec["boxes"][0], np.float64).reshape(4),
        np.asarray(rec["landmarks"][0], np.float64).reshape(5, 2)))


def landmark_canvas(crop: np.ndarray) -> np.ndarray:
    """The crop at the centre of a canvas padded by CANVAS_PAD px of edge replication."""
    from ._opencv import cv2

    p = CANVAS_PAD
    return cv2.copyMakeBorder(crop, p, p, p, p, cv2.BORDER_REPLICATE)


@dataclass
class LandmarkResult:
    errors: np.ndarray  # per sample: normalised mean error, NaN where no face was found
    crops: int

    @property
    def found(self) -> int:
        return int(np.isfinite(self.errors).sum())

    @property
    def no_face(self) -> int:
        return self.crops - self.found

    @property
    def mean_error(self) -> float:
        e = self.errors[np.isfinite(self.errors)]
        return float(e.mean()) if len(e) else float("nan")

    @property
    def failure_rate(self) -> float:
        e = self.errors[np.isfinite(self.errors)]
        return float((e > LANDMARK_FAILURE).mean()) if len(e) else float("nan")


def landmark_errors(samples: Sequence[LandmarkSample], predictions: Dict[str, Prediction],
                    pad: float = CANVAS_PAD) -> LandmarkResult:
    """Scores predictions made on the padded canvases (canvas coordinates)."""
    errors = np.full(len(samples), np.nan)
    for k, s in enumerate(samples):
        p = predictions.get(s.image)
        if p is None or p.landmarks is None or len(p.scores) == 0:
            continue
        iou = iou_matrix(s.box[None] + pad, p.boxes)[0]
        j = int(np.argmax(iou))
        if iou[j] < LANDMARK_MATCH_IOU:
            continue
        pts = p.landmarks[j] - pad
        iod = np.linalg.norm(s.points[0] - s.points[1])
        errors[k] = np.linalg.norm(pts - s.points, axis=1).mean() / iod
    return LandmarkResult(errors, len(samples))


# --- plots ------------------------------------------------------------------------------------


def plot_pr(results: Dict[str, APResult], out_dir: Path, label: str = "mtcnn-fast") -> List[Path]:
    """One precision-recall PNG per setting, when matplotlib is installed (else nothing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for setting, r in results.items():
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(r.recall, r.precision, label=f"{label} (AP {r.ap:.3f})")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01),
               title=f"WIDER FACE {setting}")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        path = out_dir / f"pr_{setting}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths
