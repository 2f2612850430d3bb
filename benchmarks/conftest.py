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
from bench_support import frames_for, golden_frames  # noqa: E402


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
