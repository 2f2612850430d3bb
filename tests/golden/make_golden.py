"""Writes or checks the golden fixture (tests/golden/expected.json): what FaceDetector(device="cpu")
finds in the golden frames (golden_frames.RECIPE) with its default settings, and with the
"widerface" preset on the 640x480 frame (the preset runs the mirror-image pass and box voting;
on one frame only, as it costs about 4x the defaults' time).

    python tests/golden/make_golden.py            # compare this machine's detections with the fixture
    python tests/golden/make_golden.py --write    # rewrite the fixture from this machine's detections

Comparing prints, per setting and frame, the face counts and the largest deviation of boxes,
landmarks and scores; run it under the dispatch settings of .ci/run (e.g.
`ONEDNN_MAX_CPU_ISA=SSE41 python tests/golden/make_golden.py`) to measure how far other kernels
move the answers. Rewrite the fixture only when a change is meant to change detections, and say
so (with its measured AP) in the commit.

Writing refuses a fixture with a final score within MARGIN of the O-Net threshold: such a face
could appear on one CPU and not on another.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import golden_frames as golden  # noqa: E402

# setting name -> (FaceDetector.preset name, frames it is recorded on)
SETTINGS = {"defaults": ("original", golden.NAMES), "widerface": ("widerface", ["640x480"])}
MARGIN = 1e-3


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def detect_all():
    import torch

    from mtcnn_fast import FaceDetector

    frames = golden.frames()
    out = {}
    for setting, (preset, names) in SETTINGS.items():
        det = FaceDetector.preset(preset, device="cpu")
        out[setting] = {name: det.detect(frames[name]) for name in names}
        out[setting]["_threshold"] = det.thresholds[2]
    return out, torch.__version__


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the fixture from this machine")
    ap.add_argument("--fixture", type=Path, default=golden.EXPECTED)
    args = ap.parse_args(argv)
    found, torch_version = detect_all()

    if args.write:
        expected: dict = {}
        for setting, per_frame in found.items():
            threshold = per_frame.pop("_threshold")
            expected[setting] = {}
            for name, faces in per_frame.items():
                gap = float(np.abs(faces.scores.astype(np.float64) - threshold).min(initial=1.0))
                if gap < MARGIN:
                    raise SystemExit(f"{setting} {name}: a score lies {gap:.2g} from the O-Net threshold "
                                     f"{threshold}; change the frame's recipe")
                expected[setting][name] = golden.as_record(faces)
                print(f"{setting:<10} {name:<16} {len(faces):>3} faces, lowest score {faces.scores.min():.6f} "
                      f"(threshold {threshold})")
        data = {
            "about": "FaceDetector(device='cpu') detections in the golden frames of tests/golden/golden_frames.py; "
                     "written by tests/golden/make_golden.py --write",
            "settings": {s: f"FaceDetector.preset({p!r}, device='cpu')" for s, (p, _) in SETTINGS.items()},
            "written_with": {"torch": torch_version, "cpu": cpu_model()},
            "frames": {name: {"size": list(golden.RECIPE[name][:2]), "sha256": golden.digest(img)}
                       for name, img in golden.frames().items()},
            "expected": expected,
        }
        args.fixture.write_text(json.dumps(data, indent=1) + "\n")
        print(f"written {args.fixture}")
        return 0

    _, want = golden.load(args.fixture)
    worst = {"boxes": 0.0, "landmarks": 0.0, "scores": 0.0}
    failed = 0
    for setting, per_frame in found.items():
        per_frame.pop("_threshold")
        for name, faces in per_frame.items():
            try:
                dev = golden.deviations(want[setting][name], faces)
            except AssertionError as e:
                print(f"{setting:<10} {name:<16} MISMATCH: {e}")
                failed += 1
                continue
            worst = {k: max(worst[k], v) for k, v in dev.items()}
            print(f"{setting:<10} {name:<16} {len(faces):>3} faces  max |d| boxes {dev['boxes']:.3g} px, "
                  f"landmarks {dev['landmarks']:.3g} px, scores {dev['scores']:.3g}")
    print("worst: " + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()) + ("" if not failed else f"; {failed} mismatched"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
