"""The command line: detect (text, JSON, annotated output, folders) and demo."""

import json
import shutil
import subprocess
import sys

import cv2
import pytest

from mtcnn_fast.cli import main, sample_image_path


def test_detect_json_reports_the_face(capsys):
    assert main(["detect", str(sample_image_path()), "--json", "--device", "cpu"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert (result["width"], result["height"]) == (512, 512)
    (face,) = result["faces"]
    assert face["score"] > 0.99 and len(face["box"]) == 4 and len(face["landmarks"]) == 5


def test_detect_writes_an_annotated_image(tmp_path, capsys):
    out = tmp_path / "annotated.jpg"
    assert main(["detect", str(sample_image_path()), "--output", str(out), "--device", "cpu"]) == 0
    assert "1 face(s)" in capsys.readouterr().out
    img = cv2.imread(str(out))
    assert img is not None and img.shape == (512, 512, 3)


def test_detect_walks_folders_and_reports_unreadable_files(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    shutil.copy(sample_image_path(), tmp_path / "sub" / "a.png")
    shutil.copy(sample_image_path(), tmp_path / "b.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    status = main(["detect", str(tmp_path), "--json", "--device", "cpu", "--output", str(tmp_path / "out")])
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert status == 1 and "broken.jpg" in captured.err
    assert sorted(r["image"].split("/")[-1] for r in results) == ["a.png", "b.png"]
    assert all(len(r["faces"]) == 1 for r in results)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_faces.jpg", "b_faces.jpg"]


def test_bad_settings_exit_with_a_message(capsys):
    assert main(["detect", str(sample_image_path()), "--min-face-size", "-3"]) == 2
    assert "min_face_size" in capsys.readouterr().err


def test_demo_console_script_runs(tmp_path):
    exe = shutil.which("mtcnn-fast", path=str(__import__("pathlib").Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the mtcnn-fast console script is not installed beside this Python")
    out = tmp_path / "demo.jpg"
    run = subprocess.run([exe, "demo", "--output", str(out), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "1 face(s)" in run.stdout and cv2.imread(str(out)) is not None
