"""Frames from videos, cameras, URLs and iterables, for FaceDetector.stream and the command line."""

from __future__ import annotations

import numbers
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

import numpy as np

from ._opencv import cv2

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
# How long OpenCV may wait for a network source to open, and then for each frame.
URL_TIMEOUT_MS = 10_000

Source = Union[str, Path, int, cv2.VideoCapture, Iterable[np.ndarray]]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_video(path: Union[str, Path]) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_url(source: str) -> bool:
    return bool(_URL.match(source))


def _local_path(source: str) -> bool:
    """Whether a string names a file on this machine, as opposed to a URL, a GStreamer pipeline
    ("... ! appsink") or an image-sequence pattern ("frames/%04d.png")."""
    return not (is_url(source) or "!" in source or "%" in source)


def _camera(source) -> bool:
    return isinstance(source, numbers.Integral) and not isinstance(source, (bool, np.bool_))


def open_capture(source: Any) -> cv2.VideoCapture:
    """A cv2.VideoCapture on what cv2.VideoCapture takes: a video file (str or Path), a camera
    index, a URL, a GStreamer pipeline or an image-sequence pattern. ValueError, saying which
    source and why, if it cannot be opened; network sources give up after URL_TIMEOUT_MS."""
    if _camera(source):
        cap = cv2.VideoCapture(int(source))
        if not cap.isOpened():
            raise ValueError(f"cannot open camera {int(source)} (no such camera, or it is busy)")
        return cap
    if isinstance(source, Path) or (isinstance(source, str) and _local_path(source)):
        path = Path(source)
        if not path.exists():
            raise ValueError(f"no such video file: {source}")
        if not path.is_file():
            raise ValueError(f"{source} is not a video file (a folder?)")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise ValueError(f"cannot open video file {source} (unreadable or not a video)")
        return cap
    if not isinstance(source, str):
        raise TypeError(f"cannot open a video source of type {type(source).__name__}")
    if is_url(source):
        cap = cv2.VideoCapture(source, cv2.CAP_ANY, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, URL_TIMEOUT_MS,
                                                     cv2.CAP_PROP_READ_TIMEOUT_MSEC, URL_TIMEOUT_MS])
        if not cap.isOpened():
            raise ValueError(f"cannot open the video stream {source!r}: unreachable, refused, timed "
                             f"out after {URL_TIMEOUT_MS / 1000:g} s, or not a video OpenCV can decode")
        return cap
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise ValueError(f"cannot open the video source {source!r} (OpenCV could not open this "
                         f"pipeline or image-sequence pattern)")
    return cap


def decodes(source) -> bool:
    """Whether frames_from decodes the source with OpenCV (a path, a string, a camera index or a
    cv2.VideoCapture) rather than passing its items through."""
    return isinstance(source, (str, Path, cv2.VideoCapture)) or _camera(source)


def frames_from(source: Source) -> Iterator[Any]:
    """An iterator over the frames of a source: RGB frames decoded by OpenCV (see open_capture;
    an open cv2.VideoCapture is read from and left open), or the items of any other iterable
    unchanged. The source is opened here, so that one that cannot be opened is an error now,
    not at the first frame."""
    if isinstance(source, cv2.VideoCapture):
        if not source.isOpened():
            raise ValueError("the cv2.VideoCapture given is not open")
        return _decoded(source, release=False)
    if decodes(source):
        return _decoded(open_capture(source), release=True)
    if isinstance(source, (bool, np.bool_)) or source is None or not isinstance(source, Iterable):
        raise TypeError(
            f"source must be a video file, a camera index, a URL or pipeline string, an open "
            f"cv2.VideoCapture or an iterable of frames, got {type(source).__name__}")
    return iter(source)


def _decoded(cap: cv2.VideoCapture, release: bool) -> Iterator[np.ndarray]:
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        if release:
            cap.release()
