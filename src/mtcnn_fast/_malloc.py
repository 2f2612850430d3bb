"""Keeps freed memory in the process for the next frame (glibc only).

A detection allocates buffers of several MB to hundreds of MB (pyramid levels, the summed-area
table, activations of P-Net and of the R-Net / O-Net chunks) and frees them before the next
frame. By default glibc serves every block larger than its adaptive mmap threshold (at most
32 MB) with a fresh mmap and returns it to the system on free, and trims the top of the heap once
more than twice that threshold lies free there; the next frame then faults the same memory in
again, page by page. On the 2-core development machine keeping the memory made detections up to
1.2x faster at 1 thread on 640x480 to 1920x1080 frames and 1.6x on 3840x2160 ones
(benchmarks/README.md).

keep_freed_memory() raises both thresholds to KEEP_BYTES, the way an arena allocator (ONNX
Runtime's, TensorFlow's) keeps its blocks: blocks up to that size come from the heap and stay
there, and up to that much free memory at the top of the heap is kept. The process's resident
size then stays near its peak instead of falling back between frames. It acts once per process,
only under glibc, and never where the user has set glibc's malloc variables themselves.
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


def glibc():
    """The C library of this process when it is glibc (with mallopt), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only)
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Raises glibc's mmap and trim thresholds to KEEP_BYTES (once per process). Returns whether
    this process runs with them: False under another C library or where the environment sets
    glibc's malloc parameters (the user's choice stands)."""
    if not _state["done"]:
        _state["done"] = True
        libc = glibc()
        if libc is not None and not user_has_set_malloc():
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            ok = libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
            _state["applied"] = bool(ok)
    return _state["applied"]
