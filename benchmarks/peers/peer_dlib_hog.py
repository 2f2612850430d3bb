"""Peer runner for dlib's HOG frontal face detector (PyPI `dlib-bin` 20.0.1.post1, a prebuilt dlib 20.0.1).

It runs in its own virtual environment (outside the repo), never in mtcnn-fast's. Create it with:

    python3 -m venv /work/peers/dlib
    /work/peers/dlib/bin/pip install dlib-bin==20.0.1.post1 opencv-python-headless numpy

(dlib.get_frontal_face_detector() is built into the library, so there is no model file at all and
nothing is downloaded at run time; opencv-python-headless is only for benchmarks/frames.py.) Then,
from the repo root:

    # speed on the shared benchmark frames (benchmarks/frames.py), on CPU
    /work/peers/dlib/bin/python benchmarks/peers/peer_dlib_hog.py speed --threads T \
        [--sizes 640x480 1280x720 1920x1080 wider] [--repeat 10] [--json OUT.json]

Protocol (the same as facenet_pytorch.py's `speed`): per size, 2 warm-up detections per frame, then
R rounds detecting every frame once, each call timed with time.perf_counter; the median ms per frame
is reported, and faces are counted in round 0. JSON: {"peer", "threads", "results": {size:
{"median_ms", "faces"}}}.

Settings: detector = dlib.get_frontal_face_detector(); every call is detector(rgb, 1) on the RGB
uint8 HxWx3 array, i.e. upsample_num_times=1: the image is upsampled 2x once, so that with the
detector's 80x80 window faces down to about 40 px are found (MTCNN here goes down to 20 px; dlib's
HOG detector cannot reach that without a second upsampling, i.e. 4x the pixels again). The
detector's own score threshold (adjust_threshold 0) is kept. Threads: dlib's HOG detector is
single-threaded; --threads is accepted and recorded in the JSON for the table, but has no effect
(OMP_NUM_THREADS=T is set anyway, and OpenCV is not used inside the timed call).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from speed_protocol import speed, speed_main  # noqa: E402

UPSAMPLE = 1


def cmd_speed(args) -> None:
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import dlib
    import numpy as np

    detector = dlib.get_frontal_face_detector()
    peer = f"dlib {dlib.__version__} HOG (upsample {UPSAMPLE})"

    def detect(rgb):
        return detector(np.ascontiguousarray(rgb, dtype=np.uint8), UPSAMPLE)

    speed(detect, peer, args)


def main(argv=None) -> None:
    # --threads is recorded only: dlib's HOG detector is single-threaded.
    speed_main(cmd_speed, __doc__.splitlines()[0], argv)

if __name__ == "__main__":
    main()
