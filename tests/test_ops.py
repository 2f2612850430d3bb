"""Every C++ op equals its NumPy twin (the specification) bit for bit, on random and edge-case
inputs, and both reject bad arguments with the same exception type."""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mtcnn_fast import _core, _reference

coords = st.floats(-300, 300, width=32, allow_nan=False)
integral = st.integers(-60, 160).map(float)


def box_arrays(elements=coords, max_n=40):
    return st.integers(0, max_n).flatmap(
        lambda n: hnp.arrays(np.float32, (n, 4), elements=elements)
    )


def sorted_boxes(max_n=40, elements=coords):
    """Boxes with x1 <= x2 and y1 <= y2 (plus degenerate ones where they are equal)."""

    def fix(b):
        x = np.sort(b[:, [0, 2]], axis=1)
        y = np.sort(b[:, [1, 3]], axis=1)
        return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1).astype(np.float32)

    return box_arrays(elements, max_n).map(fix)


images = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda hw: hnp.arrays(np.uint8, (hw[0], hw[1], 3))
)


def same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b), np.abs(a.astype(np.float64) - b).max()


def cpu_has_avx2():
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return None


@contextlib.contextmanager
def row_kernels(vector):
    """The area resizes' row loops as AVX2 code (vector=True, where the CPU has it) or plain."""
    before = _core._vector_kernels()
    try:
        assert _core._vector_kernels(vector) == (vector and before)
        yield
    finally:
        _core._vector_kernels(before)


def kernel_modes():
    """Every version of the row loops this CPU can run: the vector one first, then the plain."""
    return [True, False] if _core._vector_kernels() else [False]


# --- pyramid -------------------------------------------------------------------------------


@given(st.integers(0, 2500), st.integers(0, 2500), st.floats(4, 200), st.floats(0.3, 0.95))
def test_pyramid_scales_match_reference(h, w, min_face, factor):
    got = _core.pyramid_scales(h, w, min_face, factor)
    assert got == _reference.pyramid_scales(h, w, min_face, factor)
    assert all(min(h, w) * s >= 12 for s in got)


def test_pyramid_scales_follow_the_original_rule():
    scales = _core.pyramid_scales(480, 640, 20.0, 0.709)
    assert scales[0] == pytest.approx(0.6)
    assert np.allclose(np.diff(np.log(scales)), np.log(0.709))
    assert 480 * scales[-1] >= 12 > 480 * scales[-1] * 0.709
    assert _core.pyramid_scales(11, 500, 12.0, 0.709) == []


def test_pyramid_scales_refuse_a_first_level_too_large_for_memory():
    # 12 / min_face_size scales the frame up: 0.001 px faces on a 64 x 64 frame would make a
    # 768,000 x 768,000 level (6.4 TiB); both backends refuse before allocating anything.
    for m in (_core, _reference):
        with pytest.raises(ValueError, match="first pyramid level of more than 67108864 pixels"):
            m.pyramid_scales(64, 64, 0.001, 0.709)
        # The limit is on the first level's pixels: a 3840 x 2160 frame at min face 4.5 (10240 x
        # 5760, 59 Mpx) is allowed, at min face 4 (11520 x 6480, 75 Mpx) refused; a 144 Mpx photo
        # at the default min face (0.6 x 0.6 of it, 52 Mpx) passes.
        assert m.pyramid_scales(2160, 3840, 4.5, 0.709)[0] == pytest.approx(12 / 4.5)
        with pytest.raises(ValueError, match="use a larger min_face_size"):
            m.pyramid_scales(2160, 3840, 4.0, 0.709)
        assert m.pyramid_scales(12000, 12000, 20.0, 0.709)[0] == pytest.approx(0.6)


@given(images, st.lists(st.floats(0.05, 3.0), min_size=0, max_size=4))
def test_pyramid_matches_reference(img, scales):
    want = _reference.pyramid(img, scales)
    for vector in kernel_modes():
        with row_kernels(vector):
            got = _core.pyramid(img, scales)
        assert len(got) == len(want) == len(scales)
        for g, w_, s in zip(got, want, scales):
            assert g.shape == (int(np.ceil(img.shape[0] * s)), int(np.ceil(img.shape[1] * s)), 3)
            same(g, w_)


def test_the_row_loops_run_as_vector_code_where_the_cpu_has_avx2():
    """The pyramid's and the crops' row loops have an AVX2 version (same numbers: the tests here
    run both); a CPU with AVX2 must get it, or the speed is silently lost."""
    has = cpu_has_avx2()
    if has is None:
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"AVX2 is an x86-64 extension; this is {platform.machine()}")
    assert _core._vector_kernels() == has
    with row_kernels(False):
        assert not _core._vector_kernels()
    assert _core._vector_kernels() == has


@pytest.mark.exactness
def test_pyramid_and_crops_do_not_depend_on_the_thread_count(astronaut):
    """The core shares stripes of the frame's rows (the pyramid, the crops' summed-area table)
    and crop windows out among exactly `threads` OpenMP threads; every count gives the same
    numbers, equal to the twin's."""
    img = np.ascontiguousarray(np.tile(astronaut, (2, 3, 1)))[:1000]
    scales = _core.pyramid_scales(img.shape[0], img.shape[1], 20.0, 0.709)
    rng = np.random.default_rng(3)
    xy = rng.uniform(-40, 1500, size=(300, 2))
    side = rng.uniform(4, 200, size=(300, 1))
    boxes = np.concatenate([xy, xy + side], axis=1).astype(np.float32)
    want_levels = _reference.pyramid(img, scales)
    want_crops = {size: _reference.crop_windows(img, boxes, size) for size in (24, 48)}
    for threads in (1, 2, 3):
        for got, want in zip(_core.pyramid(img, scales, threads), want_levels):
            same(got, want)
        for size, want in want_crops.items():
            same(_core.crop_windows(img, boxes, size, threads), want)


@pytest.mark.exactness
def test_crops_whose_table_would_be_large_are_swept_to_the_same_numbers(astronaut):
    """Windows whose region's summed-area table would pass 32 MB (here 1800 x 1700 px: 36.7 MB)
    are cut from a sweep of the table's rows, one sweep per thread over the windows in the
    order of their top rows, not from a stored table: the twin's numbers at every thread count,
    with every version of the row loops."""
    img = np.ascontiguousarray(np.tile(astronaut, (4, 4, 1))[:1800, :1700])
    assert 1801 * 1701 * 3 * 4 > 32 << 20
    rng = np.random.default_rng(5)
    xy = rng.uniform(-40, 1700, size=(300, 2))
    side = rng.uniform(4, 200, size=(300, 1))
    boxes = np.concatenate([xy, xy + side], axis=1).astype(np.float32)
    boxes[0] = [1, 1, 60, 60]  # the region spans the image
    boxes[1] = [1650, 1750, 1700, 1800]
    for size in (24, 48):
        want = _reference.crop_windows(img, boxes, size)
        for vector in kernel_modes():
            with row_kernels(vector):
                for threads in (1, 2, 3):
                    same(_core.crop_windows(img, boxes, size, threads), want)


def test_crops_of_a_large_region_do_not_store_its_table():
    """Two windows at opposite corners of a 6000 x 4000 frame span all of it: a stored table
    would take 576 MB (24 bytes a pixel past 16.8 Mpx). The crops raise the process's peak
    resident size by a small part of that."""
    code = """
import resource
import numpy as np
from mtcnn_fast import _core
img = np.full((4000, 6000, 3), 200, np.uint8)
boxes = np.array([[1, 1, 100, 100], [5901, 3901, 6000, 4000]], np.float32)
_core.crop_windows(img, boxes[:1], 24)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = _core.crop_windows(img, boxes, 24)
assert np.all(np.isclose(out, (200 - 127.5) * 0.0078125))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    growth_mb = float(run.stdout.split()[-1])
    assert growth_mb < 64, f"the crops raised the peak resident size by {growth_mb:.0f} MB"


@pytest.mark.exactness
@pytest.mark.parametrize(
    "h, w, min_face, factor",
    [
        (333, 517, 12.0, 0.9),  # many levels (35)
        (97, 131, 5.0, 0.709),  # odd sides; min face under 12: the first levels are bilinear
        (1001, 45, 12.0, 0.9),  # tall and thin: up to 31 stripes
        (64, 1000, 8.0, 0.8),  # wide and flat: at most 2 stripes
    ],
)
def test_pyramid_matches_reference_for_every_thread_count(h, w, min_face, factor):
    """The core makes the area-averaged levels in stripes of the frame's rows (one per thread, of
    at least 32 rows), each sweeping the summed-area table's rows from the top of the frame
    without storing the table; a level's output row across a stripe edge comes from two stripes.
    Every thread count gives the twin's numbers."""
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    scales = _core.pyramid_scales(h, w, min_face, factor) + [1.0, 0.999, 0.05]
    bilinear = [s for s in scales if s > 1.0]
    assert len(scales) >= 8 and (bool(bilinear) == (min_face < 12))
    want = _reference.pyramid(img, scales)
    for vector in kernel_modes():
        with row_kernels(vector):
            for threads in (1, 2, 3, 7, 32):
                got = _core.pyramid(img, scales, threads)
                assert len(got) == len(want)
                for g, w_ in zip(got, want):
                    same(g, w_)


@given(
    st.integers(1, 260),
    st.integers(1, 90),
    st.integers(0, 2**32 - 1),
    st.lists(st.floats(0.02, 1.5), min_size=1, max_size=5),
    st.integers(1, 9),
)
def test_pyramid_in_stripes_matches_reference(h, w, seed, scales, threads):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    want = _reference.pyramid(img, scales)
    for vector in kernel_modes():
        with row_kernels(vector):
            got = _core.pyramid(img, scales, threads)
        for g, w_ in zip(got, want):
            same(g, w_)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc (Linux)")
def test_the_core_and_torch_share_one_openmp_runtime():
    """Two OpenMP runtimes in one process would each keep their own spinning workers."""
    import torch  # noqa: F401

    with open("/proc/self/maps") as f:
        runtimes = {line.split()[-1] for line in f if "gomp" in line or "libomp" in line or "libiomp" in line}
    assert len(runtimes) <= 1, runtimes


def test_pyramid_identity_scale_is_the_normalised_image(astronaut):
    (level,) = _core.pyramid(astronaut, [1.0])
    same(level, (astronaut.astype(np.float32) - 127.5) * 0.0078125)


def _grey(level):
    return level / 0.0078125 + 127.5


def test_pyramid_shrinks_by_area_averages_and_grows_bilinearly(astronaut):
    """The kernel: levels smaller than the image average the source over each output pixel
    (OpenCV's INTER_AREA on the float image computes the same), larger ones are bilinear."""
    import cv2

    small, large = _core.pyramid(astronaut, [0.37, 1.37])
    src = astronaut.astype(np.float32)
    area = cv2.resize(src, small.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(_grey(small) - area).max() < 1e-3
    linear = cv2.resize(src, large.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    assert np.abs(_grey(large) - linear).max() < 1e-3
    # Bilinear shrinking (the other kernel) is measurably different on a real photo.
    assert np.abs(_grey(small) - cv2.resize(src, small.shape[1::-1])).mean() > 1.0


def test_area_average_of_exact_blocks():
    """A 2x shrink averages each 2x2 block exactly; a 3 -> 2 shrink weights the shared middle
    pixel by half in each output cell."""
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    for backend in (_core, _reference):
        (half,) = backend.pyramid(img, [0.5])
        want = img.astype(np.float64).reshape(2, 2, 3, 2, 3).mean(axis=(1, 3))
        assert np.allclose(_grey(half), want, atol=1e-4)
    row = np.array([[[0, 0, 0], [90, 90, 90], [30, 30, 30]]], np.uint8)  # 1 x 3
    got = _grey(_core.crop_windows(row, np.array([[1, 1, 3, 3]], np.float32), 2)[0])
    # Rows: the window is 3 high but the image 1 (zero below): each output row covers 1.5 rows.
    assert np.allclose(got[0, :, 0], [(0 + 45) / 1.5 / 1.5, (45 + 30) / 1.5 / 1.5], atol=1e-4)
    assert np.allclose(got[1, :, 0], 0, atol=1e-4)


def assert_area_resizes_match_reference(img, scales, boxes, thread_counts):
    """The pyramid (at each thread count) and 24 x 24 crops of img equal the twin's, with every
    version of the row loops."""
    want = _reference.pyramid(img, scales)
    want_crops = _reference.crop_windows(img, boxes, 24)
    for vector in kernel_modes():
        with row_kernels(vector):
            for threads in thread_counts:
                for got, w_ in zip(_core.pyramid(img, scales, threads), want):
                    same(got, w_)
            same(_core.crop_windows(img, boxes, 24), want_crops)


def test_area_resize_on_a_picture_too_large_for_32_bit_sums():
    """Over 16.8 Mpx the core's summed-area sums switch from uint32 to double: same results (the
    pyramid's in stripes too)."""
    img = np.random.default_rng(0).integers(200, 256, (4100, 4200, 3), dtype=np.uint8)
    boxes = np.array([[1, 1, 4200, 4100], [4000, 3900, 4300, 4200]], np.float32)
    assert_area_resizes_match_reference(img, [0.011, 0.0043], boxes, (1, 3))


def test_area_resize_with_sums_past_two_to_the_31():
    """Between about 8.4 and 16.8 Mpx the uint32 sums pass 2^31 (the vector code converts them
    to double by another route than below it): same results."""
    img = np.random.default_rng(1).integers(235, 256, (3000, 3100, 3), dtype=np.uint8)
    assert 235 * 3000 * 3100 > 2**31 and 255 * 3000 * 3100 < 2**32
    boxes = np.array([[1, 1, 3100, 3000], [2900, 2800, 3200, 3100], [5, 9, 3000, 2999]], np.float32)
    assert_area_resizes_match_reference(img, [0.013, 0.0061], boxes, (1, 2))


def test_pyramid_output_is_wrapped_by_torch_without_copy(astronaut):
    import torch

    (level,) = _core.pyramid(astronaut, [0.5])
    assert level.flags.c_contiguous and level.flags.writeable
    # HWC memory seen as a 1 x 3 x H x W tensor in channels-last format, no copy.
    t = torch.from_numpy(level[None]).permute(0, 3, 1, 2)
    assert t.data_ptr() == level.ctypes.data
    assert t.shape == (1, 3, 256, 256) and t.is_contiguous(memory_format=torch.channels_last)


# --- crops ---------------------------------------------------------------------------------


@given(images, box_arrays(integral, 12), st.sampled_from([1, 5, 24, 48]))
def test_crop_windows_match_reference(img, boxes, size):
    want = _reference.crop_windows(img, boxes, size)
    for vector in kernel_modes():
        with row_kernels(vector):
            same(_core.crop_windows(img, boxes, size), want)


def test_crop_of_whole_image_at_its_size_is_the_normalised_image(astronaut):
    small = np.ascontiguousarray(astronaut[100:124, 200:224])
    crop = _core.crop_windows(small, np.array([[1, 1, 24, 24]], np.float32), 24)
    same(crop[0], (small.astype(np.float32) - 127.5) * 0.0078125)


def test_crop_larger_than_size_is_an_area_average(astronaut):
    import cv2

    crop = _core.crop_windows(astronaut, np.array([[101, 51, 200, 150]], np.float32), 24)[0]
    patch = astronaut[50:150, 100:200].astype(np.float32)
    assert np.abs(_grey(crop) - cv2.resize(patch, (24, 24), interpolation=cv2.INTER_AREA)).max() < 1e-3
    # A window smaller than the size is enlarged bilinearly.
    crop = _core.crop_windows(astronaut, np.array([[101, 51, 110, 60]], np.float32), 24)[0]
    patch = astronaut[50:60, 100:110].astype(np.float32)
    assert np.abs(_grey(crop) - cv2.resize(patch, (24, 24), interpolation=cv2.INTER_LINEAR)).max() < 1e-3


def test_a_window_far_wider_than_the_image_is_cut_like_the_twin(astronaut):
    """A window lower than the size is enlarged bilinearly, whatever its width. Windows no wider
    than the size have each row converted once into a buffer of the row; a wider one samples
    each value where it lies, so a window two billion pixels wide (coordinates up to the limit
    of 1e9) costs what a narrow one does and gives the twin's numbers (a buffer of its row would
    be 24 GB)."""
    boxes = np.array([[-1e9, 3, 1e9, 10], [-1e9, -600, 1e9, -590], [100, 200, 1e9, 203]], np.float32)
    same(_core.crop_windows(astronaut, boxes, 24), _reference.crop_windows(astronaut, boxes, 24))


def test_crop_zero_fills_outside_the_image(astronaut):
    boxes = np.array([[-99, -99, -50, -50], [600, 10, 700, 110], [10, 10, 5, 5]], np.float32)
    for backend in (_core, _reference):
        crops = backend.crop_windows(astronaut, boxes, 24)
        assert np.all(crops == np.float32(-127.5 * 0.0078125))
    # Half outside: 1-based columns -23..0 are zero-fill, columns 1..24 are the image's first 24.
    half = _core.crop_windows(astronaut, np.array([[-23, 1, 24, 48]], np.float32), 48)[0]
    assert np.all(half[:, :24] == np.float32(-127.5 * 0.0078125))
    inside = (astronaut[:48, :24].astype(np.float32) - 127.5) * 0.0078125
    same(np.ascontiguousarray(half[:, 24:]), inside)


# --- windows, NMS, regression, squaring ---------------------------------------------------


@given(
    st.tuples(st.integers(0, 12), st.integers(0, 40)).flatmap(
        lambda hw: st.tuples(
            hnp.arrays(np.float32, hw, elements=st.floats(0, 1, width=32)),
            hnp.arrays(np.float32, (4,) + hw, elements=st.floats(-1, 1, width=32)),
        )
    ),
    st.floats(0.01, 3.0),
    st.floats(0, 1),
)
def test_generate_windows_match_reference(maps, scale, threshold):
    scores, reg = maps
    got = _core.generate_windows(scores, reg, scale, threshold)
    want = _reference.generate_windows(scores, reg, scale, threshold)
    for g, w_ in zip(got, want):
        same(g, w_)
    assert np.all(got[1] >= np.float32(threshold))


def test_generate_windows_finds_rare_cells_on_wide_maps():
    """The core tests cells 16 at a time and skips blocks that none passes: single passing cells
    at block edges, in the last partial block and beside NaN scores are all found."""
    rng = np.random.default_rng(5)
    scores = rng.uniform(0, 0.5, (6, 150)).astype(np.float32)
    for y, x in [(0, 0), (0, 15), (1, 16), (2, 31), (3, 144), (4, 149), (5, 77)]:
        scores[y, x] = 0.61
    scores[5, 70:74] = np.nan
    reg = rng.uniform(-1, 1, (4, 6, 150)).astype(np.float32)
    got = _core.generate_windows(scores, reg, 0.3, 0.6)
    assert got[0].shape == (7, 4)
    for g, w_ in zip(got, _reference.generate_windows(scores, reg, 0.3, 0.6)):
        same(g, w_)


def test_generate_windows_reads_offsets_in_any_layout():
    """P-Net's box offsets arrive as a channels-last view; the core reads every layout where it
    lies (reversed, strided, unaligned ones too) and gives the contiguous array's windows."""
    rng = np.random.default_rng(8)
    scores = rng.uniform(0, 1, (9, 40)).astype(np.float32)
    hwc = rng.uniform(-1, 1, (9, 40, 6)).astype(np.float32)
    raw = np.zeros(hwc.nbytes + 2, np.uint8)
    unaligned = np.ndarray(hwc.shape, np.float32, buffer=raw, offset=1)  # copied by the core
    unaligned[...] = hwc
    odd = np.ndarray((4, 9, 40), np.float32, buffer=np.zeros(8000, np.uint8), strides=(5, 880, 22))
    odd[...] = hwc.transpose(2, 0, 1)[2:]
    wide = rng.uniform(-1, 1, (8, 9, 80)).astype(np.float32)
    views = {
        "channels-last": hwc.transpose(2, 0, 1)[2:],
        "reversed": np.ascontiguousarray(hwc.transpose(2, 0, 1)[2:][::-1])[::-1],
        "every other column": wide[::2, :, ::2],
        "unaligned": unaligned.transpose(2, 0, 1)[2:],
        "strides of part elements": odd,
    }
    for name, reg in views.items():
        assert not reg.flags.c_contiguous, name
        want = _reference.generate_windows(scores, np.ascontiguousarray(reg), 0.4, 0.5)
        assert len(want[0]) > 50
        for g, w_ in zip(_core.generate_windows(scores, reg, 0.4, 0.5), want):
            same(g, w_)


def test_generate_windows_of_bands_are_the_whole_maps():
    """A map cut into bands of rows, each band's windows placed by its first row, gives the
    whole map's windows in the same order (the detector runs P-Net's large levels in bands);
    a first row below 0 or not an integer is refused by both the core and the twin."""
    rng = np.random.default_rng(11)
    scores = rng.uniform(0, 1, (40, 30)).astype(np.float32)
    reg = rng.uniform(-1, 1, (4, 40, 30)).astype(np.float32)
    for impl in (_core, _reference):
        whole = impl.generate_windows(scores, reg, 0.37, 0.5)
        assert len(whole[0]) > 100
        parts = [impl.generate_windows(scores[a : a + 13], reg[:, a : a + 13], 0.37, 0.5, first_row=a)
                 for a in range(0, 40, 13)]
        for got, want in zip(zip(*parts), whole):
            same(np.concatenate(got), want)
        with pytest.raises(ValueError):
            impl.generate_windows(scores, reg, 0.37, 0.5, first_row=-1)
        with pytest.raises(TypeError):
            impl.generate_windows(scores, reg, 0.37, 0.5, first_row=1.5)
    for got, want in zip(_core.generate_windows(scores[7:], reg[:, 7:], 0.37, 0.5, first_row=7),
                         _reference.generate_windows(scores[7:], reg[:, 7:], 0.37, 0.5, first_row=7)):
        same(got, want)


def test_generate_windows_maps_cells_to_matlab_windows():
    scores = np.zeros((3, 4), np.float32)
    scores[2, 1] = 0.9
    reg = np.arange(48, dtype=np.float32).reshape(4, 3, 4)
    boxes, s, r = _core.generate_windows(scores, reg, 0.5, 0.6)
    # cell (x=1, y=2): x1 = fix(3 / 0.5), y1 = fix(5 / 0.5), x2 = fix(14 / 0.5), y2 = fix(16 / 0.5)
    same(boxes, np.array([[6, 10, 28, 32]], np.float32))
    same(s, np.array([0.9], np.float32))
    same(r, reg[:, 2, 1][None])
    assert _core.generate_windows(scores, reg, 0.5, 0.95)[0].shape == (0, 4)


@given(sorted_boxes(60), st.data(), st.floats(0, 1), st.sampled_from(["union", "min"]))
def test_nms_matches_reference(boxes, data, threshold, mode):
    n = len(boxes)
    # Few distinct values so that ties are common.
    scores = data.draw(hnp.arrays(np.float32, (n,), elements=st.sampled_from([0.1, 0.5, 0.9])))
    same(_core.nms(boxes, scores, threshold, mode), _reference.nms(boxes, scores, threshold, mode))


@given(box_arrays(coords, 30), st.floats(0, 1), st.sampled_from(["union", "min"]))
def test_nms_matches_reference_on_unordered_and_degenerate_boxes(boxes, threshold, mode):
    scores = np.linspace(0, 1, len(boxes), dtype=np.float32)[::-1].copy()
    same(_core.nms(boxes, scores, threshold, mode), _reference.nms(boxes, scores, threshold, mode))


def nms_sets(seed):
    """Box sets that exercise the grid the core's NMS uses to skip boxes that cannot intersect:
    P-Net's dense windows of one level (every cell of a 60 x 80 map, as at threshold 0), windows
    of several levels together (sizes 12 to 170), boxes spread over +-9e8 with tiny ones among
    them, and degenerate and unordered boxes."""
    rng = np.random.default_rng(seed)
    scores = rng.random((60, 80), dtype=np.float32)
    reg = np.zeros((4, 60, 80), np.float32)
    dense = _core.generate_windows(scores, reg, 0.35, 0.0)[0]
    levels = np.concatenate([_core.generate_windows(scores[:30, :40], reg[:, :30, :40], s, 0.0)[0]
                             for s in (0.6, 0.3, 0.15, 0.07)])
    xy = rng.uniform(-9e8, 4e8, (400, 2)).astype(np.float32)
    wh = np.where(rng.random((400, 1)) < 0.5, rng.uniform(0, 3, (400, 2)), rng.uniform(0, 5e8, (400, 2)))
    spread = np.concatenate([xy, xy + wh.astype(np.float32)], axis=1)
    odd = rng.uniform(-20, 60, (500, 4)).astype(np.float32)  # x2 < x1 in about half of them
    return [dense, levels, spread, odd]


@pytest.mark.parametrize("seed", [0, 1])
def test_nms_on_dense_and_spread_sets_matches_reference(seed):
    rng = np.random.default_rng(seed + 10)
    for boxes in nms_sets(seed):
        scores = rng.choice(np.float32([0.2, 0.5, 0.7, 0.9]), len(boxes)) if seed else rng.random(len(boxes), np.float32)
        for threshold in (0.0, 0.3, 0.5, 0.7, 1.0):
            for mode in ("union", "min"):
                same(_core.nms(boxes, scores, threshold, mode), _reference.nms(boxes, scores, threshold, mode))


def test_nms_at_the_area_ratio_that_bounds_union_overlaps():
    """A box inside another overlaps it by exactly the ratio of their areas, the most two boxes
    of those areas can overlap (the core skips the boxes whose areas are too far apart to reach
    the threshold): at thresholds just below, at and just above that ratio, for sizes in one
    and in different size classes (sides 2^k to 2^(k+1) - 1), either box scored first, both
    backends keep what the definition says."""
    cases = 0
    for inner, outer in ((15, 16), (15, 17), (16, 17), (30, 33), (31, 32), (12, 23), (12, 24), (7, 9), (100, 141)):
        boxes = np.array([[0, 0, outer - 1, outer - 1], [0, 0, inner - 1, inner - 1]], np.float32)
        ratio = np.float32(inner * inner) / np.float32(outer * outer)
        for threshold in (np.nextafter(ratio, np.float32(0)), ratio, np.nextafter(ratio, np.float32(1))):
            for first in (0, 1):
                scores = np.array([0.9, 0.5] if first == 0 else [0.5, 0.9], np.float32)
                want = np.array([first], np.int64) if ratio > threshold else np.array([first, 1 - first], np.int64)
                for backend in (_core, _reference):
                    same(backend.nms(boxes, scores, float(threshold), "union"), want)
                cases += 1
    assert cases == 9 * 3 * 2


def test_nms_suppresses_by_overlap_with_plus_one_areas():
    boxes = np.array([[0, 0, 9, 9], [1, 0, 10, 9], [20, 20, 29, 29], [0, 0, 4, 4]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.95], np.float32)
    for backend in (_core, _reference):
        # IoU(0, 1) = 90 / 110 > 0.5; box 3 lies inside box 0: IoU 25 / 100, min-overlap 1;
        # box 1 covers 20 of box 3's 25 pixels: min-overlap 0.8.
        same(backend.nms(boxes, scores, 0.5, "union"), np.array([3, 0, 2], np.int64))
        same(backend.nms(boxes, scores, 0.7, "min"), np.array([3, 2], np.int64))
        same(backend.nms(boxes, scores, 0.85, "min"), np.array([3, 1, 2], np.int64))
        same(backend.nms(boxes[:0], scores[:0], 0.5, "union"), np.zeros(0, np.int64))


def test_nms_breaks_ties_by_index():
    boxes = np.array([[0, 0, 9, 9]] * 3, np.float32)
    scores = np.full(3, 0.5, np.float32)
    for backend in (_core, _reference):
        same(backend.nms(boxes, scores, 0.5, "union"), np.array([0], np.int64))
        same(backend.nms(boxes, scores, 1.0, "union"), np.array([0, 1, 2], np.int64))


@given(box_arrays(coords, 30), st.data(), st.booleans())
def test_calibrate_matches_reference(boxes, data, plus_one):
    reg = data.draw(hnp.arrays(np.float32, boxes.shape, elements=st.floats(-1, 1, width=32)))
    same(_core.calibrate(boxes, reg, plus_one), _reference.calibrate(boxes, reg, plus_one))


def test_calibrate_uses_both_width_conventions():
    boxes = np.array([[10, 20, 19, 39]], np.float32)
    reg = np.array([[0.1, 0.1, -0.1, 0.5]], np.float32)
    same(_core.calibrate(boxes, reg, False), np.array([[10.9, 21.9, 18.1, 48.5]], np.float32))
    same(_core.calibrate(boxes, reg, True), np.array([[11.0, 22.0, 18.0, 49.0]], np.float32))


@given(box_arrays(coords, 30))
def test_square_matches_reference(boxes):
    got = _core.square(boxes)
    same(got, _reference.square(boxes))
    assert np.all(got == np.trunc(got))


def test_square_keeps_the_centre_and_truncates():
    got = _core.square(np.array([[10, 20, 30, 60], [-5.5, 0, 4.5, 3]], np.float32))
    same(got, np.array([[0, 20, 40, 60], [-5, -3, 4, 6]], np.float32))


# --- the boundary --------------------------------------------------------------------------


def read_only(n):
    a = np.zeros(n, np.float32)
    a.flags.writeable = False
    return a


BAD_CALLS = [
    ("nms", lambda m: m.nms([[0, 0, 1, 1]], np.ones(1, np.float32), 0.5, "union"), TypeError),
    ("nms", lambda m: m.nms(np.zeros((2, 4), np.float64), np.ones(2, np.float32), 0.5), TypeError),
    ("nms", lambda m: m.nms(np.zeros((2, 3), np.float32), np.ones(2, np.float32), 0.5), ValueError),
    ("nms", lambda m: m.nms(np.zeros((2, 4), np.float32), np.ones(3, np.float32), 0.5), ValueError),
    ("nms", lambda m: m.nms(np.zeros((2, 4), np.float32), np.ones(2, np.float32), 0.5, "iou"), ValueError),
    ("nms", lambda m: m.nms(np.full((1, 4), np.nan, np.float32), np.ones(1, np.float32), 0.5), ValueError),
    ("nms", lambda m: m.nms(np.zeros((1, 4), np.float32), np.full(1, np.nan, np.float32), 0.5), ValueError),
    ("square", lambda m: m.square(np.zeros((4,), np.float32)), ValueError),
    ("square", lambda m: m.square(np.full((1, 4), np.inf, np.float32)), ValueError),
    ("calibrate", lambda m: m.calibrate(np.zeros((2, 4), np.float32), np.zeros((1, 4), np.float32), True), ValueError),
    ("calibrate", lambda m: m.calibrate(np.zeros((2, 4), np.float32), np.zeros((2, 4), np.int32), True), TypeError),
    ("crop_windows", lambda m: m.crop_windows(np.zeros((4, 4), np.uint8), np.zeros((1, 4), np.float32), 24), ValueError),
    ("crop_windows", lambda m: m.crop_windows(np.zeros((4, 4, 3), np.float32), np.zeros((1, 4), np.float32), 24), TypeError),
    ("crop_windows", lambda m: m.crop_windows(np.zeros((0, 4, 3), np.uint8), np.zeros((1, 4), np.float32), 24), ValueError),
    ("crop_windows", lambda m: m.crop_windows(np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4), np.float32), 0), ValueError),
    ("crop_windows", lambda m: m.crop_windows(np.zeros((4, 4, 3), np.uint8), np.full((1, 4), 1e12, np.float32), 24), ValueError),
    ("pyramid", lambda m: m.pyramid(None, [0.5]), TypeError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.5], 0), ValueError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.5], 1025), ValueError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.5], 2.0), TypeError),
    ("crop_windows", lambda m: m.crop_windows(np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4), np.float32), 24, -1), ValueError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.0]), ValueError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [float("nan")]), ValueError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.5], 1, np.zeros(11, np.float32)), ValueError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.5], 1, np.zeros(16, np.float64)), TypeError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.5], 1, np.zeros((4, 4), np.float32)), ValueError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.5], 1, np.zeros(32, np.float32)[::2]), ValueError),
    ("pyramid", lambda m: m.pyramid(np.zeros((4, 4, 3), np.uint8), [0.5], 1, [0.0] * 16), TypeError),
    ("crop_windows", lambda m: m.crop_windows(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 4), np.float32), 4, 1, np.zeros(95, np.float32)), ValueError),
    ("crop_windows", lambda m: m.crop_windows(np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4), np.float32), 4, 1, read_only(48)), ValueError),
    ("pyramid_values", lambda m: m.pyramid_values(0, 4, [0.5]), ValueError),
    ("pyramid_values", lambda m: m.pyramid_values(4, 4, [-0.5]), ValueError),
    ("pyramid_scales", lambda m: m.pyramid_scales(10, 10, 0.0, 0.7), ValueError),
    ("pyramid_scales", lambda m: m.pyramid_scales(10, 10, 20.0, 1.0), ValueError),
    ("generate_windows", lambda m: m.generate_windows(np.zeros((3, 3), np.float32), np.zeros((4, 3, 2), np.float32), 1.0, 0.5), ValueError),
    ("generate_windows", lambda m: m.generate_windows(np.zeros((3, 3), np.float32), np.zeros((4, 3, 3), np.float32), -1.0, 0.5), ValueError),
]


@pytest.mark.parametrize("name,call,exc", BAD_CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_arguments_raise_the_same_exception_in_both(name, call, exc):
    for backend in (_core, _reference):
        with pytest.raises(exc):
            call(backend)


@given(images, st.lists(st.floats(0.05, 3.0), min_size=0, max_size=4), st.integers(0, 40))
def test_pyramid_into_a_buffer_is_views_of_it_with_the_same_numbers(img, scales, extra):
    """`out`: the levels are written into the caller's buffer, each on a 64-byte step from its
    start, as views of it; the numbers are those of new arrays, in both backends."""
    want = _reference.pyramid(img, scales)
    need = _core.pyramid_values(img.shape[0], img.shape[1], scales)
    assert need == _reference.pyramid_values(img.shape[0], img.shape[1], scales)
    assert need == sum(-(-w_.size // 16) * 16 for w_ in want)
    for m in (_core, _reference):
        buf = np.full(need + extra, np.nan, np.float32)
        got = m.pyramid(img, scales, 1, out=buf)
        start = 0
        for g, w_ in zip(got, want):
            same(g, w_)
            assert g.flags.c_contiguous and np.shares_memory(g, buf)
            assert g.ctypes.data == buf.ctypes.data + 4 * start
            start += -(-g.size // 16) * 16
        assert np.isnan(buf[start:]).all()  # nothing written past the last level


@given(images, box_arrays(integral, 12), st.sampled_from([1, 5, 24]))
def test_crops_into_a_buffer_fill_its_start_with_the_same_numbers(img, boxes, size):
    want = _reference.crop_windows(img, boxes, size)
    for m in (_core, _reference):
        buf = np.full(want.size + 7, np.nan, np.float32)
        got = m.crop_windows(img, boxes, size, 1, out=buf)
        same(got, want)
        assert got.ctypes.data == buf.ctypes.data and (got.size == 0 or np.shares_memory(got, buf))
        assert np.isnan(buf[want.size :]).all()


def test_a_buffer_over_the_image_is_refused(astronaut):
    """The output may not be written over the image it is made from."""
    img = np.ascontiguousarray(astronaut[:64, :64])
    over = img.reshape(-1).view(np.float32)
    scales = [0.25]
    for m in (_core, _reference):
        with pytest.raises(ValueError, match="share memory with the image"):
            m.pyramid(img, scales, 1, out=over)
        with pytest.raises(ValueError, match="share memory with the image"):
            m.crop_windows(img, np.array([[1, 1, 8, 8]], np.float32), 4, 1, out=over)


def test_non_contiguous_views_are_accepted(astronaut):
    view = astronaut[::2, ::3]
    assert not view.flags.c_contiguous
    boxes = np.array([[10, 10, 60, 60], [0, 0, 30, 40]], np.float32)
    same(_core.crop_windows(view, boxes, 24), _reference.crop_windows(view, boxes, 24))
    strided = np.asfortranarray(boxes)
    same(_core.square(strided), _reference.square(boxes))
