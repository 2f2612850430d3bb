"""Detections as a Python sequence of faces (issue #17): length, indexing, iteration, and a clear
error for facenet-pytorch's three-way unpacking."""

import numpy as np
import pytest

from mtcnn_fast import Detections, Face


@pytest.fixture(scope="module")
def three(detector, astronaut):
    """Three faces: the photo three times side by side, each copy a little smaller."""
    import cv2

    tiles = [cv2.resize(astronaut, (s, s), interpolation=cv2.INTER_AREA) for s in (512, 448, 384)]
    canvas = np.zeros((512, sum(t.shape[1] for t in tiles), 3), np.uint8)
    x = 0
    for t in tiles:
        canvas[: t.shape[0], x : x + t.shape[1]] = t
        x += t.shape[1]
    faces = detector.detect(canvas)
    assert len(faces) == 3
    return faces


def test_faces_index_and_iterate_as_records(three):
    assert len(three) == 3 and bool(three)
    first = three[0]
    assert isinstance(first, Face)
    assert np.array_equal(first.box, three.boxes[0]) and first.score == three.scores[0]
    assert np.array_equal(first.landmarks, three.landmarks[0])
    assert np.array_equal(three[-1].box, three.boxes[2]) and three[np.int64(1)].score == three.scores[1]
    records = list(three)
    assert [f.score for f in records] == list(three.scores)
    for k, (box, score, landmarks) in enumerate(three):  # per-face unpacking, insightface-style
        assert np.array_equal(box, three.boxes[k]) and score == three.scores[k]
        assert landmarks.shape == (5, 2)
    with pytest.raises(IndexError, match="out of range"):
        three[3]


def test_slices_and_masks_select_detections(three):
    top = three[:2]
    assert isinstance(top, Detections) and len(top) == 2
    assert np.array_equal(top.boxes, three.boxes[:2]) and np.array_equal(top.landmarks, three.landmarks[:2])
    picked = three[three.scores >= three.scores[1]]
    assert np.array_equal(picked.scores, three.scores[:2])
    assert np.array_equal(three[[2, 0]].scores, three.scores[[2, 0]])
    assert len(three[[]]) == 0 and three[[]].boxes.shape == (0, 4)


def test_facenet_style_unpacking_says_what_to_write(three, detector, astronaut):
    # facenet-pytorch: `boxes, probs = mtcnn.detect(img)`, `boxes, probs, points = ...`. Refused
    # whatever the face count (three faces would otherwise unpack silently into faces).
    for faces in (three, three[:2], detector.detect(astronaut)):
        with pytest.raises(TypeError, match=r"faces\.boxes, faces\.scores, faces\.landmarks"):
            boxes, scores, points = faces
        with pytest.raises(TypeError, match=r"faces\.boxes, faces\.scores, faces\.landmarks"):
            boxes, probs = faces
        with pytest.raises(TypeError, match="not unpacked"):
            best, *rest = faces
    a, b, c = list(three)  # the faces, asked for explicitly
    assert (a.score, b.score, c.score) == tuple(three.scores)
    assert [f.score for f in three[:2]] == list(three.scores[:2])  # iteration is unaffected


def test_indexing_by_a_name_points_to_the_attribute(three):
    with pytest.raises(TypeError, match="faces.boxes"):
        three["boxes"]
