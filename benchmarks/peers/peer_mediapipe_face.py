"""Peer runner for MediaPipe face detection (PyPI `mediapipe` 0.10.21, legacy solutions graph, full-range BlazeFace model).

It runs in its own virtual environment (outside the repo), never in mtcnn-fast's. Create it with:

    python3 -m venv /work/peers/mediapipe
    /work/peers/mediapipe/bin/pip install "numpy<2" "protobuf>=4.25.3,<5" absl-py attrs flatbuffers \
        matplotlib opencv-python-headless==4.10.0.84
    /work/peers/mediapipe/bin/pip install --no-deps mediapipe==0.10.21

(0.10.21 because mediapipe 1.x ships no face-detection model and no legacy `solutions` API, while
0.10.21's cp311 manylinux wheel ships mediapipe/modules/face_detection/
face_detection_full_range_sparse.tflite and face_detection_short_range.tflite with their CPU graphs,
so nothing is downloaded at run time. `--no-deps` because its declared dependencies pull in jax,
jaxlib, sentencepiece, sounddevice and the GUI build opencv-contrib-python, none of which face
detection uses; matplotlib is kept because `mediapipe.solutions` imports it.) Then, from the repo
root:

    # speed on the shared benchmark frames (benchmarks/frames.py), on CPU
    /work/peers/mediapipe/bin/python benchmarks/peers/peer_mediapipe_face.py speed --threads T \
        [--sizes 640x480 1280x720 1920x1080 wider] [--repeat 10] [--json OUT.json]

Protocol (the same as facenet_pytorch.py's `speed`): per size, 2 warm-up detections per frame, then
R rounds detecting every frame once, each call timed with time.perf_counter; the median ms per frame
is reported, and faces are counted in round 0. JSON: {"peer", "threads", "results": {size:
{"median_ms", "faces"}}}.

Settings: the graph of mp.solutions.face_detection.FaceDetection(model_selection=1,
min_detection_confidence=0.5), i.e. face_detection_full_range_cpu.binarypb (192x192 full-range
sparse model), run through mediapipe's SolutionBase like FaceDetection runs it; every timed call is
process(rgb) on the RGB uint8 HxWx3 array, and faces = len(result.detections).

FaceDetection itself cannot apply min_detection_confidence (nor any thread setting): SolutionBase
writes its graph options into the graph only after the subgraphs have been expanded, so they never
reach the nodes, and the graph's built-in min_score_thresh of 0.6 stays in force whatever is passed
(upstream issue google-ai-edge/mediapipe#3896; checked here: 0.1, 0.5 and 0.9 give the same faces).
So this runner expands the graph itself (ValidatedGraphConfig), sets the two options on the expanded
nodes, and hands that config to SolutionBase:
  - TensorsToDetectionsCalculator: min_score_thresh = 0.5 (min_detection_confidence 0.5);
  - InferenceCalculatorCpu: delegate.xnnpack.num_threads = T, the only thread setting of the model
    (left unset, MediaPipe's desktop default for XNNPACK is 1 thread).
Also set before import: OMP_NUM_THREADS=T and OPENCV_FOR_THREADS_NUM=T (for the OpenCV inside
MediaPipe's native library, which does the resize to 192x192). MediaPipe's calculator-graph
executor keeps its own worker threads, which this API cannot size; the graph is one sequential
chain per frame.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from speed_protocol import speed, speed_main  # noqa: E402

MIN_CONFIDENCE = 0.5


def full_range_graph(min_score_thresh: float, threads: int):
    """The expanded CPU graph of FaceDetection(model_selection=1), with the score threshold and the
    XNNPACK thread count set on its nodes (see the module docstring for why not via graph options)."""
    import mediapipe
    from mediapipe.calculators.tensor import inference_calculator_pb2, tensors_to_detections_calculator_pb2
    from mediapipe.framework import calculator_pb2
    from mediapipe.python._framework_bindings import resource_util, validated_graph_config
    from mediapipe.python.solutions import face_detection as mp_face

    root = Path(mediapipe.__file__).resolve().parent.parent
    resource_util.set_resource_dir(str(root))
    validated = validated_graph_config.ValidatedGraphConfig()
    validated.initialize(binary_graph_path=str(root / mp_face._FULL_RANGE_GRAPH_FILE_PATH))
    config = calculator_pb2.CalculatorGraphConfig()
    config.ParseFromString(validated.binary_config)

    wanted = {
        "InferenceCalculatorCpu": inference_calculator_pb2.InferenceCalculatorOptions,
        "TensorsToDetectionsCalculator": tensors_to_detections_calculator_pb2.TensorsToDetectionsCalculatorOptions,
    }
    done = set()
    for node in config.node:
        options_type = wanted.get(node.calculator)
        if options_type is None:
            continue
        for any_options in node.node_options:
            if any_options.Is(options_type.DESCRIPTOR):
                options = options_type()
                any_options.Unpack(options)
                if node.calculator == "InferenceCalculatorCpu":
                    options.delegate.xnnpack.num_threads = threads
                else:
                    options.min_score_thresh = min_score_thresh
                any_options.Pack(options)
                done.add(node.calculator)
    if done != set(wanted):
        raise RuntimeError(f"graph layout changed: set options on {sorted(done)} only")
    return config


def cmd_speed(args) -> None:
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["OPENCV_FOR_THREADS_NUM"] = str(args.threads)
    import mediapipe as mp
    import numpy as np
    from mediapipe.python.solution_base import SolutionBase

    detector = SolutionBase(graph_config=full_range_graph(MIN_CONFIDENCE, args.threads), outputs=["detections"])
    peer = f"mediapipe {mp.__version__} face detection (full range)"

    def detect(rgb):
        res = detector.process(input_data={"image": np.ascontiguousarray(rgb, dtype=np.uint8)})
        return res.detections or []

    try:
        speed(detect, peer, args)
    finally:
        detector.close()


def main(argv=None) -> None:
    speed_main(cmd_speed, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
