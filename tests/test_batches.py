"""Batches share R-Net and O-Net: one forward pass per stage over the windows of every frame, and
each frame's result is exactly what it gives alone, at 1 and at 2 threads.

The tests marked `exactness` run again in .ci/run under other kernel dispatch settings
(MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA), so that a fix that holds only for the kernels one
CPU happens to pick fails CI."""

import numpy as np
import pytest
import torch
from support import assert_same, read_rgb

from mtcnn_fast import FaceDetector
from mtcnn_fast import detector as detector_module
from mtcnn_fast.detector import cpu_has_bf16
from mtcnn_fast.metrics import iou_matrix


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _frames(astronaut):
    """Real photos of several sizes, with many faces, one face and none."""
    tiled = np.tile(astronaut, (2, 3, 1))
    return [
        np.ascontiguousarray(tiled[:700, :1000]),
        astronaut,
        np.ascontiguousarray(astronaut[::-1]),  # upside down: windows, but fewer faces
        np.ascontiguousarray(astronaut[300:, 280:]),  # no face
        np.ascontiguousarray(tiled[100:580, 60:700]),
    ]


@pytest.mark.exactness
def test_network_rows_do_not_depend_on_the_batch_around_them(detector, astronaut, threads):
    """What batches rest on: a window's R-Net and O-Net outputs are the same bits whatever batch
    (size, position, chunk) it runs in, a single row included, with no padding."""
    img = np.tile(astronaut, (2, 2, 1))
    boxes = detector.propose(img)
    assert len(boxes) > 64
    for net, size in [(detector.rnet, 24), (detector.onet, 48)]:
        crops = detector._ops.crop_windows(img, boxes[:64], size)
        whole = detector._run(net, crops, 64)
        for n in (1, 2, 3, 4, 5, 7, 8, 11, 13, 16, 17, 31, 32, 33):
            for start in (0, 3, 17, 64 - n):
                part = detector._run(net, np.ascontiguousarray(crops[start : start + n]), 64)
                for a, b in zip(whole, part):
                    assert np.array_equal(a[start : start + n], b), (size, n, start)
        for chunk in (1, 5, 16):  # the same windows in chunks of other sizes
            for a, b in zip(whole, detector._run(net, crops, chunk)):
                assert np.array_equal(a, b), (size, chunk)
        # Chunks run the first blocks and one call the rest over all the chunks' windows: the
        # same bits as the whole network in one pass.
        for a, b in zip(whole, detector._run(net, crops)):
            assert np.array_equal(a, b), size


def test_networks_take_no_windows(detector):
    """No windows give empty outputs of the right shapes, as torch's own layers do (the fully
    connected layers run as a convolution over a map of one pixel per window, and a map of no
    pixels is not one)."""
    for net, size, widths in [(detector.rnet, 24, (4,)), (detector.onet, 48, (4, 10))]:
        none = torch.zeros(0, 3, size, size).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = net(none)
        assert out[0].shape == (0,)
        assert [tuple(o.shape) for o in out[1:]] == [(0, w) for w in widths]
        # The detector's chunked path (first blocks in chunks, the rest once) as well.
        chunked = detector._run(net, np.zeros((0, size, size, 3), np.float32), 64)
        assert [o.shape for o in chunked] == [(0,)] + [(0, w) for w in widths]


@pytest.mark.exactness
def test_batch_gives_each_frame_its_own_result(detector, astronaut, threads, monkeypatch):
    frames = _frames(astronaut)
    counts = [len(detector.propose(f)) for f in frames]
    assert len(set(c % 8 for c in counts)) > 1, counts  # frames of many window counts
    alone = [detector.detect(f) for f in frames]
    assert [len(a) for a in alone][1] == 1 and len(alone[0]) >= 4 and len(alone[3]) == 0
    calls = []
    run = detector_module.FaceDetector._run

    def counting(self, net, batch, chunk_rows=0):
        calls.append((net is self.rnet, net is self.onet, len(batch)))
        return run(self, net, batch, chunk_rows)

    monkeypatch.setattr(detector_module.FaceDetector, "_run", counting)
    batch = detector.detect(frames)
    assert len(batch) == len(frames)
    for got, want in zip(batch, alone):
        assert_same(got, want)
    # one R-Net and one O-Net pass for the whole batch
    assert sum(r for r, _, _ in calls) == 1 and sum(o for _, o, _ in calls) == 1


@pytest.mark.exactness
def test_batches_larger_than_a_group_and_chunk_sizes(astronaut, monkeypatch):
    det = FaceDetector(device="cpu")
    frames = _frames(astronaut) * 2
    alone = [det.detect(f) for f in frames]
    monkeypatch.setattr(detector_module, "BATCH_FRAMES", 3)
    monkeypatch.setattr(detector_module, "CHUNK_ROWS", {24: 8, 48: 4})
    for got, want in zip(det.detect(frames), alone):
        assert_same(got, want)
    # Crops cut a few chunks at a time (a flood's memory bound), across frames: the same.
    monkeypatch.setattr(detector_module, "CROP_BYTES", 3 * 8 * 24 * 24 * 12)
    for got, want in zip(det.detect(frames), alone):
        assert_same(got, want)


@pytest.mark.exactness
def test_batch_on_wider_photos_matches_frames_alone(detector, wider_val):
    from support import WIDER_VAL

    frames = [read_rgb(WIDER_VAL / r["image"]) for r in wider_val[::60]]
    alone = [detector.detect(f) for f in frames]
    for got, want in zip(detector.detect(frames), alone):
        assert_same(got, want)
    assert sum(len(a) for a in alone) > 20


def test_precision_settings():
    with pytest.raises(ValueError, match="precision must be one of"):
        FaceDetector(device="cpu", precision="int8")
    with pytest.raises(ValueError, match="CUDA only"):
        FaceDetector(device="cpu", precision="float16")
    # Per network: a mapping; unknown networks and names, and other types, are refused.
    with pytest.raises(ValueError, match="unknown network.*'fnet'"):
        FaceDetector(device="cpu", precision={"fnet": "bfloat16"})
    with pytest.raises(ValueError, match="precision must be one of.*'int8'"):
        FaceDetector(device="cpu", precision={"onet": "int8"})
    with pytest.raises(ValueError, match="CUDA only"):
        FaceDetector(device="cpu", precision={"rnet": "float16"})
    with pytest.raises(TypeError, match="precision must be a name"):
        FaceDetector(device="cpu", precision=["float32"])
    # A mapping that gives every network the same name is that name.
    det = FaceDetector(device="cpu", precision={"pnet": "float32", "onet": "float32"})
    assert det.precision == "float32" and "precision='float32'" in repr(det)


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16 (AVX-512 BF16 / AMX)")
def test_one_network_in_bfloat16_leaves_the_others_in_float32(astronaut, detector):
    """precision={"onet": "bfloat16"}: P-Net and R-Net give the float32 detector's windows bit for
    bit; O-Net runs in bfloat16 and moves the final face a little, never the face found."""
    bf = FaceDetector(device="cpu", precision={"onet": "bfloat16"})
    assert bf.precision == {"pnet": "float32", "rnet": "float32", "onet": "bfloat16"}
    assert "'onet': 'bfloat16'" in repr(bf)
    frame = np.tile(astronaut, (1, 2, 1))
    proposals = detector.propose(frame)
    assert np.array_equal(bf.propose(frame), proposals)
    assert np.array_equal(bf.refine(frame, proposals), detector.refine(frame, proposals))
    want, got = detector.detect(frame), bf.detect(frame)
    assert len(got) == len(want) == 2
    # The two copies of the face score alike, so their order may swap: match them by overlap.
    overlap = iou_matrix(want.boxes, got.boxes)
    match = overlap.argmax(axis=1)
    assert sorted(match) == [0, 1] and overlap.max(axis=1).min() > 0.9
    assert not np.array_equal(got.scores[match], want.scores)  # O-Net did run in bfloat16
    assert np.abs(got.landmarks[match] - want.landmarks).max() < 3.0
    assert np.abs(got.scores[match] - want.scores).max() < 0.01
    assert got.boxes.dtype == got.scores.dtype == got.landmarks.dtype == np.float32


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16 (AVX-512 BF16 / AMX)")
def test_bfloat16_on_the_cpu_finds_the_same_face(astronaut, detector):
    bf = FaceDetector(device="cpu", precision="bfloat16")
    want = detector.detect(astronaut)
    got = bf.detect(astronaut)
    assert len(got) == len(want) == 1
    # bfloat16 moves R-Net's boxes by a pixel or so, which can change which of the overlapping
    # O-Net windows wins the final NMS: the box then differs by a few pixels on one edge (4.4 px
    # of 114 here, IoU 0.92) while the landmarks stay within 1 px.
    assert iou_matrix(got.boxes, want.boxes)[0, 0] > 0.9
    assert np.abs(got.landmarks - want.landmarks).max() < 3.0
    assert abs(float(got.scores[0]) - float(want.scores[0])) < 0.01
    assert got.boxes.dtype == np.float32 and "bfloat16" in repr(bf)


class _CutRecorder:
    """The detector's core ops, recording every crop cut: (frame shape, crop size, windows)."""

    def __init__(self, ops):
        self._ops = ops
        self.cuts = []

    def __getattr__(self, name):
        return getattr(self._ops, name)

    def crop_windows(self, img, boxes, size, threads, out=None):
        self.cuts.append((img.shape, size, np.array(boxes)))
        return self._ops.crop_windows(img, boxes, size, threads, out=out)


@pytest.mark.exactness
def test_a_frames_windows_are_cut_in_the_same_groups_alone_and_in_a_batch(astronaut, monkeypatch):
    """Crops are cut a group of windows at a time, and each cut's summed-area table starts where
    the region of its windows does, which enters the crops' last bits. When the groups were
    counted over the whole batch, a frame's groups depended on the frames before it: on a WIDER
    photo with 4,800 R-Net windows (widerface preset) the second frame of a batch moved by 6e-5 px
    against the same frame alone. Each frame's windows are now cut in groups counted from its own
    first window: here groups of 24 R-Net windows, and the second frame's cuts (and detections)
    are the same alone and behind a frame whose window count is not a multiple of 24."""
    frames = _frames(astronaut)
    first, second = frames[0], frames[4]
    monkeypatch.setattr(detector_module, "CHUNK_ROWS", {24: 8, 48: 4})
    monkeypatch.setattr(detector_module, "CROP_BYTES", 3 * 8 * 24 * 24 * 12)
    det = FaceDetector(device="cpu")
    recorder = _CutRecorder(det._ops)
    monkeypatch.setattr(det, "_ops", recorder)

    def cuts_of(shape):
        return [(size, boxes) for s, size, boxes in recorder.cuts if s == shape]

    alone = det.detect(second)
    cuts_alone = cuts_of(second.shape)
    recorder.cuts.clear()
    batch = det.detect([first, second])
    rnet_windows = sum(len(b) for size, b in cuts_of(first.shape) if size == 24)
    assert rnet_windows % 24 and rnet_windows > 24  # the first frame ends inside a group
    assert sum(len(b) for size, b in cuts_alone if size == 24) > 24  # several groups alone
    cuts_batch = cuts_of(second.shape)
    assert len(cuts_batch) == len(cuts_alone)
    for (size_a, a), (size_b, b) in zip(cuts_alone, cuts_batch):
        assert size_a == size_b
        np.testing.assert_array_equal(a, b)
    assert_same(batch[1], alone)


def _pnet_cases(astronaut):
    """Pyramid levels of several shapes: even and odd heights (the last band's pooling rounds
    up), widths that give bands of various heights, a level only a little taller than a band."""
    from mtcnn_fast import _core

    frames = [astronaut, np.ascontiguousarray(np.tile(astronaut, (2, 3, 1))[:701, :1003]),
              np.ascontiguousarray(astronaut[:97, :333])]
    for frame in frames:
        h, w = frame.shape[:2]
        scales = _core.pyramid_scales(h, w, 20.0, 0.709)
        yield from _core.pyramid(frame, scales[:3], 1)


@pytest.mark.exactness
def test_pnet_in_bands_gives_the_whole_levels_numbers(astronaut, monkeypatch):
    """P-Net runs a large level in bands of output rows (its activations stay near
    ACTIVATION_BYTES). Forced here to bands of 16 and 48 rows: at one thread every band boundary
    and the last, shorter band give exactly the numbers of one pass over the whole level (bands
    of 3, 7 or 20 rows changed the last bit of a few face probabilities: see PNET_BAND_ROWS). At
    two threads the box offsets are still exact and a probability moves by at most two units in
    the last place (a whole level's move by one between one and two threads)."""
    det = FaceDetector(device="cpu")
    levels = list(_pnet_cases(astronaut))
    assert max(level.shape[0] for level in levels) > 2 * 48 * 3  # several bands of 48 rows too
    monkeypatch.setattr(detector_module, "ACTIVATION_BYTES", 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():
            whole = [[out[0] for out in det._run(det.pnet, level[None])] for level in levels]
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for rows in (16, 48):
                monkeypatch.setattr(detector_module, "PNET_BAND_ROWS", rows)
                for level, (prob, reg) in zip(levels, whole):
                    bands = det._pnet(level)
                    # ACTIVATION_BYTES of 1: bands of exactly `rows` output rows, in order
                    assert [row for row, _, _ in bands] == list(range(0, len(prob), rows))
                    got = (np.concatenate([p for _, p, _ in bands]),
                           np.concatenate([r for _, _, r in bands], axis=1))
                    assert got[0].shape == prob.shape and got[1].shape == reg.shape
                    np.testing.assert_array_equal(got[1], reg)
                    if threads == 1:
                        np.testing.assert_array_equal(got[0], prob)
                    else:
                        np.testing.assert_array_max_ulp(got[0], prob, maxulp=2)
    finally:
        torch.set_num_threads(before)
