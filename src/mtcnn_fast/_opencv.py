"""OpenCV's ``cv2``, which mtcnn-fast needs for image files (reading, writing), align and crop
(the warps), video sources and the command line -- but not for detecting faces in an array.

The package depends on no particular OpenCV distribution: opencv-python, opencv-contrib-python
and their -headless twins all install the same ``cv2`` module and overwrite each other's files,
so requiring one would break an environment that already has another. ``pip install
'mtcnn-fast[opencv]'`` brings opencv-python-headless; any installed variant works as well.
"""

from __future__ import annotations

INSTALL_HINT = ("install one OpenCV distribution, for example pip install 'mtcnn-fast[opencv]' "
                "(opencv-python-headless); an opencv-python or opencv-contrib-python already "
                "installed works as well (install only one: they all provide cv2)")

try:
    import cv2
except ModuleNotFoundError as e:
    if e.name != "cv2":  # cv2 is there but one of its own imports is missing: not ours to explain
        raise
    raise ModuleNotFoundError(
        f"mtcnn-fast needs OpenCV (the cv2 module) for image files, align/crop, video and the "
        f"command line, and none is installed: {INSTALL_HINT}", name="cv2") from e

__all__ = ["cv2", "INSTALL_HINT"]
