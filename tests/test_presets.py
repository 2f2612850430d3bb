"""Named settings (FaceDetector.preset, --preset), the NMS overlaps and flipped passes: that each is
applied. Their AP is measured by benchmarks/preset_search.py, not here."""

import numpy as np
import pytest
from support import assert_same

from mtcnn_fast import FaceDetector
from mtcnn_fast.cli import _settings, build_parser
from mtcnn_fast.detector import NMS_DEFAULT, PRESETS
from mtcnn_fast.metrics import iou_matrix


def test_the_widerface_preset_is_applied_and_can_be_overridden():
    det = FaceDetector.preset("widerface", device="cpu")
    for name, value in PRESETS["widerface"].items():
        assert getattr(det, name) == value, name
    assert PRESETS["widerface"] and PRESETS["original"] == {}
    original = FaceDetector.preset("original", device="cpu")
    assert (original.min_face_size, original.thresholds, original.scale_factor) == (20.0, (0.6, 0.7, 0.7), 0.709)
    assert original.nms_thresholds == NMS_DEFAULT and original.flip is False
    assert FaceDetector.preset("widerface", device="cpu", min_face_size=30).min_face_size == 30.0
    with pytest.raises(ValueError, match="preset must be one of"):
        FaceDetector.preset("paper")


def test_the_command_line_preset_and_explicit_flags():
    parse = build_parser().parse_args
    assert _settings(parse(["detect", "x.jpg"])) == {}  # the detector's own defaults
    assert _settings(parse(["detect", "x.jpg", "--preset", "original"])) == {}
    got = _settings(parse(["eval", "widerface", "--root", "r", "--preset", "widerface"]))
    assert {k: got[k] for k in PRESETS["widerface"]} == PRESETS["widerface"]
    got = _settings(parse(["detect", "x.jpg", "--preset", "widerface", "--min-face-size", "40",
                           "--thresholds", "0.7", "0.8", "0.9"]))
    assert got["min_face_size"] == 40.0 and got["thresholds"] == (0.7, 0.8, 0.9)
    with pytest.raises(SystemExit):
        parse(["detect", "x.jpg", "--preset", "nonsense"])


def test_nms_thresholds_are_the_ones_the_cascade_uses(astronaut, monkeypatch):
    det = FaceDetector(device="cpu", nms_thresholds=(0.41, 0.52, 0.63, 0.74))
    seen = []
    real = det._ops

    class Recording:
        def __getattr__(self, name):
            return getattr(real, name)

        def nms(self, boxes, scores, threshold, mode="union"):
            seen.append((round(float(threshold), 2), mode))
            return real.nms(boxes, scores, threshold, mode)

    monkeypatch.setattr(det, "_ops", Recording())
    assert len(det.detect(astronaut)) == 1
    assert set(seen) == {(0.41, "union"), (0.52, "union"), (0.63, "union"), (0.74, "min")}
    for bad in [(0.5, 0.7, 0.7), (0.5, 0.7, 0.7, 1.5)]:
        with pytest.raises(ValueError, match="nms_thresholds"):
            FaceDetector(device="cpu", nms_thresholds=bad)


def test_a_flipped_pass_finds_the_face_and_is_mirror_symmetric(astronaut, detector):
    flip = FaceDetector(device="cpu", flip=True)
    plain, both = detector.detect(astronaut), flip.detect(astronaut)
    assert len(both) == 1 and iou_matrix(both.boxes, plain.boxes)[0, 0] > 0.9
    assert np.abs(both.landmarks - plain.landmarks).max() < 3
    # The mirror image gives the mirrored faces: boxes and points reflected, left and right swapped.
    mirrored = flip.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    w = astronaut.shape[1] - 1
    assert len(mirrored) == 1
    back = mirrored.boxes[0][[2, 1, 0, 3]] * [-1, 1, -1, 1] + [w, 0, w, 0]
    assert np.abs(back - both.boxes[0]).max() < 1e-3
    points = mirrored.landmarks[0][[1, 0, 2, 4, 3]] * [-1, 1] + [w, 0]
    assert np.abs(points - both.landmarks[0]).max() < 1e-3
    with pytest.raises(TypeError, match="flip"):
        FaceDetector(device="cpu", flip="yes")


@pytest.mark.exactness
def test_a_batch_with_flipped_passes_gives_each_frame_its_own_result(astronaut):
    flip = FaceDetector(device="cpu", flip=True)
    frames = [astronaut, np.ascontiguousarray(np.tile(astronaut, (1, 2, 1))), np.ascontiguousarray(astronaut[300:, 280:])]
    alone = [flip.detect(f) for f in frames]
    assert [len(a) for a in alone] == [1, 2, 0]
    for got, want in zip(flip.detect(frames), alone):
        assert_same(got, want)
