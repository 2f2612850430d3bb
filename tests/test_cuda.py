"""The CUDA path: determinism, agreement with the CPU, flat GPU memory. Skipped without a GPU."""

import numpy as np
import pytest
import torch

from mtcnn_fast import FaceDetector
from mtcnn_fast.metrics import iou_matrix
from support import assert_same

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")


@pytest.fixture(scope="module")
def gpu():
    return FaceDetector(device="cuda")


def test_cuda_results_are_deterministic(gpu, astronaut):
    first = gpu.detect(astronaut)
    assert len(first) == 1
    for _ in range(3):
        assert_same(gpu.detect(astronaut), first)


def test_cuda_agrees_with_cpu(gpu, detector, astronaut):
    """Tolerance: every CPU face matched at IoU >= 0.95, landmarks within 1 px, scores 1e-3."""
    frames = [astronaut, np.ascontiguousarray(np.tile(astronaut, (2, 3, 1)))]
    for frame in frames:
        cpu, cuda = detector.detect(frame), gpu.detect(frame)
        assert len(cuda) == len(cpu)
        iou = iou_matrix(cpu.boxes, cuda.boxes)
        j = iou.argmax(axis=1)
        assert (iou.max(axis=1) >= 0.95).all()
        assert np.abs(cpu.landmarks - cuda.landmarks[j]).max() <= 1.0
        assert np.abs(cpu.scores - cuda.scores[j]).max() <= 1e-3


def test_gpu_memory_stays_flat(gpu, astronaut):
    frames = [np.ascontiguousarray(astronaut[: 120 + 40 * k, : 160 + 40 * k]) for k in range(8)]
    for f in frames:
        gpu.detect(f)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(40):  # 320 detections
        for f in frames:
            gpu.detect(f)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - before < 1 << 20


def test_gpu_memory_stays_flat_on_frames_of_ever_new_sizes(gpu, astronaut):
    """The long-lived service's stream (issue #18): every call a new size. Allocated memory
    returns to where it was, and the caching allocator's reserve stops growing: at frame 300 of
    a stream of sizes 150..700 x 150..900 it holds what it will hold at frame 400 (within 64 MB,
    the growth of a few new block sizes)."""
    import cv2

    photo = np.tile(astronaut, (2, 2, 1))
    rng = np.random.default_rng(0)

    def frame():
        w, h = int(rng.integers(150, 701)), int(rng.integers(150, 901))
        return np.ascontiguousarray(cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA))

    torch.cuda.synchronize()
    allocated = torch.cuda.memory_allocated()
    reserved = []
    for i in range(400):
        gpu.detect(frame())
        if i in (299, 399):
            torch.cuda.synchronize()
            reserved.append(torch.cuda.memory_reserved())
    assert torch.cuda.memory_allocated() - allocated < 1 << 20
    assert reserved[1] - reserved[0] < 64 << 20, reserved


def test_a_missing_cuda_device_index_is_an_error():
    with pytest.raises(ValueError, match="CUDA device"):
        FaceDetector(device=f"cuda:{torch.cuda.device_count()}")


def test_cuda_batch_gives_each_frame_its_own_result(gpu, astronaut):
    frames = [astronaut, np.ascontiguousarray(np.tile(astronaut, (2, 3, 1))[:700, :1000]),
              np.ascontiguousarray(astronaut[300:, 280:])]
    alone = [gpu.detect(f) for f in frames]
    for got, want in zip(gpu.detect(frames), alone):
        assert_same(got, want)


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_cuda_reduced_precision_finds_the_same_face(precision, gpu, astronaut):
    half = FaceDetector(device="cuda", precision=precision)
    want, got = gpu.detect(astronaut), half.detect(astronaut)
    assert len(got) == len(want) == 1
    assert np.abs(got.boxes - want.boxes).max() < 3.0
    assert np.abs(got.landmarks - want.landmarks).max() < 3.0
