"""Every kind of input gets the right answer or a clear TypeError/ValueError."""

import numpy as np
import pytest
import torch

from support import assert_empty, assert_same


@pytest.fixture(scope="module")
def reference(detector, astronaut):
    return detector.detect(astronaut)


def test_grayscale_frames_are_replicated_to_three_channels(detector, astronaut):
    gray = astronaut.mean(axis=2).round().astype(np.uint8)
    want = detector.detect(np.repeat(gray[:, :, None], 3, axis=2))
    assert len(want) == 1
    assert_same(detector.detect(gray), want)
    assert_same(detector.detect(gray[:, :, None]), want)


def test_rgba_and_bgra_drop_alpha(detector, astronaut, reference):
    alpha = np.full(astronaut.shape[:2] + (1,), 200, np.uint8)
    assert_same(detector.detect(np.concatenate([astronaut, alpha], axis=2)), reference)
    bgra = np.concatenate([astronaut[:, :, ::-1], alpha], axis=2)
    assert_same(detector.detect(bgra, bgr=True), reference)


def test_views_and_non_contiguous_arrays_work(detector, astronaut, reference):
    padded = np.zeros((600, 700, 3), np.uint8)
    padded[50:562, 100:612] = astronaut
    view = padded[50:562, 100:612]
    assert not view.flags.c_contiguous
    assert_same(detector.detect(view), reference)
    fortran = np.asfortranarray(astronaut)
    assert_same(detector.detect(fortran), reference)


def test_other_integer_dtypes_in_range_are_accepted(detector, astronaut, reference):
    assert_same(detector.detect(astronaut.astype(np.int64)), reference)
    assert_same(detector.detect(astronaut.astype(np.uint16)), reference)
    with pytest.raises(ValueError, match="0..255"):
        detector.detect(astronaut.astype(np.int16) * 2)
    with pytest.raises(ValueError, match="0..255"):
        detector.detect(astronaut.astype(np.int16) - 1)


def test_torch_tensors_hwc_are_accepted(detector, astronaut, reference):
    assert_same(detector.detect(torch.from_numpy(astronaut)), reference)
    batch = detector.detect(torch.from_numpy(np.stack([astronaut, astronaut])))
    assert len(batch) == 2 and all(len(f) == 1 for f in batch)


def test_channels_first_arrays_and_tensors_get_a_transpose_hint(detector, astronaut):
    chw = np.ascontiguousarray(astronaut.transpose(2, 0, 1))
    with pytest.raises(ValueError, match=r"transpose\(1, 2, 0\)"):
        detector.detect(chw)
    with pytest.raises(ValueError, match=r"permute\(1, 2, 0\)"):
        detector.detect(torch.from_numpy(chw))


def test_float_frames_are_refused_with_the_conversion_to_use(detector, astronaut):
    for frame in (astronaut.astype(np.float32), astronaut / 255.0, np.full((20, 20, 3), np.nan)):
        with pytest.raises(TypeError, match="astype"):
            detector.detect(frame)


@pytest.mark.parametrize(
    "frame,exc,match",
    [
        (None, TypeError, "None"),
        ("photo.jpg", TypeError, "str"),
        (np.zeros((10, 10, 3), bool), TypeError, "bool"),
        (np.zeros((0, 10, 3), np.uint8), ValueError, "empty"),
        (np.zeros((10, 0), np.uint8), ValueError, "empty"),
        (np.zeros((10, 10, 5), np.uint8), ValueError, "5 channels"),
        (np.zeros((10, 10, 2), np.uint8), ValueError, "2 channels"),
        (np.zeros((10,), np.uint8), ValueError, "shape"),
        (np.zeros((1, 2, 10, 10, 3), np.uint8), ValueError, "shape"),
    ],
)
def test_bad_input_names_the_problem(detector, frame, exc, match):
    with pytest.raises(exc, match=match):
        detector.detect(frame)


def test_a_batch_is_checked_whole_before_any_detection(detector, astronaut):
    with pytest.raises(ValueError, match=r"frames\[2\]"):
        detector.detect([astronaut, astronaut, np.zeros((5, 5, 7), np.uint8)])


def test_batches_with_some_empty_frames_have_the_right_shapes(detector, astronaut):
    out = detector.detect([np.zeros((64, 64, 3), np.uint8), astronaut, np.full((8, 8), 255, np.uint8)])
    assert [len(f) for f in out] == [0, 1, 0]
    assert_empty(out[0])
    assert_empty(out[2])


def test_large_frames_work(detector, astronaut):
    big = np.ascontiguousarray(np.tile(astronaut, (6, 8, 1)))  # 3072 x 4096
    faces = detector.detect(big)
    # One astronaut face per tile (48), a few more where tiles meet.
    assert len(faces) >= 48
    tile_origins = {(int(x1 // 512), int(y1 // 512)) for x1, y1 in faces.boxes[:, :2]}
    assert len(tile_origins) == 48


def test_non_finite_network_outputs_are_filtered_before_the_core(astronaut, monkeypatch):
    """A corrupt network (NaN/inf outputs) drops the affected windows instead of crashing."""
    from mtcnn_fast import FaceDetector

    det = FaceDetector(device="cpu", jit=False)
    clean = det.detect(astronaut)
    real = det.rnet.head  # R-Net's outputs come from its last part

    def poisoned(x):
        prob, reg = real(x)
        reg = reg.clone()
        reg[::2] = float("nan")  # every other window
        reg[1::4, 0] = float("inf")
        return prob, reg

    monkeypatch.setattr(det.rnet, "head", poisoned)
    faces = det.detect(astronaut)
    assert faces.boxes.shape[1:] == (4,) and np.isfinite(faces.boxes).all()
    assert len(faces) <= len(clean) + 1
