"""The package surface: a light import (no torch until a detector is made), the public names,
and one image reader and one record rounding shared by the command line and align-dataset."""

import json
import subprocess
import sys

import numpy as np
import pytest


def _fresh(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_import_and_crops_do_not_load_torch(astronaut):
    out = _fresh(
        "import sys, numpy as np\n"
        "import mtcnn_fast\n"
        "from mtcnn_fast import align, crop, Detections, Face\n"
        "img = np.zeros((64, 64, 3), np.uint8)\n"
        "pts = np.array([[20, 25], [44, 25], [32, 36], [22, 46], [42, 46]], np.float64)\n"
        "align(img, pts); crop(img, [[10, 10, 50, 50]], margin_fraction=0.1)\n"
        "print('torch' in sys.modules)\n"
        "from mtcnn_fast import FaceDetector\n"
        "print('torch' in sys.modules, FaceDetector.__module__)\n")
    assert out.split("\n")[:2] == ["False", "True mtcnn_fast.detector"]


def test_public_names():
    import mtcnn_fast

    assert sorted(mtcnn_fast.__all__) == ["Detections", "Face", "FaceDetector", "__version__", "align", "crop"]
    for name in mtcnn_fast.__all__:
        assert getattr(mtcnn_fast, name) is not None
    assert "FaceDetector" in dir(mtcnn_fast)
    with pytest.raises(AttributeError, match="no attribute 'FaceDetecter'"):
        mtcnn_fast.FaceDetecter


def test_one_image_reader(tmp_path):
    from mtcnn_fast import _input, dataset, cli

    assert dataset.decode_image is _input.decode_image and cli.read_rgb is _input.read_rgb
    with pytest.raises(ValueError, match="missing.png"):
        _input.read_rgb(tmp_path / "missing.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.jpg: cannot decode"):
        _input.read_rgb(tmp_path / "bad.jpg")


def test_cli_json_and_manifest_share_one_record_rounding(detector, astronaut, tmp_path, capsys):
    """The detect command's JSON and align-dataset's manifest give a face the same numbers."""
    import shutil

    from mtcnn_fast.cli import main, sample_image_path
    from mtcnn_fast.dataset import align_dataset, read_manifest

    (tmp_path / "in").mkdir()
    shutil.copy(sample_image_path(), tmp_path / "in" / "a.png")
    assert main(["detect", str(tmp_path / "in" / "a.png"), "--json", "--device", "cpu"]) == 0
    (cli_record,) = json.loads(capsys.readouterr().out)
    align_dataset(tmp_path / "in", tmp_path / "out", device="cpu", progress=False)
    (manifest_record,) = read_manifest(tmp_path / "out" / "manifest.jsonl")
    (face,) = manifest_record["faces"]
    assert {k: face[k] for k in ("box", "score", "landmarks")} == cli_record["faces"][0]
    assert cli_record["faces"][0]["box"] == [round(float(v), 2) for v in detector.detect(astronaut).boxes[0]]
    assert np.isclose(cli_record["faces"][0]["score"], detector.detect(astronaut).scores[0], atol=1e-6)
