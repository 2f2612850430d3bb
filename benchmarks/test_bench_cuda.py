"""The CUDA side of the suites (skipped where torch sees no GPU): `detect` on the three frame
sizes and on WIDER photos, eight frames as one batch against one at a time, and each network.

Each benchmark checks its result against the CPU: the GPU's kernels round differently, so the
check is agreement (the faces found again in place, networks within 1e-4), not bit equality.
Every GPU benchmark synchronises before its timed call returns. Their extra_info "threads" is
"cuda", so the latency guard divides them by the GPU calibration below, measured in the same run
(not by the CPU calibration that conftest.py times beside every other benchmark).
"""

import numpy as np
import pytest
import torch
from bench_support import SIZES, nchw, stage_inputs, time_frames

from mtcnn_fast import FaceDetector, _core
from mtcnn_fast.detector import ONET_SIZE, RNET_SIZE
from mtcnn_fast.metrics import iou_matrix

DEVICE = "cuda"

pytestmark = [
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)"),
    pytest.mark.own_yardstick,  # the GPU calibration below, not the CPU one conftest.py times beside
]


def synchronize():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(scope="module")
def gpu():
    return FaceDetector(device=DEVICE)


def agree(cpu_faces, gpu_faces) -> None:
    """Nearly every CPU face is found again on the GPU in place (IoU >= 0.9, landmarks within
    2 px), and the GPU finds nearly no other faces."""
    cpu_n = sum(len(c) for c in cpu_faces)
    gpu_n = sum(len(g) for g in gpu_faces)
    matched = 0
    for c, g in zip(cpu_faces, gpu_faces):
        if not len(c) or not len(g):
            continue
        iou = iou_matrix(c.boxes, g.boxes)
        j = iou.argmax(axis=1)
        close = np.abs(c.landmarks - g.landmarks[j]).max(axis=(1, 2)) <= 2.0
        matched += int(((iou.max(axis=1) >= 0.9) & close).sum())
    assert cpu_n > 0
    assert matched >= 0.95 * cpu_n and gpu_n <= 1.05 * cpu_n, (matched, cpu_n, gpu_n)


def test_calibration_cuda(benchmark):
    """The guard's yardstick for the GPU rows: a fixed convolution that involves none of
    mtcnn-fast's code."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 192, 192, generator=gen).to(DEVICE)
    w = torch.randn(32, 16, 3, 3, generator=gen).to(DEVICE)
    benchmark.group = "calibration"
    benchmark.extra_info["threads"] = DEVICE

    def work():
        with torch.inference_mode():
            y = torch.nn.functional.conv2d(x, w)
        synchronize()
        return y

    want = work().cpu()
    assert torch.allclose(benchmark(work).cpu(), want)


@pytest.mark.parametrize("size", SIZES)
def test_detect_cuda(benchmark, gpu, detector, frame_cache, size):
    frames = frame_cache(size)
    benchmark.group = f"cuda detect {size}"
    benchmark.extra_info["threads"] = DEVICE
    got = benchmark(lambda: [gpu.detect(f) for f in frames])  # numpy results: synchronised
    agree([detector.detect(f) for f in frames], got)


@pytest.mark.parametrize("size", ["640x480", "wider"])
@pytest.mark.parametrize("mode", ["alone", "batch"])
def test_batch_throughput_cuda(benchmark, gpu, detector, batch_frames, size, mode):
    """Eight frames as one list (R-Net and O-Net passes shared) against one frame at a time."""
    frames = batch_frames[size]
    benchmark.group = f"cuda batch {size}"
    benchmark.extra_info["threads"] = DEVICE
    got = time_frames(benchmark, gpu, frames, mode)
    agree([detector.detect(f) for f in frames], got)


def stage_batches(detector, img, stage):
    """What a stage receives for this frame, as the core writes it: (N, H, W, 3) float32 arrays
    (one per pyramid level for P-Net, the windows' crops for R-Net and O-Net)."""
    scales, proposals, refined = stage_inputs(detector, img)
    if stage == "pnet":
        return [level[None] for level in _core.pyramid(img, scales, torch.get_num_threads())]
    if stage == "rnet":
        return [_core.crop_windows(img, proposals, RNET_SIZE, torch.get_num_threads())]
    return [_core.crop_windows(img, refined, ONET_SIZE, torch.get_num_threads())]


@pytest.mark.parametrize("stage", ["pnet", "rnet", "onet"])
def test_network_cuda(benchmark, gpu, detector, frame_cache, stage):
    img = frame_cache("1280x720" if stage == "pnet" else "wider")[0]
    batches = stage_batches(detector, img, stage)
    cpu_inputs = [nchw(b) for b in batches]
    inputs = [x.to(DEVICE) for x in cpu_inputs]
    net = getattr(gpu, stage)
    benchmark.group = f"cuda stage {stage} ({sum(len(b) for b in batches)} inputs)"
    benchmark.extra_info["threads"] = DEVICE

    def run():
        with torch.inference_mode():
            out = [net(x) for x in inputs]
        synchronize()
        return out

    got = benchmark(run)
    with torch.inference_mode():
        want = [getattr(detector, stage)(x) for x in cpu_inputs]
    for outs, wants in zip(got, want):
        for a, b in zip(outs, wants):
            assert torch.allclose(a.cpu(), b, atol=1e-4)
