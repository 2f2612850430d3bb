"""Shared fixtures of the benchmark suites: frames, thread settings, and reference answers.

Run for timing:      python -m pytest benchmarks --benchmark-only
Run as quick tests:  python -m pytest benchmarks --benchmark-disable   (what .ci/run does)
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


from mtcnn_fast import FaceDetector  # noqa: E402

import frames as frame_sets  # noqa: E402
from bench_support import frames_for, golden_frames, time_calibration  # noqa: E402


@pytest.fixture(scope="session")
def detector():
    return FaceDetector(device="cpu")


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def frame_cache():
    cache = {}

    def get(size):
        if size not in cache:
            cache[size] = frames_for(size)
        return cache[size]

    return get


@pytest.fixture(scope="session")
def batch_frames():
    """Eight frames per kind for the batch benchmarks; the four golden frames for "golden"."""
    return {"640x480": frame_sets.frames("640x480", 8), "wider": frame_sets.wider_photos(8),
            "golden": golden_frames()}


@pytest.fixture(autouse=True)
def calibration_beside(request):
    """Times the calibration work (bench_support.calibration_workload) right before and right
    after every timed benchmark, at the benchmark's thread count, into its extra_info
    ("calibration": the smallest of those times, in seconds), which the latency guard divides
    the benchmark by. Nothing is timed when benchmarking is off (--benchmark-disable), nor beside
    a benchmark marked own_yardstick (the GPU rows, divided by the GPU calibration)."""
    if "benchmark" not in request.fixturenames or request.node.get_closest_marker("own_yardstick"):
        yield
        return
    if "threads" in request.fixturenames:
        request.getfixturevalue("threads")  # the benchmark's thread count, set before timing
    bench = request.getfixturevalue("benchmark")
    if bench.disabled:
        yield
        return
    times = time_calibration()
    yield
    times += time_calibration()
    bench.extra_info["calibration"] = min(times)
