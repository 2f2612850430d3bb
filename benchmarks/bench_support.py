"""Helpers shared by the benchmark modules."""

import sys
import time
from pathlib import Path

import numpy as np
import torch

import frames as frame_sets

from mtcnn_fast import _core

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "golden"))
import golden_frames as golden  # noqa: E402

SIZES = list(frame_sets.SIZES) + ["wider"]
# The golden multi-face frames (tests/golden): their detections are checked against the fixture
# recorded in the repository, so a speed-up that changes what is found fails on every machine,
# with or without ../shared.
GOLDEN_PREFIX = "golden-"
GOLDEN = [GOLDEN_PREFIX + name for name in golden.NAMES]


def frames_for(size: str):
    """Two frames of a named size, four WIDER photos at their own size for "wider", or the one
    golden frame of a "golden-..." name."""
    if size.startswith(GOLDEN_PREFIX):
        return [golden.frame(size[len(GOLDEN_PREFIX):])]
    return frame_sets.wider_photos(4) if size == "wider" else frame_sets.frames(size, 2)


def golden_frames():
    """The golden frames, in the fixture's order."""
    return list(golden.frames().values())


def check_golden(names, got) -> None:
    """Asserts each detection of `got` against the golden fixture's faces of the frame named in
    `names` (golden_frames.NAMES, or GOLDEN's "golden-..." names), within its tolerance."""
    _, expected = golden.load()
    assert len(names) == len(got)
    for name, faces in zip(names, got):
        name = name[len(GOLDEN_PREFIX):] if name.startswith(GOLDEN_PREFIX) else name
        golden.check(expected["defaults"][name], faces, f"golden frame {name}")


def same_detections(a, b) -> bool:
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ("boxes", "scores", "landmarks"))


def nchw(batch):
    """The core's (N, H, W, 3) output as the networks' NCHW input (channels-last, no copy)."""
    return torch.from_numpy(batch).permute(0, 3, 1, 2)


def stage_inputs(detector, img):
    """What each stage receives for this frame, computed once outside the timed calls: the
    pyramid scales, P-Net's proposals and R-Net's refined windows."""
    scales = _core.pyramid_scales(*img.shape[:2], detector.min_face_size, detector.scale_factor)
    proposals = detector.propose(img)
    refined = detector.refine(img, proposals) if len(proposals) else proposals
    return scales, proposals, refined


def time_frames(benchmark, detector, frames, mode: str):
    """Times `detector` on the frames as one list ("batch") or one at a time ("alone");
    returns the detections of the timed call."""
    if mode == "batch":
        return benchmark(detector.detect, frames)
    return benchmark(lambda: [detector.detect(f) for f in frames])


# --- calibration ------------------------------------------------------------------------------
# The latency guard's yardstick (benchmarks/guard.py): a fixed workload that involves none of
# mtcnn-fast's code, a torch convolution and a NumPy sort.
CALIBRATION_REPEAT = 5


def calibration_workload():
    """A function doing the fixed work, and its answer (the same on every call)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 192, 192, generator=gen)
    w = torch.randn(32, 16, 3, 3, generator=gen)
    a = np.random.default_rng(0).random((256, 256), dtype=np.float32)

    def work():
        with torch.inference_mode():
            y = torch.nn.functional.conv2d(x, w)
        return float(y.sum()) + float(np.sort(a, axis=1)[:, 128].sum())

    return work, work()


def time_calibration(repeat: int = CALIBRATION_REPEAT) -> list:
    """Seconds of `repeat` calls of the calibration work at torch's current thread count."""
    work, _ = calibration_workload()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return times
