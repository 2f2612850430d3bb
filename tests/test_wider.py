"""Real multi-face photos from WIDER FACE validation (../shared/data/wider_val_dev): faces found
match the ground truth, the two backends agree exactly, and the pipeline agrees with the
independent plain implementation of the original (tests/independent_mtcnn.py)."""

import numpy as np

import independent_mtcnn
from support import WIDER_VAL, read_rgb
from mtcnn_fast import FaceDetector
from mtcnn_fast.metrics import iou_matrix


def multi_face_records(records, count, min_side=40, min_faces=3):
    """The first `count` photos with at least `min_faces` annotated faces of `min_side` px."""
    out = []
    for rec in records:
        b = np.asarray(rec["boxes"], np.float64).reshape(-1, 4)
        big = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) >= min_side
        if big.sum() >= min_faces:
            out.append((rec, b[big]))
        if len(out) == count:
            break
    return out


def test_faces_found_match_the_ground_truth(wider_val, detector):
    picked = multi_face_records(wider_val, 8)
    assert len(picked) == 8
    found = total = 0
    for rec, gt in picked:
        faces = detector.detect(read_rgb(WIDER_VAL / rec["image"]))
        iou = iou_matrix(gt, faces.boxes)
        hits = (iou >= 0.5).any(axis=1) if iou.size else np.zeros(len(gt), bool)
        found += int(hits.sum())
        total += len(gt)
        assert hits.any(), rec["image"]
    # MTCNN misses some occluded and profile faces even at 40 px: measured 41 of 46 here.
    assert found / total >= 0.8, (found, total)


def test_cpp_and_numpy_backends_give_the_same_detections(wider_val, detector):
    numpy_detector = FaceDetector(device="cpu", backend="numpy")
    for rec, _ in multi_face_records(wider_val, 3):
        img = read_rgb(WIDER_VAL / rec["image"])
        a, b = detector.detect(img), numpy_detector.detect(img)
        assert len(a) >= 3
        for name in ("boxes", "scores", "landmarks"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), (rec["image"], name)


def test_agrees_with_the_independent_plain_implementation(wider_val, detector):
    nets = independent_mtcnn.Nets()
    faces = matched = 0
    for rec in wider_val[:: len(wider_val) // 6][:6]:
        img = read_rgb(WIDER_VAL / rec["image"])
        fast = detector.detect(img)
        boxes, _, landmarks = independent_mtcnn.detect(nets, img)
        faces += len(boxes)
        if len(boxes) == 0 or len(fast) == 0:
            continue
        iou = iou_matrix(boxes, fast.boxes)
        best = iou.argmax(axis=1)
        for i, j in enumerate(best):
            close = np.linalg.norm(landmarks[i] - fast.landmarks[j], axis=1).max() <= 1.0
            matched += bool(iou[i, j] >= 0.95 and close)
    assert faces >= 10
    assert matched / faces >= 0.95, (matched, faces)
