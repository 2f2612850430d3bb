"""mtcnn-fast under the protocol that every peer speed runner follows (benchmarks/speed_protocol.py).

    .venv/bin/python benchmarks/peers/mtcnn_fast_speed.py --threads T [--sizes ...] [--repeat R] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from speed_protocol import add_speed_options, speed  # noqa: E402

from mtcnn_fast import FaceDetector, __version__  # noqa: E402

PEER = f"mtcnn-fast {__version__}"


def main(argv=None) -> None:
    torch.set_num_interop_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_speed_options(ap)
    ap.add_argument("--min-face-size", type=float, default=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    detector = FaceDetector(min_face_size=args.min_face_size, device="cpu")
    speed(detector.detect, PEER, args)


if __name__ == "__main__":
    main()
