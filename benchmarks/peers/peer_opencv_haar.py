"""Peer runner for OpenCV's Haar cascade face detector (haarcascade_frontalface_default.xml, PyPI opencv-python-headless 4.14).

It runs in its own virtual environment (outside the repo), never in mtcnn-fast's. Create it with:

    python3 -m venv /work/peers/opencv_haar
    /work/peers/opencv_haar/bin/pip install opencv-python-headless==4.14.0.94 numpy

(Pinned to 4.x: opencv-python-headless 5.0.0.93, the newest, has no cv2.CascadeClassifier and ships
no cascade files. 4.14 ships cv2/data/haarcascade_frontalface_default.xml inside the wheel, so
nothing is downloaded at run time.) Then, from the repo root:

    # speed on the shared benchmark frames (benchmarks/frames.py), on CPU
    /work/peers/opencv_haar/bin/python benchmarks/peers/peer_opencv_haar.py speed --threads T \
        [--sizes 640x480 1280x720 1920x1080 wider] [--repeat 10] [--json OUT.json]

Protocol (the same as facenet_pytorch.py's `speed`): per size, 2 warm-up detections per frame, then
R rounds detecting every frame once, each call timed with time.perf_counter; the median ms per frame
is reported, and faces are counted in round 0. JSON: {"peer", "threads", "results": {size:
{"median_ms", "faces"}}}.

Settings: cascade = cv2.CascadeClassifier(cv2.data.haarcascades +
'haarcascade_frontalface_default.xml'); every timed call is cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
followed by cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20)) (the
grayscale conversion is inside the timed call; no histogram equalisation, no maxSize). Threads:
OMP_NUM_THREADS=T is set before cv2 is imported and cv2.setNumThreads(T) right after
(detectMultiScale runs its scales in parallel through OpenCV's parallel_for_).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from speed_protocol import speed, speed_main  # noqa: E402

CASCADE = "haarcascade_frontalface_default.xml"


def cmd_speed(args) -> None:
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    path = cv2.data.haarcascades + CASCADE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise SystemExit(f"cannot load {path}")
    peer = f"OpenCV {cv2.__version__} Haar ({CASCADE[:-4]})"

    def detect(rgb):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))

    speed(detect, peer, args)


def main(argv=None) -> None:
    speed_main(cmd_speed, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
