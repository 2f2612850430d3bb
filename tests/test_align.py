"""Aligned and margin crops on a real face."""

import numpy as np
import pytest

from mtcnn_fast import align, crop
from mtcnn_fast.align import ARCFACE_TEMPLATE, similarity_transform


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot) and np.allclose(m[:, 2], shift)


def test_aligned_landmarks_land_on_the_template(detector, astronaut):
    faces = detector.detect(astronaut)
    (aligned,) = align(astronaut, faces.landmarks)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    # Where the face's own points go under the warp: the eyes onto the template's eyes within a
    # couple of pixels. A similarity cannot fit all five points of a real face exactly (this
    # smile is wider than the template's mouth): the least-squares residual is spread over them.
    m = similarity_transform(faces.landmarks[0], ARCFACE_TEMPLATE)
    moved = faces.landmarks[0] @ m[:, :2].T + m[:, 2]
    err = np.linalg.norm(moved - ARCFACE_TEMPLATE, axis=1)
    assert err[:2].max() < 2.5 and err.max() < 8, err
    # And the pixels really moved there: the detector, run on the aligned crop (on a canvas),
    # finds the eyes where the warp put them, within 2 px.
    canvas = np.zeros((224, 224, 3), np.uint8)
    canvas[56:168, 56:168] = aligned
    again = detector.detect(canvas)
    assert len(again) == 1
    eyes = again.landmarks[0][:2] - 56
    assert np.linalg.norm(eyes - moved[:2], axis=1).max() < 2.0


def test_align_scales_the_template_and_keeps_bgr_order(detector, astronaut):
    faces = detector.detect(astronaut)
    rgb = align(astronaut, faces.landmarks[0], size=224)
    bgr = align(np.ascontiguousarray(astronaut[:, :, ::-1]), faces.landmarks[0], size=224, bgr=True)
    assert rgb.shape == (1, 224, 224, 3)
    assert np.array_equal(bgr[..., ::-1], rgb)


def test_crop_centres_the_face_with_its_margin(detector, astronaut):
    faces = detector.detect(astronaut)
    (tight,) = crop(astronaut, faces.boxes, margin_fraction=0.0, size=100)
    (loose,) = crop(astronaut, faces.boxes, margin_fraction=0.25, size=150)
    assert tight.shape == (100, 100, 3) and loose.shape == (150, 150, 3)
    # The face detected in the loose crop sits in its middle half.
    canvas = np.zeros((300, 300, 3), np.uint8)
    canvas[75:225, 75:225] = loose
    again = detector.detect(canvas)
    assert len(again) == 1
    cx, cy = (again.boxes[0, :2] + again.boxes[0, 2:]) / 2 - 75
    assert abs(cx - 75) < 10 and abs(cy - 75) < 10


def test_crop_outside_the_frame_is_black(astronaut):
    (c,) = crop(astronaut, [[-300, -300, -200, -200]], size=20)
    assert not c.any()


@pytest.mark.parametrize(
    "call",
    [
        lambda img: align(img, np.zeros((2, 4, 2))),
        lambda img: align(img, np.full((5, 2), np.nan)),
        lambda img: align(img, np.arange(10.0).reshape(5, 2), size=4),
        lambda img: crop(img, [[0, 0, 1]]),
        lambda img: crop(img, [[10, 10, 10, 10]]),
        lambda img: crop(img, [[0, 0, 10, 10]], margin=-1),
        lambda img: crop(img, [[0, 0, 10, 10]], margin_fraction=float("nan")),
        lambda img: crop(img, [[0, 0, 10, 10]], margin_px=-2),
    ],
)
def test_bad_arguments_raise_value_error(astronaut, call):
    with pytest.raises(ValueError):
        call(astronaut)


def test_landmarks_that_all_coincide_are_refused(astronaut):
    # Five points at one place define no scale or rotation; a crop from them would be arbitrary.
    good = np.array([[200, 120], [240, 120], [220, 140], [205, 160], [235, 160]], np.float64)
    with pytest.raises(ValueError, match="face 1 all coincide"):
        align(astronaut, np.stack([good, np.full((5, 2), 100.0)]))
    assert align(astronaut, good[None]).shape == (1, 112, 112, 3)


def test_align_and_crop_take_detections_and_face_records(detector, astronaut):
    faces = detector.detect(astronaut)
    assert np.array_equal(align(astronaut, faces), align(astronaut, faces.landmarks))
    assert np.array_equal(align(astronaut, faces[0], size=96), align(astronaut, faces.landmarks[0], size=96))
    assert np.array_equal(crop(astronaut, faces, margin_fraction=0.2),
                          crop(astronaut, faces.boxes, margin_fraction=0.2))
    assert np.array_equal(crop(astronaut, faces[0]), crop(astronaut, faces.boxes[:1]))


def test_a_pixel_margin_is_never_taken_for_a_fraction(detector, astronaut):
    faces = detector.detect(astronaut)
    # facenet-pytorch's margin is in pixels: margin=20 here would be a 41x crop, almost all black.
    with pytest.raises(ValueError, match="margin_px=20"):
        crop(astronaut, faces.boxes, margin=20)
    (c,) = crop(astronaut, faces.boxes, margin_px=20)
    assert c.shape == (160, 160, 3) and c.mean() > 60
    # margin_px is facenet-pytorch's: the box's longer side fills size - margin_px pixels.
    fraction = 20 / (2 * (160 - 20))
    assert np.array_equal(c, crop(astronaut, faces.boxes, margin_fraction=fraction)[0])
    # The old name still means a fraction where it cannot be mistaken.
    assert np.array_equal(crop(astronaut, faces, margin=0.25), crop(astronaut, faces, margin_fraction=0.25))
    with pytest.raises(ValueError, match="not both"):
        crop(astronaut, faces, margin_fraction=0.1, margin_px=10)
    with pytest.raises(ValueError, match="below size"):
        crop(astronaut, faces, margin_px=160)


def test_sizes_and_margins_take_numpy_scalars(detector, astronaut):
    faces = detector.detect(astronaut)
    assert np.array_equal(align(astronaut, faces, size=np.int64(96)), align(astronaut, faces, size=96))
    assert np.array_equal(crop(astronaut, faces, np.float32(0.25), np.int32(100)),
                          crop(astronaut, faces, 0.25, 100))
    assert np.array_equal(crop(astronaut, faces, margin_px=np.int64(20)), crop(astronaut, faces, margin_px=20))
    with pytest.raises(TypeError, match="margin_fraction"):
        crop(astronaut, faces, "0.2")
