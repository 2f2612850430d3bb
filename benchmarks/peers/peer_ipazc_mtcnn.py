"""Peer runner for ipazc's MTCNN (PyPI `mtcnn` 1.0.0) on TensorFlow (tensorflow-cpu 2.21.0).

It runs in its own virtual environment (outside the repo), never in mtcnn-fast's. Create it with:

    python3 -m venv /work/peers/ipazc_mtcnn
    /work/peers/ipazc_mtcnn/bin/pip install tensorflow-cpu==2.21.0 mtcnn==1.0.0 opencv-python-headless

(The P/R/O-Net weights ship inside the wheel as mtcnn/assets/weights/*.lz4, so nothing is
downloaded at run time; opencv-python-headless is only for benchmarks/frames.py.) Then, from the
repo root:

    # speed on the shared benchmark frames (benchmarks/frames.py), on CPU
    /work/peers/ipazc_mtcnn/bin/python benchmarks/peers/peer_ipazc_mtcnn.py speed --threads T \
        [--sizes 640x480 1280x720 1920x1080 wider] [--repeat 10] [--json OUT.json]

Protocol (the same as facenet_pytorch.py's `speed`): per size, 2 warm-up detections per frame, then
R rounds detecting every frame once, each call timed with time.perf_counter; the median ms per frame
is reported, and faces are counted in round 0. JSON: {"peer", "threads", "results": {size:
{"median_ms", "faces"}}}.

Settings: MTCNN(stages="face_and_landmarks_detection", device="CPU:0"), and every call is
detect_faces(rgb, min_face_size=20, scale_factor=0.709, threshold_pnet=0.6, threshold_rnet=0.7,
threshold_onet=0.7) on the RGB uint8 HxWx3 array (ipazc's own default for threshold_onet is 0.8;
it is set to 0.7 here to match the other MTCNNs). Threads: before TensorFlow is imported,
TF_NUM_INTRAOP_THREADS=T, TF_NUM_INTEROP_THREADS=1 and OMP_NUM_THREADS=T are set, and after the
import tf.config.threading.set_intra_op_parallelism_threads(T) and
set_inter_op_parallelism_threads(1) are called before any op runs. TF_CPP_MIN_LOG_LEVEL=2 only
silences its log; oneDNN is left at TensorFlow's default.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from speed_protocol import speed, speed_main  # noqa: E402

PEER = "ipazc mtcnn 1.0.0 (tensorflow-cpu)"
SETTINGS = dict(min_face_size=20, scale_factor=0.709, threshold_pnet=0.6, threshold_rnet=0.7, threshold_onet=0.7)


def cmd_speed(args) -> None:
    t = str(args.threads)
    os.environ["TF_NUM_INTRAOP_THREADS"] = t
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = t
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from mtcnn import MTCNN

    detector = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")

    def detect(rgb):
        return detector.detect_faces(np.ascontiguousarray(rgb, dtype=np.uint8), **SETTINGS)

    speed(detect, PEER, args)


def main(argv=None) -> None:
    speed_main(cmd_speed, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
