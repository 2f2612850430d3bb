"""The C heap between frames (glibc only): keep freed memory (opt-in) or hand it back.

A detection allocates buffers (activations of P-Net's bands and of the R-Net / O-Net chunks, a
few MB each, and the crops' summed-area table of the region their windows cover; the pyramid's
levels and the crops go to a buffer the detector keeps, detector.SCRATCH_BYTES) and frees them
before the next frame. By
default glibc serves every block larger than its adaptive mmap threshold (at most 32 MB) with a
fresh mmap and returns it to the system on free, and trims the top of the heap once more than
twice that threshold lies free there; the next frame then faults the same memory in again, page
by page. When whole pyramid levels and chunks of 128 windows ran at once (activations up to 30
MB), keeping the memory made detections up to 1.2x faster at 1 thread on 640x480 to 1920x1080
frames; with the bands and chunks most frames of one size reuse their memory without it
(benchmarks/README.md, "Frames of one size without keep_freed_memory").

keep_freed_memory() (``FaceDetector(keep_freed_memory=True)``, off by default: it is a setting of
the whole process) raises both thresholds to KEEP_BYTES, the way an arena allocator (ONNX
Runtime's, TensorFlow's) keeps its blocks: blocks up to that size come from the heap and stay
there, and up to that much free memory at the top of the heap is kept. The process's resident
size then stays near its peak instead of falling back between frames. It acts once per process,
only under glibc, and never where the user has set glibc's malloc variables themselves. Fed
frames of ever new sizes, that heap fragments: free holes too small for the next frame's buffers
stay resident, and the process grows without end (benchmarks/soak.py).

release_free_memory() is what the detector does instead by default, after a call on frames of
a new size (``FaceDetector(trim_memory=True)``): glibc's malloc_trim(0) hands the free pages of
every arena back to the system. It changes no setting; what stays is the memory in use, so a
long-lived process fed photos of new sizes keeps a flat resident size. A stream of one size
(video) never triggers it and keeps its pages. The price, on a stream where every frame is a new
size, is that every frame faults its buffers in again: 1.5 to 1.7x the median time per frame
of benchmarks/soak.py at 1 thread. Trimming less often was measured and does not stay cheap: a
heap never trimmed keeps growing, so a budget of growth since the last trim is reached sooner
and sooner (32 MB: every second or third frame; 256 MB: 5 trims in 400 frames, 58 in 1,000),
and a fixed period (every 32nd new size) lets the level drift up; trimming only on sizes not
among the last 16, or holding part of the heap across the trim, were measured too
(benchmarks/README.md, "Where the trim's price comes from").

Both act on glibc's malloc only, and only where it is the process's malloc. Run under another
allocator (jemalloc or tcmalloc preloaded with LD_PRELOAD: a choice only the user makes, for
the whole process), torch's and numpy's buffers come from that allocator, which reuses freed
blocks by size class and returns unused pages on its own: glibc() is then None and the
detector leaves memory to it. Measured under jemalloc on the stream where glibc needs the trim
(benchmarks/README.md, "Another allocator"): flat resident size and keep_freed_memory's speed.
"""

from __future__ import annotations

import ctypes
import os
import sys

KEEP_BYTES = 256 << 20
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3


def user_has_set_malloc() -> bool:
    """Whether the environment sets glibc's malloc parameters (MALLOC_*_ or glibc.malloc tunables)."""
    env = os.environ
    named = any(k.startswith("MALLOC_") and k.endswith("_") for k in env)
    return named or "glibc.malloc." in env.get("GLIBC_TUNABLES", "")


_state = {"done": False, "applied": False}


def _find_glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    if not _serves_malloc(libc):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def _address(function) -> int:
    return ctypes.cast(function, ctypes.c_void_p).value or 0


def _serves_malloc(process) -> bool:
    """Whether glibc's own malloc is the one the process calls. Run under another allocator
    (jemalloc or tcmalloc preloaded with LD_PRELOAD), the process's `malloc` is that
    allocator's, and glibc's thresholds and malloc_trim reach nothing that torch or numpy
    allocate: then the detector leaves memory to that allocator. Where glibc cannot be opened
    by its soname, glibc's malloc is assumed (the usual case)."""
    try:
        own = ctypes.CDLL("libc.so.6")  # glibc's own symbols, whatever is preloaded
    except OSError:
        return True
    return _address(process.malloc) == _address(own.malloc)


_libc = []


def glibc():
    """The C library of this process when it is glibc (with mallopt and malloc_trim) and its
    malloc is the process's, else None."""
    if not _libc:
        _libc.append(_find_glibc())
    return _libc[0]


def keep_freed_memory() -> bool:
    """Raises glibc's mmap and trim thresholds to KEEP_BYTES (once per process). Returns whether
    this process runs with them: False under another C library or allocator (_serves_malloc) or
    where the environment sets glibc's malloc parameters (the user's choice stands)."""
    if not _state["done"]:
        _state["done"] = True
        libc = glibc()
        if libc is not None and not user_has_set_malloc():
            ok = libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
            _state["applied"] = bool(ok)
    return _state["applied"]


def release_free_memory() -> bool:
    """Hands the C heap's free pages back to the system (glibc's malloc_trim(0)); returns whether
    it ran: not under another C library or allocator, not where the environment sets glibc's
    malloc parameters (the user's choice of allocator behaviour stands), and not once
    keep_freed_memory() holds for this process (it asked for the opposite)."""
    libc = glibc()
    if libc is None or _state["applied"] or user_has_set_malloc():
        return False
    libc.malloc_trim(0)
    return True
