"""Frames from videos, cameras and iterables, for FaceDetector.stream and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

import cv2
import numpy as np

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}

Source = Union[str, Path, int, "Iterable[np.ndarray]"]  # noqa: F821


def is_video(path: Union[str, Path]) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def open_capture(source: Union[str, Path, int]) -> cv2.VideoCapture:
    """A cv2.VideoCapture on a video file or a camera index; ValueError if it cannot open."""
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise ValueError(f"no such video file: {source}")
    cap = cv2.VideoCapture(source if isinstance(source, int) else str(source))
    if not cap.isOpened():
        what = f"camera {source}" if isinstance(source, int) else f"video file {source} (unreadable or not a video)"
        raise ValueError(f"cannot open {what}")
    return cap


def decodes(source) -> bool:
    """Whether frames_from decodes the source (a video file path or a camera index)."""
    return isinstance(source, (str, Path, int)) and not isinstance(source, bool)


def frames_from(source: Source) -> Iterator[np.ndarray]:
    """Yields frames: RGB frames decoded from a video file (str or Path) or a camera (int), or
    the items of any other iterable unchanged."""
    if not decodes(source):
        yield from source
        return
    cap = open_capture(source)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
