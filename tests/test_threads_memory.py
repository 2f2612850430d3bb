"""One detector shared by threads, long runs, and determinism."""

import threading

import numpy as np
import pytest
import torch

from mtcnn_fast import FaceDetector
from support import assert_same


def frames_of_varying_sizes(astronaut, count, seed=0):
    """`count` crops of the photo with random sizes (40..360 px a side)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        h, w = rng.integers(40, 360, size=2)
        y, x = rng.integers(0, 512 - h), rng.integers(0, 512 - w)
        out.append(np.ascontiguousarray(astronaut[y : y + h, x : x + w]))
    return out


@pytest.mark.exactness
def test_four_threads_sharing_one_detector_match_sequential_results(detector, astronaut):
    frames = [astronaut, np.ascontiguousarray(astronaut[::2, ::2])] + frames_of_varying_sizes(astronaut, 6)
    sequential = [detector.detect(f) for f in frames]
    results = [[None] * len(frames) for _ in range(4)]
    errors = []

    def work(t):
        try:
            for i in range(len(frames)):
                k = (i + t) % len(frames)  # each thread in a different order
                results[t][k] = detector.detect(frames[k])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    for per_thread in results:
        for got, want in zip(per_thread, sequential):
            assert_same(got, want)


@pytest.mark.exactness
def test_the_thread_count_does_not_change_the_numbers(detector, astronaut):
    """Detections at 1, 2 and 3 torch threads are the same bits: every network layer runs on
    oneDNN whatever the thread count (torch's own heuristic sends 1x1 convolutions at one thread
    to BLAS instead), and the core's OpenMP loops split work, never sums."""
    frames = [astronaut, np.ascontiguousarray(np.tile(astronaut, (2, 3, 1))[:700, :1000])]
    frames += frames_of_varying_sizes(astronaut, 3, seed=5)
    before = torch.get_num_threads()
    try:
        results = {}
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results[n] = [detector.detect(f) for f in frames]
            results[n].append(detector.detect(frames))  # a batch too
    finally:
        torch.set_num_threads(before)
    assert sum(len(d) for d in results[1][:-1]) >= 5
    for n in (2, 3):
        for got, want in zip(results[n][:-1], results[1][:-1]):
            assert_same(got, want)
        for got, want in zip(results[n][-1], results[1][:-1]):
            assert_same(got, want)


@pytest.mark.exactness
def test_same_frame_gives_bit_identical_results_every_time(detector, astronaut):
    first = detector.detect(astronaut)
    for _ in range(3):
        assert_same(detector.detect(astronaut), first)
    assert_same(FaceDetector(device="cpu").detect(astronaut), first)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_memory_stays_flat_over_a_long_run(detector, astronaut):
    """A stream of frames whose sizes change among 8 resolutions, as when videos and photos of
    a few formats are mixed. (Every new frame shape costs oneDNN a cached kernel; with dozens of
    distinct shapes resident memory rises to a plateau, measured at about +100 MB over 60 shapes,
    then stays there: the cache is bounded.)"""
    rng = np.random.default_rng(1)
    sizes = [(120, 160), (240, 320), (360, 480), (200, 200), (512, 512), (300, 450), (90, 500), (480, 270)]
    frames = []
    for i in range(40):
        h, w = sizes[i % len(sizes)]
        y, x = rng.integers(0, 512 - h + 1), rng.integers(0, 512 - w + 1)
        frames.append(np.ascontiguousarray(astronaut[y : y + h, x : x + w]))
    for f in frames:  # warm-up: allocator pools and per-shape kernels settle
        detector.detect(f)
    after_warmup = rss_mb()
    for _ in range(8):  # 320 more detections
        for f in frames:
            detector.detect(f)
    growth = rss_mb() - after_warmup
    # Bound: 10 MB over 320 detections (leaking one 512x512 pyramid per call would be ~700 MB).
    assert growth < 10, f"resident memory grew by {growth:.1f} MB"


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/task"), reason="needs /proc (Linux)")
def test_the_core_uses_the_thread_count_torch_is_set_to_in_every_thread():
    """A worker thread's first call used to open OpenMP teams of the runtime's default size
    (OMP_NUM_THREADS, else every core) in the core, whatever torch was set to. Now the core takes
    torch's count, in every thread: with torch at 1 thread, detecting from a pool of 2 threads
    starts the 2 pool threads and nothing else, although OMP_NUM_THREADS says 8."""
    import os
    import subprocess
    import sys

    code = """
import os, concurrent.futures as cf
import torch
torch.set_num_threads(1)
from importlib import resources
from mtcnn_fast import FaceDetector
from mtcnn_fast._input import read_rgb
img = read_rgb(resources.files("mtcnn_fast") / "data" / "astronaut.png")
det = FaceDetector(device="cpu")
assert len(det.detect(img)) == 1
count = lambda: len(os.listdir("/proc/self/task"))
before = count()
with cf.ThreadPoolExecutor(2) as pool:
    assert [len(f) for f in pool.map(det.detect, [img] * 4)] == [1] * 4
    during = count()
print(before, during)
"""
    env = dict(os.environ, OMP_NUM_THREADS="8")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    before, during = map(int, out.stdout.split())
    assert during <= before + 2, (before, during)
