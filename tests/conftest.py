import json
import os

import numpy as np
import pytest

from hypothesis import settings

from support import WIDER_VAL, read_rgb

# "ci": quick property tests; "fuzz": the long run of scripts/sanitize.sh.
settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("fuzz", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from importlib import resources

    return read_rgb(resources.files("mtcnn_fast") / "data" / "astronaut.png")


@pytest.fixture(scope="session")
def detector():
    from mtcnn_fast import FaceDetector

    return FaceDetector(device="cpu")


@pytest.fixture(scope="session")
def wider_val():
    """Records of ../shared/data/wider_val_dev, with a loader; skips when the data is absent."""
    ann = WIDER_VAL / "annotations.jsonl"
    if not ann.is_file():
        pytest.skip(f"needs the shared WIDER FACE subset at {WIDER_VAL} (not present)")
    return [json.loads(line) for line in ann.read_text().splitlines() if line.strip()]
