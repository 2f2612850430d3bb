"""Fuzzing the C++ boundary against the NumPy reference: hostile arrays (NaN, inf, negative and
enormous coordinates, odd shapes and dtypes, non-contiguous views) must give the reference's
answer or the reference's exception type, never a crash. Run long under the sanitizers with
scripts/sanitize.sh."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mtcnn_fast import _core, _reference

hostile = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, -1.0, 1e9, -1e9, 1e12, 2.0**31, -(2.0**31), 3.4e38]),
    st.floats(-2000, 2000, width=32),
)
dtypes = st.sampled_from([np.float32, np.float32, np.float32, np.float64, np.int32, np.uint8])
shapes = st.one_of(
    st.tuples(st.integers(0, 12), st.just(4)),
    st.tuples(st.integers(0, 5), st.integers(0, 6)),
    st.tuples(st.integers(0, 5)),
    st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 4)),
)


@st.composite
def arrays(draw):
    dtype = draw(dtypes)
    shape = draw(shapes)
    if dtype in (np.float32, np.float64):
        a = draw(hnp.arrays(dtype, shape, elements=hostile))
    else:
        a = draw(hnp.arrays(dtype, shape))
    if draw(st.booleans()) and a.ndim == 2 and a.shape[0] > 1:
        a = a[::2]  # a strided view
    return a


def outcome(fn):
    try:
        return "ok", fn()
    except (TypeError, ValueError) as e:
        return type(e).__name__, None


def same_outcome(call):
    a_kind, a = outcome(lambda: call(_core))
    b_kind, b = outcome(lambda: call(_reference))
    assert a_kind == b_kind, (a_kind, b_kind)
    if a_kind == "ok":
        a_items = a if isinstance(a, (tuple, list)) else (a,)
        b_items = b if isinstance(b, (tuple, list)) else (b,)
        assert len(a_items) == len(b_items)
        for x, y in zip(a_items, b_items):
            assert np.array_equal(x, y, equal_nan=True)


image = st.tuples(st.integers(1, 24), st.integers(1, 24)).flatmap(lambda hw: hnp.arrays(np.uint8, hw + (3,)))


@given(arrays(), st.floats(allow_nan=True), st.sampled_from(["union", "min", "iou"]), st.data())
def test_nms_boundary(boxes, threshold, mode, data):
    n = boxes.shape[0] if boxes.ndim else 0
    scores = data.draw(st.one_of(hnp.arrays(np.float32, (n,), elements=hostile), arrays()))
    same_outcome(lambda m: m.nms(boxes, scores, threshold, mode))


@given(arrays(), arrays(), st.booleans())
def test_calibrate_boundary(boxes, reg, plus_one):
    same_outcome(lambda m: m.calibrate(boxes, reg, plus_one))


@given(arrays())
def test_square_boundary(boxes):
    same_outcome(lambda m: m.square(boxes))


@given(image, arrays(), st.sampled_from([1, 3, 24, 0, -5, 5000]))
def test_crop_windows_boundary(img, boxes, size):
    same_outcome(lambda m: m.crop_windows(img, boxes, size))


@given(arrays(), arrays(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1))
def test_generate_windows_boundary(scores, reg, scale, threshold):
    same_outcome(lambda m: m.generate_windows(scores, reg, scale, threshold))


@given(image, st.lists(st.one_of(st.floats(-1, 4), st.sampled_from([float("nan"), float("inf")])), max_size=3))
def test_pyramid_boundary(img, scales):
    same_outcome(lambda m: m.pyramid(img, scales))


@given(st.integers(-5, 10**6), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
       st.floats(allow_nan=True, allow_infinity=True))
def test_pyramid_scales_boundary(h, w, min_face, factor):
    same_outcome(lambda m: m.pyramid_scales(h, w, min_face, factor))
