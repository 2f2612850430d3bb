"""The two interchangeable implementations of the numeric ops.

``cpp`` is the compiled core (``mtcnn_fast._core``), ``numpy`` its plain twin
(``mtcnn_fast._reference``), which specifies it. Both expose the same functions: pyramid_scales,
pyramid, crop_windows, generate_windows, nms, calibrate, square.
"""

from __future__ import annotations

from types import ModuleType

BACKENDS = ("cpp", "numpy")


def get_ops(backend: str = "cpp") -> ModuleType:
    if backend == "cpp":
        # torch first: the core needs libgomp.so.1 and must find torch's, already loaded, rather
        # than load a second OpenMP runtime (release wheels do not carry one: see CMakeLists.txt).
        import torch  # noqa: F401
        from . import _core

        return _core
    if backend == "numpy":
        from . import _reference

        return _reference
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
