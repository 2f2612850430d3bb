"""The evaluator itself, on small hand-made cases whose answers are known by hand."""

import json
import shutil

import numpy as np
import pytest

from mtcnn_fast import evaluation as ev
from mtcnn_fast.cli import main, sample_image_path


def gt_image(name, boxes, easy=None):
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    easy = np.ones(n, bool) if easy is None else np.asarray(easy, bool)
    return ev.GroundTruth(name, boxes, {"easy": easy, "medium": np.ones(n, bool), "hard": np.ones(n, bool)})


def pred(boxes, scores):
    return ev.Prediction.from_lists(boxes, scores)


A, B = [10, 10, 50, 50], [100, 10, 140, 50]
FAR = [300, 300, 340, 340]


def test_perfect_detections_give_ap_one():
    gt = [gt_image("a.jpg", [A, B]), gt_image("b.jpg", [FAR])]
    preds = {"a.jpg": pred([A, B], [0.9, 0.8]), "b.jpg": pred([FAR], [0.95])}
    for r in ev.evaluate_widerface(gt, preds).values():
        assert r.ap == pytest.approx(1.0)
        assert r.recall.max() == pytest.approx(1.0)


def test_no_detections_give_ap_zero():
    gt = [gt_image("a.jpg", [A, B])]
    assert ev.evaluate_widerface(gt, {})["hard"].ap == 0.0


def test_false_positive_ranked_first_lowers_precision_as_by_hand():
    # Scores normalise to FP 1.0, A 0.5, B 0.0. Precision/recall points: (R 0, P 0), (R 0.5,
    # P 1/2), (R 1, P 2/3); interpolated precision is 2/3 over the whole recall range.
    gt = [gt_image("a.jpg", [A, B])]
    preds = {"a.jpg": pred([FAR, A, B], [0.9, 0.8, 0.7])}
    assert ev.evaluate_widerface(gt, preds)["hard"].ap == pytest.approx(2 / 3)
    # The same false positive ranked last costs nothing.
    preds = {"a.jpg": pred([FAR, A, B], [0.7, 0.9, 0.8])}
    assert ev.evaluate_widerface(gt, preds)["hard"].ap == pytest.approx(1.0)


def test_each_face_is_counted_once():
    # A, a duplicate of A, then B: the duplicate is a false positive, not a second hit.
    # Points (R 0.5, P 1), (R 0.5, P 1/2), (R 1, P 2/3): AP = 0.5 * 1 + 0.5 * 2/3.
    gt = [gt_image("a.jpg", [A, B])]
    dup = [11, 11, 51, 51]
    r = ev.evaluate_widerface(gt, {"a.jpg": pred([A, dup, B], [0.9, 0.8, 0.7])})["hard"]
    assert r.ap == pytest.approx(0.5 + 1 / 3)
    assert r.recall.max() == pytest.approx(1.0)


def test_ignored_faces_neither_help_nor_hurt():
    # B is outside the easy list: a detection on it is dropped, and missing it costs nothing.
    gt = [gt_image("a.jpg", [A, B], easy=[True, False])]
    with_b = ev.evaluate_widerface(gt, {"a.jpg": pred([B, A], [0.9, 0.8])})["easy"]
    without_b = ev.evaluate_widerface(gt, {"a.jpg": pred([A], [0.8])})["easy"]
    assert with_b.faces == without_b.faces == 1
    assert with_b.ap == pytest.approx(1.0) and without_b.ap == pytest.approx(1.0)
    # In the hard setting B counts: missing it halves recall.
    assert ev.evaluate_widerface(gt, {"a.jpg": pred([A], [0.8])})["hard"].ap == pytest.approx(0.5)


def test_hit_needs_iou_half_with_plus_one_areas():
    gt = [gt_image("a.jpg", [[0, 0, 9, 9]])]
    # [0, 0, 9, 19] overlaps 100 of 200 pixels (+1 areas): IoU exactly 0.5, a hit.
    assert ev.evaluate_widerface(gt, {"a.jpg": pred([[0, 0, 9, 19]], [1.0])})["hard"].ap == pytest.approx(1.0)
    assert ev.evaluate_widerface(gt, {"a.jpg": pred([[0, 0, 9, 20]], [1.0])})["hard"].ap == 0.0


def test_official_prediction_files_round_trip(tmp_path):
    gt = [gt_image("WIDER_val/images/0--Parade/x.jpg", [A, B])]
    preds = {"WIDER_val/images/0--Parade/x.jpg": pred([FAR, A, B], [0.9, 0.8, 0.7])}
    ev.write_predictions_official(tmp_path, preds)
    text = (tmp_path / "0--Parade" / "x.txt").read_text().splitlines()
    assert text[:2] == ["x", "3"] and text[2].split()[:4] == ["300.000", "300.000", "40.000", "40.000"]
    back = ev.read_predictions_official(tmp_path, [g.image for g in gt])
    assert ev.evaluate_widerface(gt, back)["hard"].ap == pytest.approx(2 / 3)


def test_official_ground_truth_layout(tmp_path):
    scipy_io = pytest.importorskip("scipy.io", reason="the official .mat lists are read with scipy")
    (tmp_path / "gt.txt").write_text(
        "0--Parade/x.jpg\n2\n10 10 40 40 0 0 0 0 0 0 \n100 10 40 40 0 0 0 0 0 0 \n"
        "1--Handshaking/y.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n"
    )
    boxes = ev.read_official_gt_txt(tmp_path / "gt.txt")
    assert np.array_equal(boxes["0--Parade/x.jpg"], [A, B]) and boxes["1--Handshaking/y.jpg"].shape == (0, 4)
    events = np.empty((2, 1), object)
    events[0, 0], events[1, 0] = np.array(["0--Parade"]), np.array(["1--Handshaking"])
    for setting, keep in (("easy", [1]), ("medium", [1, 2]), ("hard", [1, 2])):
        files = np.empty((2, 1), object)
        lists = np.empty((2, 1), object)
        f0 = np.empty((1, 1), object)
        f0[0, 0] = np.array(["x"])
        f1 = np.empty((1, 1), object)
        f1[0, 0] = np.array(["y"])
        l0 = np.empty((1, 1), object)
        l0[0, 0] = np.array(keep, float).reshape(-1, 1)
        l1 = np.empty((1, 1), object)
        l1[0, 0] = np.zeros((0, 1))
        files[0, 0], files[1, 0], lists[0, 0], lists[1, 0] = f0, f1, l0, l1
        scipy_io.savemat(tmp_path / f"wider_{setting}_val.mat",
                         {"event_list": events, "file_list": files, "gt_list": lists})
    gt = ev.load_widerface_official(tmp_path / "gt.txt", tmp_path)
    x = next(g for g in gt if g.image == "0--Parade/x.jpg")
    assert x.keep["easy"].tolist() == [True, False] and x.keep["hard"].tolist() == [True, True]
    r = ev.evaluate_widerface(gt, {"0--Parade/x.jpg": pred([A], [0.9])})
    assert r["easy"].ap == pytest.approx(1.0) and r["hard"].ap == pytest.approx(0.5)


def test_landmark_error_is_normalised_by_inter_ocular_distance():
    pts = np.array([[30, 30], [50, 30], [40, 40], [32, 50], [48, 50]], np.float64)
    samples = [ev.LandmarkSample("a.jpg", np.array([0, 0, 80, 80.0]), pts),
               ev.LandmarkSample("b.jpg", np.array([0, 0, 80, 80.0]), pts)]
    pad = ev.CANVAS_PAD
    # Every point 2 px off: error 2 / 20 = 0.1, exactly at the failure limit (not over it).
    shifted = pts + [2, 0] + pad
    preds = {"a.jpg": ev.Prediction.from_lists([[pad, pad, pad + 80, pad + 80]], [0.99], [shifted])}
    r = ev.landmark_errors(samples, preds)
    assert r.errors[0] == pytest.approx(0.1) and np.isnan(r.errors[1])
    assert (r.found, r.no_face) == (1, 1)
    assert r.mean_error == pytest.approx(0.1) and r.failure_rate == 0.0
    # A detection that misses the crop does not count as a face for it.
    preds = {"a.jpg": ev.Prediction.from_lists([[0, 0, 20, 20]], [0.99], [shifted])}
    assert ev.landmark_errors(samples, preds).found == 0


def test_eval_command_on_a_hand_made_set(tmp_path, capsys):
    shutil.copy(sample_image_path(), tmp_path / "astronaut.png")
    rec = {"image": "astronaut.png", "boxes": [[180, 62, 268, 174]], "in_easy": [True], "in_medium": [True]}
    (tmp_path / "annotations.jsonl").write_text(json.dumps(rec) + "\n")
    saved = tmp_path / "pred.jsonl"
    assert main(["eval", "widerface", "--root", str(tmp_path), "--device", "cpu", "--quiet",
                 "--save-predictions", str(saved)]) == 0
    out = capsys.readouterr().out
    assert [l.split()[-1] for l in out.splitlines()[2:5]] == ["1.0000"] * 3
    # Evaluating the saved predictions again gives the same table without detecting.
    assert main(["eval", "widerface", "--root", str(tmp_path), "--predictions", str(saved)]) == 0
    assert capsys.readouterr().out == out


@pytest.mark.parametrize(
    "line,problem",
    [
        ('{"image": "a.jpg", "boxes": [[1, 2, 3, 4]], "in_easy": [true, false]}', "in_easy has 2 flags for 1 boxes"),
        ('{"boxes": [[1, 2, 3, 4]]}', "KeyError: 'image'"),
        ('{"image": "a.jpg", "boxes": [[1, 2]]}', "cannot reshape"),
        ("not json", "Expecting value"),
    ],
)
def test_malformed_annotation_lines_name_the_file_and_line(tmp_path, line, problem):
    good = '{"image": "b.jpg", "boxes": [[1, 2, 30, 40]]}'
    (tmp_path / "annotations.jsonl").write_text(good + "\n\n" + line + "\n")
    with pytest.raises(ValueError, match=f"annotations.jsonl, line 3: not a valid record .*{problem}"):
        ev.load_widerface_jsonl(tmp_path)


def test_malformed_landmark_and_prediction_files_raise_value_error(tmp_path):
    crops = tmp_path / "crops.jsonl"
    crops.write_text('{"image": "a.jpg", "boxes": [[0, 0, 80, 80]]}\n')  # no landmarks
    with pytest.raises(ValueError, match="crops.jsonl, line 1: .*KeyError: 'landmarks'"):
        ev.load_landmarks_jsonl(crops)
    preds = tmp_path / "pred.jsonl"
    preds.write_text('{"image": "a.jpg", "boxes": [[0, 0, 8, 8]], "scores": "high"}\n')
    with pytest.raises(ValueError, match="pred.jsonl, line 1"):
        ev.read_predictions_jsonl(preds)
    (tmp_path / "gt.txt").write_text("0--Parade/x.jpg\n2\n10 10 40 40\n")  # 2 faces, 1 row
    with pytest.raises(ValueError, match="gt.txt, the image named on line 1: not in the official format"):
        ev.read_official_gt_txt(tmp_path / "gt.txt")
    (tmp_path / "0--Parade").mkdir()
    (tmp_path / "0--Parade" / "x.txt").write_text("x\n1\n10 10 40 40\n")  # no score
    with pytest.raises(ValueError, match="not an official prediction file"):
        ev.read_predictions_official(tmp_path, ["0--Parade/x.jpg"])


def test_eval_command_reports_a_missing_or_malformed_set_without_a_traceback(tmp_path, capsys):
    assert main(["eval", "widerface", "--root", str(tmp_path / "missing")]) == 2
    assert "error: [Errno 2] No such file or directory" in capsys.readouterr().err
    (tmp_path / "crops.jsonl").write_text('{"image": "a.jpg"}\n')
    assert main(["eval", "landmarks", "--file", str(tmp_path / "crops.jsonl")]) == 2
    assert "error: " in capsys.readouterr().err
