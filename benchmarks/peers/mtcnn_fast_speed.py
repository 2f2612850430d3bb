"""mtcnn-fast under the protocol that every peer speed runner follows (benchmarks/speed_protocol.py).

    .venv/bin/python benchmarks/peers/mtcnn_fast_speed.py --threads T [--sizes ...] [--repeat R] [--json OUT]
        [--keep-freed-memory] [--device cuda] [--batch B]

The detector runs with its defaults. --keep-freed-memory opts in to keep_freed_memory=True (glibc's
thresholds raised for the process), to measure what that setting is worth: run both ways in
separate processes, alternating (the setting is per process, and an A/B inside one process cannot
show it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from speed_protocol import add_device_options, add_speed_options, speed  # noqa: E402

from mtcnn_fast import FaceDetector, __version__  # noqa: E402

PEER = f"mtcnn-fast {__version__}"


def main(argv=None) -> None:
    torch.set_num_interop_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_speed_options(ap)
    add_device_options(ap)
    ap.add_argument("--min-face-size", type=float, default=20)
    ap.add_argument("--keep-freed-memory", action="store_true", help="keep_freed_memory=True")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    detector = FaceDetector(min_face_size=args.min_face_size, device=args.device,
                            keep_freed_memory=args.keep_freed_memory)
    speed(detector.detect, PEER, args,
          detect_many=lambda frames: sum(len(f) for f in detector.detect(frames)))


if __name__ == "__main__":
    main()
