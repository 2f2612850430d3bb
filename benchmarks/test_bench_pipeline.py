"""Latency of each stage and of the whole detector, at 1 and 2 threads, on frames of 640x480,
1280x720 and 1920x1080 cut from real photos, on WIDER FACE photos at their own size, and on the
golden multi-face frames (tests/golden).

Every benchmark also checks its result (against the NumPy reference, or against the detector's
own answer computed outside the timed call), so a speed-up that changes detections fails here.
The golden frames' timed detections are also checked against the fixture recorded in the
repository (within its tolerance), so a change to the detections fails even where it changes
the detector's answer outside the timed call in the same way.
Each stage's group carries a baseline measured in the same run (the NumPy twin of the op, or the
eager network), so the report shows ratios that hold on a noisy machine.
"""

import numpy as np
import pytest
import torch
from bench_support import (GOLDEN, GOLDEN_PREFIX, SIZES, check_golden, nchw, same_detections, stage_inputs,
                           time_frames)

from mtcnn_fast import FaceDetector, _core, _reference
from mtcnn_fast.detector import CHUNK_ROWS, ONET_SIZE, RNET_SIZE, cpu_has_bf16
from mtcnn_fast.metrics import iou_matrix


@pytest.fixture(scope="module")
def eager():
    return FaceDetector(device="cpu", jit=False)


# --- end to end -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES + GOLDEN)
def test_detect(benchmark, detector, frame_cache, threads, size):
    frames = frame_cache(size)
    expected = [detector.detect(f) for f in frames]
    benchmark.group = f"detect {size}"
    benchmark.extra_info["threads"] = threads
    got = benchmark(lambda: [detector.detect(f) for f in frames])
    assert all(same_detections(a, b) for a, b in zip(got, expected))
    assert sum(len(e) for e in expected) > 0
    if size.startswith(GOLDEN_PREFIX):
        check_golden([size], got)


@pytest.mark.parametrize("size", ["640x480", "wider", "golden"])
@pytest.mark.parametrize("mode", ["alone", "batch"])
def test_batch_throughput(benchmark, detector, batch_frames, threads, size, mode):
    """Eight frames (the four golden ones for "golden") as one list (R-Net and O-Net shared
    across frames) against one frame at a time; both give the same detections, bit for bit,
    and the golden frames those of the fixture."""
    frames = batch_frames[size]
    expected = [detector.detect(f) for f in frames]
    benchmark.group = f"batch {size} {threads}t"
    benchmark.extra_info["threads"] = threads
    got = time_frames(benchmark, detector, frames, mode)
    assert all(same_detections(a, b) for a, b in zip(got, expected))
    if size == "golden":
        check_golden(GOLDEN, got)


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16 (AVX-512 BF16 / AMX)")
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_precision(benchmark, detector, frame_cache, threads, precision):
    """bfloat16 against float32 on WIDER photos. bfloat16 moves scores and boxes a little, so
    the check is looser than bit equality: nearly every float32 face is found again, in place."""
    frames = frame_cache("wider")
    det = detector if precision == "float32" else FaceDetector(device="cpu", precision=precision)
    benchmark.group = f"precision wider {threads}t"
    benchmark.extra_info["threads"] = threads
    got = benchmark(lambda: [det.detect(f) for f in frames])
    want = [detector.detect(f) for f in frames]
    found = sum(int((iou_matrix(w.boxes, g.boxes).max(axis=1, initial=0) >= 0.8).sum())
                for w, g in zip(want, got))
    assert found >= 0.9 * sum(len(w) for w in want)


# --- stages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_pyramid(benchmark, frame_cache, detector, backend):
    img = frame_cache("1280x720")[0]
    scales = _core.pyramid_scales(*img.shape[:2], 20.0, 0.709)
    ops = _core if backend == "cpp" else _reference
    benchmark.group = "stage pyramid 1280x720"
    levels = benchmark(ops.pyramid, img, scales, torch.get_num_threads())
    for got, want in zip(levels, _reference.pyramid(img, scales)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("mode", ["jit", "eager"])
def test_pnet(benchmark, frame_cache, detector, eager, threads, mode):
    img = frame_cache("1280x720")[0]
    scales = _core.pyramid_scales(*img.shape[:2], 20.0, 0.709)
    levels = [nchw(l[None]) for l in _core.pyramid(img, scales)]
    net = (detector if mode == "jit" else eager).pnet
    benchmark.group = f"stage pnet 1280x720 {threads}t"

    def run():
        with torch.inference_mode():
            return [net(level) for level in levels]

    got = benchmark(run)
    with torch.inference_mode():
        want = [eager.pnet(level) for level in levels]
    for (p, r), (pw, rw) in zip(got, want):
        assert torch.allclose(p, pw, atol=1e-5) and torch.allclose(r, rw, atol=1e-5)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_nms(benchmark, frame_cache, detector, backend):
    img = frame_cache("1280x720")[0]
    scales = _core.pyramid_scales(*img.shape[:2], 20.0, 0.709)
    windows = []
    for s, level in zip(scales, _core.pyramid(img, scales)):
        prob, reg = detector._run(detector.pnet, level[None])
        windows.append(_core.generate_windows(prob[0], reg[0], s, 0.6))
    boxes = np.concatenate([w[0] for w in windows])
    scores = np.concatenate([w[1] for w in windows])
    ops = _core if backend == "cpp" else _reference
    benchmark.group = f"stage nms ({len(boxes)} windows)"
    keep = benchmark(ops.nms, boxes, scores, 0.5, "union")
    assert np.array_equal(keep, _reference.nms(boxes, scores, 0.5, "union"))


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_crops(benchmark, frame_cache, detector, backend):
    img = frame_cache("wider")[0]
    _, proposals, _ = stage_inputs(detector, img)
    ops = _core if backend == "cpp" else _reference
    benchmark.group = f"stage crops 24x24 ({len(proposals)} windows)"
    crops = benchmark(ops.crop_windows, img, proposals, RNET_SIZE, torch.get_num_threads())
    assert np.array_equal(crops, _reference.crop_windows(img, proposals, RNET_SIZE))


def in_chunks(net, batch, rows):
    """net over batch in chunks of `rows` windows, as the detector runs R-Net and O-Net on the
    CPU; the outputs joined."""
    with torch.inference_mode():
        parts = [net(batch[i : i + rows]) for i in range(0, len(batch), rows)]
    return [torch.cat(col) for col in zip(*parts)]


@pytest.mark.parametrize("mode", ["jit", "eager"])
def test_rnet_chunks(benchmark, frame_cache, detector, eager, threads, mode):
    """R-Net on the first WIDER photo's windows in the detector's chunks. (This benchmark used to
    time one call on all 874 of them: 47 MB of activations, a call the detector never makes, and
    the latency guard's noisiest row.)"""
    img = frame_cache("wider")[0]
    _, proposals, _ = stage_inputs(detector, img)
    batch = nchw(_core.crop_windows(img, proposals, RNET_SIZE))
    rows = CHUNK_ROWS[RNET_SIZE]
    net = (detector if mode == "jit" else eager).rnet
    benchmark.group = f"stage rnet ({len(proposals)} windows, chunks of {rows}) {threads}t"
    prob, reg = benchmark(in_chunks, net, batch, rows)
    with torch.inference_mode():
        pw, rw = eager.rnet(batch)
    assert torch.allclose(prob, pw, atol=1e-5) and torch.allclose(reg, rw, atol=1e-5)


@pytest.mark.parametrize("mode", ["jit", "eager"])
def test_onet_chunks(benchmark, frame_cache, detector, eager, threads, mode):
    """O-Net on the first WIDER photo's refined windows in the detector's chunks."""
    img = frame_cache("wider")[0]
    _, _, refined = stage_inputs(detector, img)
    batch = nchw(_core.crop_windows(img, refined, ONET_SIZE))
    rows = CHUNK_ROWS[ONET_SIZE]
    net = (detector if mode == "jit" else eager).onet
    benchmark.group = f"stage onet ({len(refined)} windows, chunks of {rows}) {threads}t"
    out = benchmark(in_chunks, net, batch, rows)
    with torch.inference_mode():
        want = eager.onet(batch)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(out, want))
