"""The golden fixture: multi-face frames composed from the bundled photo (tests/golden/golden_frames.py)
and what the detector finds in them (tests/golden/expected.json, written by make_golden.py).
Runs everywhere (no ../shared); a change that moves any face, its score or a landmark by more
than the tolerance, or finds one more or one fewer, fails here.

Tolerance: COORD_TOL = 1e-3 px for boxes and landmarks, SCORE_TOL = 1e-5 for scores. Measured
against the fixture (written on a 2-core Intel Xeon with AVX-512 and AMX, torch 2.13.0 CPU build)
under each dispatch setting of .ci/run on that CPU, largest absolute deviation over all 50 faces
(defaults on four frames, the widerface preset on one):
    MKL_ENABLE_INSTRUCTIONS=AVX2       0 (identical bits)
    MKL_ENABLE_INSTRUCTIONS=AVX512     0 (identical bits)
    ONEDNN_MAX_CPU_ISA=SSE41           boxes 6.1e-5 px, landmarks 1.22e-4 px, scores 1.01e-6
    ONEDNN_MAX_CPU_ISA=AVX2            boxes 1.22e-4 px, landmarks 1.22e-4 px, scores 2.1e-7
    ONEDNN_MAX_CPU_ISA=AVX512_CORE     0 (identical bits)
Face counts never changed. The tolerances are about 8x (coordinates) and 10x (scores) the
largest of these. By construction no final score lies within 1e-3 of the O-Net threshold (0.7
for the defaults, 0.4 for widerface; checked below), so no face sits where a last-bit difference
could drop it. P-Net's and R-Net's scores are not visible in the output; none of their windows
flickered under the five settings (the counts and coordinates above).
"""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mtcnn_fast import FaceDetector

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))

import golden_frames as golden  # noqa: E402
from make_golden import MARGIN, SETTINGS  # noqa: E402

HEADER, EXPECTED = golden.load()
CASES = [(setting, name) for setting, (_, names) in SETTINGS.items() for name in names]


@pytest.fixture(scope="module")
def frames():
    return golden.frames()


@pytest.fixture(scope="module")
def detectors():
    return {setting: FaceDetector.preset(preset, device="cpu") for setting, (preset, _) in SETTINGS.items()}


def test_fixture_covers_the_recipe_with_many_faces():
    assert sorted(EXPECTED) == sorted(SETTINGS)
    for setting, (_, names) in SETTINGS.items():
        assert sorted(EXPECTED[setting]) == sorted(names)
    counts = {name: len(EXPECTED["defaults"][name].scores) for name in golden.NAMES}
    # every frame holds several faces of different sizes; the benchmark sizes are among them
    assert min(counts.values()) >= 5, counts
    assert {"640x480", "1280x720", "1920x1080"} <= set(counts)
    widths = np.concatenate([e.boxes[:, 2] - e.boxes[:, 0] for e in EXPECTED["defaults"].values()])
    assert widths.min() < 30 and widths.max() > 100


def test_frames_are_the_recorded_ones(frames):
    """The recipe still makes the frames the fixture was written for (else the fixture is stale:
    rerun make_golden.py --write and say why in the commit)."""
    for name, img in frames.items():
        rec = HEADER["frames"][name]
        assert img.shape == (rec["size"][1], rec["size"][0], 3) and img.dtype == np.uint8
        assert golden.digest(img) == rec["sha256"], name


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_no_recorded_score_is_near_the_onet_threshold(detectors, setting):
    threshold = detectors[setting].thresholds[2]
    for name, want in EXPECTED[setting].items():
        assert np.abs(want.scores.astype(np.float64) - threshold).min() >= MARGIN, (setting, name)


@pytest.mark.exactness
@pytest.mark.parametrize("setting, name", CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_detections_match_the_fixture(detectors, frames, setting, name):
    got = detectors[setting].detect(frames[name])
    golden.check(EXPECTED[setting][name], got, f"{setting} {name}")


@pytest.mark.exactness
def test_a_batch_of_the_frames_matches_the_fixture(detectors, frames):
    """The batched path (R-Net and O-Net shared across frames) gives the same faces."""
    got = detectors["defaults"].detect([frames[n] for n in golden.NAMES])
    for name, faces in zip(golden.NAMES, got):
        golden.check(EXPECTED["defaults"][name], faces, name)


def test_a_small_change_to_the_networks_fails_the_check(tmp_path, frames):
    """O-Net's box regression bias nudged by 1e-4 (boxes move by 1e-4 of their size, 0.003 px
    and more here) is caught; so is a face lost to a higher threshold."""
    from mtcnn_fast.nets import weights_dir

    for f in weights_dir(None).glob("*.npz"):
        shutil.copy(f, tmp_path / f.name)
    onet = dict(np.load(tmp_path / "onet.npz"))
    onet["fc6_2.bias"] = onet["fc6_2.bias"] + np.float32(1e-4)
    np.savez(tmp_path / "onet.npz", **onet)
    want = EXPECTED["defaults"]["640x480"]
    nudged = FaceDetector(device="cpu", weights=tmp_path).detect(frames["640x480"])
    with pytest.raises(AssertionError, match="boxes off by"):
        golden.check(want, nudged, "nudged")
    strict = FaceDetector(device="cpu", thresholds=(0.6, 0.7, float(np.median(want.scores)))).detect(frames["640x480"])
    with pytest.raises(AssertionError, match="faces detected"):
        golden.check(want, strict, "strict")


def test_the_check_pairs_faces_whatever_their_order():
    want = EXPECTED["defaults"]["1280x720"]
    order = np.arange(len(want.scores))[::-1]

    class Faces:
        boxes, scores, landmarks = want.boxes[order], want.scores[order], want.landmarks[order]

        def __len__(self):
            return len(self.scores)

    assert golden.check(want, Faces(), "reversed") == {"boxes": 0.0, "landmarks": 0.0, "scores": 0.0}
    Faces.landmarks = Faces.landmarks.copy()
    Faces.landmarks[2, 3, 1] += 2 * golden.COORD_TOL
    with pytest.raises(AssertionError, match="landmarks off by"):
        golden.check(want, Faces(), "moved")
