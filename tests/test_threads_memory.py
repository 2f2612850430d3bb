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
def test_the_scratch_buffer_changes_no_number(astronaut, monkeypatch):
    """The pyramid's levels and the crops are written into a buffer the detector keeps from
    call to call (SCRATCH_BYTES): what an earlier call of another size left there must not
    reach a later one. Frames of growing and shrinking sizes, a batch, flip and a frame too
    large for the buffer give the numbers of new arrays every time."""
    import mtcnn_fast.detector as detector_module

    tiled = np.ascontiguousarray(np.tile(astronaut, (2, 3, 1))[:900, :1400])
    frames = [astronaut, tiled, np.ascontiguousarray(astronaut[40:300, 100:420])] + frames_of_varying_sizes(astronaut, 4)
    kept, mirrored = FaceDetector(device="cpu"), FaceDetector(device="cpu", flip=True)
    got = [kept.detect(f) for f in frames] + kept.detect(frames[::-1]) + [mirrored.detect(f) for f in frames[:3]]
    assert kept._held.buffer.size * 4 <= detector_module.SCRATCH_BYTES
    monkeypatch.setattr(detector_module, "SCRATCH_BYTES", 0)  # new arrays for every level and cut
    fresh, fresh_mirrored = FaceDetector(device="cpu"), FaceDetector(device="cpu", flip=True)
    want = [fresh.detect(f) for f in frames] + fresh.detect(frames[::-1]) + [fresh_mirrored.detect(f) for f in frames[:3]]
    assert not hasattr(fresh._held, "buffer")
    assert sum(len(w) for w in want) > 10
    for a, b in zip(got, want):
        assert_same(a, b)
    # A cap below the big frame's levels: that frame gets new arrays, the buffer stays within it.
    monkeypatch.setattr(detector_module, "SCRATCH_BYTES", 4 << 20)
    capped = FaceDetector(device="cpu")
    for f, w in zip(frames, want):
        assert_same(capped.detect(f), w)
        assert capped._held.buffer.size * 4 <= 4 << 20


def test_each_thread_writes_into_its_own_kept_buffer(detector, astronaut, monkeypatch):
    """The levels and the crops of a frame lie in the calling thread's buffer, the same one
    call after call (nothing new to allocate, nothing for the system to fault in again); another
    thread has its own (a detector shared by threads, above)."""
    seen = []

    class Recorder:  # the detector's core ops, recording the buffer each output goes to
        def __init__(self, ops):
            self._ops = ops

        def __getattr__(self, name):
            return getattr(self._ops, name)

        def pyramid(self, img, scales, threads=1, out=None):
            seen.append(("pyramid", out))
            return self._ops.pyramid(img, scales, threads, out=out)

        def crop_windows(self, img, boxes, size, threads=1, out=None):
            seen.append(("crops", out))
            return self._ops.crop_windows(img, boxes, size, threads, out=out)

    monkeypatch.setattr(detector, "_ops", Recorder(detector._ops))
    for _ in range(2):
        assert len(detector.detect(astronaut)) == 1
    main = detector._held.buffer
    assert [k for k, _ in seen] == ["pyramid", "crops", "crops"] * 2
    assert all(out is not None and np.shares_memory(out, main) for _, out in seen)
    other = []
    worker = threading.Thread(target=lambda: other.append((detector.detect(astronaut), detector._held.buffer)))
    worker.start()
    worker.join(timeout=600)
    assert len(other[0][0]) == 1 and not np.shares_memory(other[0][1], main)
    assert detector._held.buffer is main


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


# A long-lived process fed photos of ever new sizes (benchmarks/soak.py is the long run): random
# crops of the sample photo tiled 2 x 2, each resized to a new random size.
SOAK = """
import json, sys
import cv2, numpy as np, torch
torch.set_num_threads(1)
from importlib import resources
from mtcnn_fast import FaceDetector
from mtcnn_fast._input import read_rgb
det = FaceDetector(device="cpu", **json.loads(sys.argv[1]))
photo = np.tile(read_rgb(resources.files("mtcnn_fast") / "data" / "astronaut.png"), (2, 2, 1))
rng = np.random.default_rng(0)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
out = []
for i in range(int(sys.argv[2])):
    h, w = photo.shape[:2]
    ch, cw = int(rng.integers(h // 2, h + 1)), int(rng.integers(w // 2, w + 1))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    size = (int(rng.integers(150, 701)), int(rng.integers(150, 901)))
    det.detect(np.ascontiguousarray(cv2.resize(photo[y:y + ch, x:x + cw], size, interpolation=cv2.INTER_AREA)))
    out.append(rss())
print(json.dumps(out))
"""


def env_without_malloc_settings() -> dict:
    """This process's environment less glibc's malloc settings (the detector's default path is
    what these tests measure)."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}


def soak_rss(frames: int, **detector_args):
    import json
    import subprocess
    import sys

    env = env_without_malloc_settings()
    out = subprocess.run([sys.executable, "-c", SOAK, json.dumps(detector_args), str(frames)],
                         env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_resident_memory_plateaus_on_photos_of_ever_new_sizes():
    """Every call a new size: each frame's buffers (pyramid levels, activations) are new sizes,
    and the C heap's holes that the last ones left rarely fit them. Kept (glibc's default, or
    keep_freed_memory=True), those holes added up without end: +76 MB between frames 200 and
    400 of this stream, still rising (Intel Xeon, 1 thread). The detector hands the free pages
    back after a call on a new size (trim_memory): +0.7 MB there. Bound: 20 MB between frames
    150 and 300."""
    from mtcnn_fast import _malloc

    if _malloc.glibc() is None:
        pytest.skip("the C heap's free pages are handed back under glibc only")
    rss = soak_rss(300)
    growth = max(rss[150:]) - rss[150]
    assert growth < 20, f"resident memory grew by {growth:.1f} MB between frames 150 and 300: {rss[::25]}"


def test_the_heap_is_trimmed_after_a_new_size_only(monkeypatch, astronaut):
    """The trim runs after a call whose frame sizes differ from the previous call's: a video
    stream of one size keeps its pages (and its speed); trim_memory=False never trims."""
    from mtcnn_fast import _malloc

    calls = []
    monkeypatch.setattr(_malloc, "release_free_memory", lambda: calls.append(1) or True)
    det = FaceDetector(device="cpu")
    small = np.ascontiguousarray(astronaut[:200, :300])
    for frame in (astronaut, astronaut, astronaut, small, small, astronaut):
        det.detect(frame)
    assert len(calls) == 3
    det.detect([astronaut, small])
    det.detect([astronaut, small])
    assert len(calls) == 4
    list(det.stream([small] * 5))
    assert len(calls) == 5
    off = FaceDetector(device="cpu", trim_memory=False)
    for frame in (astronaut, small, astronaut):
        off.detect(frame)
    assert len(calls) == 5
    with pytest.raises(TypeError, match="trim_memory"):
        FaceDetector(device="cpu", trim_memory="yes")


FAULTS = """
import resource, sys
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from importlib import resources
from mtcnn_fast import FaceDetector
from mtcnn_fast._input import read_rgb
frame = np.ascontiguousarray(np.tile(read_rgb(resources.files("mtcnn_fast") / "data" / "astronaut.png"), (2, 3, 1))[:720, :1280])
det = FaceDetector(device="cpu")
for _ in range(3):
    det.detect(frame)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    assert len(det.detect(frame)) == 6
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="counts Linux page faults")
@pytest.mark.parametrize("threads", [1, 2])
def test_frames_of_one_size_reuse_their_memory_with_the_default_allocator(threads):
    """A stream of one size (1280x720, default detector, default glibc settings) allocates no
    memory that the system has to hand over again on every frame: P-Net's bands and the small
    R-Net / O-Net chunks keep each activation near ACTIVATION_BYTES. With whole-level passes and
    chunks of 128 windows every frame faulted in about 6,400 pages (25 MB; ~13 ms of system time)
    unless keep_freed_memory raised glibc's thresholds; now a few hundred. Bound: 1,500 pages."""
    import subprocess
    import sys

    env = env_without_malloc_settings()
    out = subprocess.run([sys.executable, "-c", FAULTS, str(threads)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    faults = float(out.stdout.split()[-1])
    assert faults < 1500, f"{faults:.0f} page faults per frame"
