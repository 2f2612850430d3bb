"""training/: sample labelling, the 3:1:1:2 mix, OHEM, the masked losses, the readers, and a smoke
run of the whole recipe on tiny data made from the bundled photo (no ../shared needed)."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support import read_rgb

from mtcnn_fast import FaceDetector
from mtcnn_fast.cli import sample_image_path
from mtcnn_fast.ops import get_ops
from training.data import (
    box_from_points,
    load_celeba,
    load_landmarks_jsonl,
    load_wider_jsonl,
    load_wider_official,
    noisy_landmarks,
)
from training.loop import MixedBatches, TrainConfig, read_log, train_stage
from training.losses import (
    STAGE_WEIGHTS,
    classification_loss,
    hardest,
    masked_euclidean,
    multitask_loss,
)
from training.recipe import run
from training.samples import (
    LANDMARK,
    NEG,
    PART,
    POS,
    SampleSet,
    box_offsets,
    cut,
    label_ious,
    label_windows,
    landmark_targets,
    mix_counts,
    random_samples,
)

ops = get_ops("cpp")


# --- labelling ------------------------------------------------------------------------------------
def test_label_ious_thresholds():
    ious = np.array([0.0, 0.29, 0.3, 0.39, 0.4, 0.64, 0.65, 1.0])
    assert label_ious(ious).tolist() == [NEG, NEG, -1, -1, PART, PART, POS, POS]


def test_label_windows_on_hand_made_boxes():
    face = np.array([[0.0, 0.0, 10.0, 10.0]])
    windows = np.array([
        [0, 0, 10, 10],      # IoU 1
        [2, 0, 12, 10],      # 80 / 120 = 0.667
        [4, 0, 14, 10],      # 60 / 140 = 0.429
        [6, 0, 16, 10],      # 40 / 160 = 0.25
        [50, 50, 60, 60],    # 0
    ], np.float64)
    kind, matched = label_windows(windows, face)
    assert kind.tolist() == [POS, POS, PART, NEG, NEG]
    assert np.array_equal(matched, np.repeat(face, 5, 0))
    # the best-matching face is the one a window is labelled and regressed against
    two = np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    kind, matched = label_windows(windows, two)
    assert kind[4] == POS and np.array_equal(matched[4], two[1])
    # an ignored (unsure) face turns would-be negatives over it into unused windows
    kind, _ = label_windows(windows, face, veto=np.array([[50.0, 50.0, 60.0, 60.0]]))
    assert kind.tolist() == [POS, POS, PART, NEG, -1]


@pytest.mark.parametrize("plus_one", [False, True])
def test_box_offsets_are_what_calibrate_inverts(plus_one):
    rng = np.random.default_rng(1)
    windows = np.floor(rng.uniform(0, 200, (50, 2)))
    windows = np.concatenate([windows, windows + np.floor(rng.uniform(12, 90, (50, 1)))], axis=1)
    faces = windows + rng.uniform(-8, 8, (50, 4))
    t = box_offsets(windows, faces, plus_one).astype(np.float32)
    back = ops.calibrate(windows.astype(np.float32), t, plus_one)
    np.testing.assert_allclose(back, faces, atol=1e-3)


def test_landmark_targets_are_what_the_detector_decodes():
    windows = np.array([[10.0, 20.0, 57.0, 67.0], [0.0, 0.0, 23.0, 23.0]])
    points = np.random.default_rng(2).uniform(0, 60, (2, 5, 2))
    t = landmark_targets(windows, points)
    w = windows[:, 2:3] - windows[:, 0:1] + 1
    h = windows[:, 3:4] - windows[:, 1:2] + 1
    xs = windows[:, 0:1] + w * t[:, :5] - 1  # mtcnn_fast.detector.FaceDetector.output
    ys = windows[:, 1:2] + h * t[:, 5:] - 1
    np.testing.assert_allclose(np.stack([xs, ys], 2), points, atol=1e-9)


def test_samples_are_cut_like_the_detector_cuts():
    img = read_rgb(sample_image_path())
    windows = np.array([[100.0, 60.0, 300.0, 260.0], [-20.0, -20.0, 40.0, 40.0]], np.float32)
    got = cut(img, windows, 24)
    want = ops.crop_windows(img, windows, 24) / 0.0078125 + 127.5
    assert got.dtype == np.uint8 and got.shape == (2, 24, 24, 3)
    assert np.abs(got - want).max() <= 0.5 + 1e-3
    assert got[1, 0, 0].tolist() == [0, 0, 0]  # outside the photo: zero fill, as in the detector


# --- the batch mix ----------------------------------------------------------------------------------
def test_mix_counts_follow_3_1_1_2():
    assert mix_counts(448) == [192, 64, 64, 128]
    assert mix_counts(70) == [30, 10, 10, 20]
    c = mix_counts(100)
    assert sum(c) == 100 and c == [43, 15, 14, 28]  # 42, 14, 14, 28 and the 2 left over in order


def _toy_set(counts):
    kind = np.concatenate([np.full(n, k, np.int8) for k, n in enumerate(counts)])
    n = len(kind)
    return SampleSet(np.zeros((n, 12, 12, 3), np.uint8), kind, np.zeros((n, 4), np.float32),
                     np.zeros((n, 10), np.float32))


def test_batches_hold_each_kind_in_ratio_and_are_reproducible():
    s = _toy_set([500, 100, 300, 200])
    b = MixedBatches(s, 448, (3, 1, 1, 2), seed=4)
    for step in range(5):
        idx = b.indices(step)
        assert np.bincount(s.kind[idx], minlength=4).tolist() == [192, 64, 64, 128]
        assert np.array_equal(idx, MixedBatches(s, 448, (3, 1, 1, 2), seed=4).indices(step))
    assert not np.array_equal(b.indices(0), b.indices(1))
    # no landmark faces: their share goes to the others, still 3:1:1 among them
    s = _toy_set([500, 100, 300, 0])
    idx = MixedBatches(s, 100, (3, 1, 1, 2), seed=0).indices(0)
    assert np.bincount(s.kind[idx], minlength=4).tolist() == [60, 20, 20, 0]
    with pytest.raises(ValueError, match="negatives and positives"):
        MixedBatches(_toy_set([0, 10, 10, 10]), 64, (3, 1, 1, 2), 0)


# --- losses -----------------------------------------------------------------------------------------
def test_ohem_keeps_exactly_the_hardest_70_percent():
    losses = torch.tensor([0.1, 5.0, 0.3, 2.0, 0.05, 1.0, 0.7, 0.2, 3.0, 0.4])
    kept = sorted(hardest(losses).tolist())
    assert kept == sorted(torch.argsort(losses, descending=True)[:7].tolist())
    assert len(hardest(torch.rand(448))) == math.ceil(0.7 * 448)


def test_classification_loss_uses_negatives_and_positives_and_mines_the_hardest():
    torch.manual_seed(0)
    logits = torch.randn(20, 2, requires_grad=True)
    kind = torch.tensor([NEG, POS, PART, LANDMARK] * 5)
    loss = classification_loss(logits, kind)
    mask = (kind == NEG) | (kind == POS)
    ce = F.cross_entropy(logits[mask], (kind[mask] == POS).long(), reduction="none")
    k = math.ceil(0.7 * int(mask.sum()))
    assert torch.allclose(loss, ce.sort(descending=True).values[:k].mean())
    loss.backward()
    g = logits.grad.abs().sum(1)
    assert (g[~mask] == 0).all()  # part and landmark faces never train classification
    easiest = torch.nonzero(mask).flatten()[ce.argsort()[: int(mask.sum()) - k]]
    assert (g[easiest] == 0).all() and (g[mask].gt(0).sum() == k)


def test_masked_euclidean_and_task_weights():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [3.0, 3.0], [9.0, 9.0]])
    mask = torch.tensor([True, True, False])
    assert masked_euclidean(pred, target, mask).item() == pytest.approx((5.0 + 1.0) / 2)
    assert masked_euclidean(pred, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0
    assert STAGE_WEIGHTS == {"pnet": (1.0, 0.5, 0.5), "rnet": (1.0, 0.5, 0.5), "onet": (1.0, 0.5, 1.0)}
    kind = torch.tensor([NEG, POS, PART, LANDMARK])
    logits = torch.zeros(4, 2)
    box, box_t = torch.ones(4, 4), torch.zeros(4, 4)
    pts, pts_t = torch.full((4, 10), 2.0), torch.zeros(4, 10)
    total, parts = multitask_loss((logits, box, pts), kind, box_t, pts_t, STAGE_WEIGHTS["onet"])
    # box on positive + part only (4 each), landmarks on the landmark face only (10 * 4)
    assert parts["box"] == pytest.approx(4.0) and parts["landmark"] == pytest.approx(40.0)
    assert parts["det"] == pytest.approx(math.log(2))
    assert total.item() == pytest.approx(math.log(2) + 0.5 * 4.0 + 1.0 * 40.0)


# --- readers ----------------------------------------------------------------------------------------
def test_official_wider_reader(tmp_path):
    (tmp_path / "gt.txt").write_text(
        "0--Parade/a.jpg\n2\n10 20 30 40 0 0 0 0 0 0\n5 5 8 9 1 0 0 1 0 0\n"
        "0--Parade/b.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n"
        "1--Handshaking/c.jpg\n1\n1 2 0 4 0 0 0 0 0 0\n")
    items = load_wider_official(tmp_path / "gt.txt", tmp_path / "images")
    assert [i.path.name for i in items] == ["a.jpg", "b.jpg", "c.jpg"]
    assert items[0].boxes.tolist() == [[10, 20, 40, 60]] and items[0].ignore.tolist() == [[5, 5, 13, 14]]
    assert items[1].boxes.shape == (0, 4) and items[1].ignore.shape == (0, 4)
    assert items[2].boxes.shape == (0, 4) and items[2].ignore.tolist() == [[1, 2, 1, 6]]  # zero width


def test_celeba_and_jsonl_landmark_readers(tmp_path):
    (tmp_path / "lm.txt").write_text(
        "2\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        "000001.jpg  69 109 106 113 77 142 73 152 108 154\n000002.jpg 69 110 107 112 81 135 70 151 108 153\n")
    (tmp_path / "bbox.txt").write_text("2\nimage_id x_1 y_1 width height\n000001.jpg 95 71 226 313\n")
    items = load_celeba(tmp_path / "lm.txt", tmp_path / "img", tmp_path / "bbox.txt")
    assert items[0].points.tolist() == [[69, 109], [106, 113], [77, 142], [73, 152], [108, 154]]
    assert items[0].box.tolist() == [95, 71, 321, 384] and items[1].box is None
    rec = {"image": "x/a.jpg", "boxes": [[0, 0, 80, 80]], "landmarks": [[[30, 35], [50, 35], [40, 45], [32, 55], [48, 55]]]}
    (tmp_path / "lm.jsonl").write_text(json.dumps(rec) + "\n")
    (item,) = load_landmarks_jsonl(tmp_path / "lm.jsonl")
    assert item.path == tmp_path / "x/a.jpg" and item.box.tolist() == [0, 0, 80, 80]
    assert not noisy_landmarks(item.points)
    assert noisy_landmarks(np.array([[30, 20], [38, 20], [34, 25], [31, 30], [37, 30]], float))  # squeezed up
    box = box_from_points(item.points, (0.0, 0.0, 2.0))
    assert box.tolist() == pytest.approx([20.0, 25.0, 60.0, 65.0])  # side 2 units of 20 px about (40, 45)


# --- the recipe, end to end on tiny data --------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Faces: the bundled photo, its mirror and a 2 x 2 tiling, boxes and points taken from the
    original detector (pseudo ground truth); landmark faces: 80 x 80 crops around its faces."""
    import cv2

    root = tmp_path_factory.mktemp("tiny")
    img = read_rgb(sample_image_path())
    det = FaceDetector()
    lines, lm_lines = [], []
    for name, photo in [("a.png", img), ("b.png", img[:, ::-1]), ("c.png", np.tile(img, (2, 2, 1)))]:
        faces = det.detect(photo)
        assert len(faces) >= 1
        cv2.imwrite(str(root / name), cv2.cvtColor(np.ascontiguousarray(photo), cv2.COLOR_RGB2BGR))
        lines.append(json.dumps({"image": name, "boxes": faces.boxes.tolist()}))
        for k, (b, p) in enumerate(zip(faces.boxes, faces.landmarks)):
            side = 1.4 * max(b[2] - b[0], b[3] - b[1])
            cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            m = np.array([[80 / side, 0, 40 - 80 / side * cx], [0, 80 / side, 40 - 80 / side * cy]])
            crop = cv2.warpAffine(np.ascontiguousarray(photo), m, (80, 80), flags=cv2.INTER_LINEAR)
            pts = p @ m[:, :2].T + m[:, 2]
            crop_name = f"lm_{name[0]}{k}.png"
            cv2.imwrite(str(root / crop_name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            lm_lines.append(json.dumps({"image": crop_name, "boxes": [[0, 0, 80, 80]], "landmarks": [pts.tolist()]}))
    (root / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    (root / "landmarks.jsonl").write_text("\n".join(lm_lines) + "\n")
    return root


def _smoke_config(root):
    samples = {"negatives": 40, "near_per_face": 30, "landmarks_per_face": 20, "max_negatives": 40}
    train = {"batch_size": 70, "lr": 0.002, "log_every": 5, "checkpoint_every": 10, "threads": 2}
    return {
        "seed": 0,
        "faces": {"layout": "jsonl", "root": str(root)},
        "landmarks": {"layout": "jsonl", "file": str(root / "landmarks.jsonl"), "box_prior": [0.0, -0.19, 2.42]},
        "mining": {"min_face_size": 20.0, "thresholds": [0.3, 0.3, 0.3]},
        "pnet": {"samples": samples, "train": {**train, "steps": 40}},
        "rnet": {"samples": samples, "train": {**train, "steps": 30}},
        "onet": {"samples": samples, "train": {**train, "steps": 20}},
    }


def test_recipe_smoke_run_learns_and_exports_loadable_weights(tiny_data, tmp_path):
    report = run(_smoke_config(tiny_data), tmp_path / "run", progress=False)
    for stage in ("pnet", "rnet", "onet"):
        counts = report[stage]["samples"]
        assert all(counts[k] > 0 for k in ("negative", "positive", "part", "landmark")), (stage, counts)
        log = read_log(tmp_path / "run" / "checkpoints", stage)
        w = STAGE_WEIGHTS[stage]
        total = [w[0] * r["det"] + w[1] * r["box"] + w[2] * r["landmark"] for r in log]
        assert total[-1] < 0.8 * total[0], (stage, total)
    weights = tmp_path / "run" / "weights"
    trained = FaceDetector(weights=weights, thresholds=(0.3, 0.3, 0.3))
    img = read_rgb(tiny_data / "a.png")
    faces = trained.detect(img)
    assert faces.boxes.shape[1:] == (4,) and faces.landmarks.shape[1:] == (5, 2)
    # the exported file is the detector's format, holding the trained (not the original) numbers
    with np.load(weights / "onet.npz") as d, np.load(original_weights("onet.npz")) as o:
        assert sorted(d.files) == sorted(o.files)
        assert not np.array_equal(d["fc6_3.weight"], o["fc6_3.weight"])
    # a second run finds every stage done and changes nothing
    again = run(_smoke_config(tiny_data), tmp_path / "run", progress=False)
    assert again == report


def original_weights(name):
    from mtcnn_fast.nets import weights_dir

    return weights_dir() / name


def test_training_resumes_where_it_stopped(tiny_data, tmp_path):
    rng = np.random.default_rng(0)
    from training.data import load_wider_jsonl as load

    samples = random_samples(load(tiny_data), 12, rng, negatives=40, near_per_face=30)
    samples = SampleSet.concat([samples], 12)
    cfg = TrainConfig(steps=24, batch_size=70, log_every=4, checkpoint_every=8, threads=1)
    whole = train_stage("pnet", samples, cfg, tmp_path / "whole", progress=False)
    train_stage("pnet", samples, cfg, tmp_path / "parts", progress=False, stop_after=11)
    assert [r["step"] for r in read_log(tmp_path / "parts", "pnet")] == [4, 8]  # checkpoint at 8, log kept to it
    resumed = train_stage("pnet", samples, cfg, tmp_path / "parts", progress=False)
    assert [r["step"] for r in read_log(tmp_path / "parts", "pnet")] == [4, 8, 12, 16, 20, 24]
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="keep"):
        hardest(torch.rand(4), 0.0)
    with pytest.raises(ValueError, match="annotations.jsonl"):
        load_wider_jsonl("/nonexistent/folder")


def test_reproduced_weights_in_the_repository_find_the_astronaut(astronaut, detector):
    """training/weights (the run training/README.md reports) load and find the sample photo's
    face, its landmarks within 5 px of the hand-read points of test_detector."""
    from pathlib import Path

    from mtcnn_fast.metrics import iou_matrix
    from test_detector import ASTRONAUT_LANDMARKS

    weights = Path(__file__).resolve().parents[1] / "training" / "weights"
    if not weights.is_dir():
        pytest.skip(f"needs the repository's reproduced weights at {weights} (the sdist leaves them out)")
    faces = FaceDetector(device="cpu", weights=weights).detect(astronaut)
    want = detector.detect(astronaut)
    iou = iou_matrix(want.boxes, faces.boxes)[0]
    k = int(iou.argmax())
    assert iou[k] >= 0.7 and faces.scores[k] > 0.99
    assert np.abs(faces.landmarks[k] - ASTRONAUT_LANDMARKS).max() <= 5.0
