"""The command line: detect (text, JSON, annotated output, folders) and demo."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

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
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*"))
    assert written == ["b_faces.png", "sub/a_faces.png"]


def test_bad_settings_exit_with_a_message(capsys):
    assert main(["detect", str(sample_image_path()), "--min-face-size", "-3"]) == 2
    assert "min_face_size" in capsys.readouterr().err
    assert main(["detect", str(sample_image_path()), "--device", "cpu", "--precision", "fnet=bfloat16"]) == 2
    assert "unknown network(s) ['fnet']" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: a malformed pair
        main(["detect", str(sample_image_path()), "--precision", "onet=bfloat16,onet=float32"])
    assert "each network once" in capsys.readouterr().err


def test_precision_per_network_on_the_command_line(capsys):
    """--precision NET=NAME pairs reach the detector as a mapping (float32 everywhere here, so that
    it runs on any CPU: the names are the detector's to check)."""
    assert main(["detect", str(sample_image_path()), "--device", "cpu", "--json",
                 "--precision", "onet=float32, rnet=float32"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["faces"]
    assert main(["detect", str(sample_image_path()), "--device", "cpu", "--precision", "rnet=float16"]) == 2
    assert "'float16' runs on CUDA only" in capsys.readouterr().err


def test_demo_console_script_runs(tmp_path):
    exe = shutil.which("mtcnn-fast", path=str(__import__("pathlib").Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the mtcnn-fast console script is not installed beside this Python")
    out = tmp_path / "demo.jpg"
    run = subprocess.run([exe, "demo", "--output", str(out), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "1 face(s)" in run.stdout and cv2.imread(str(out)) is not None


def _tree(root, astronaut):
    """in/a.jpg, in/x/a.png and in/y/a.png (issue #17), each a different cut of the photo so that
    every output can be matched to its input by its size; and in/b.jpg beside in/b.png."""
    cuts = {"a.jpg": astronaut, "x/a.png": astronaut[:400, :300], "y/a.png": astronaut[:300, :400],
            "b.jpg": astronaut[50:450, 50:450], "b.png": astronaut[:448, 64:]}
    for rel, rgb in cuts.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / rel), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return {rel: rgb.shape for rel, rgb in cuts.items()}


def test_detect_output_mirrors_the_tree_and_never_overwrites(tmp_path, astronaut, capsys):
    shapes = _tree(tmp_path / "in", astronaut)
    out = tmp_path / "out"
    argv = ["detect", str(tmp_path / "in"), "--output", str(out), "--device", "cpu"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    expected = {"a_faces.jpg": "a.jpg", "x/a_faces.png": "x/a.png", "y/a_faces.png": "y/a.png",
                "b_faces.jpg": "b.jpg", "b_faces.png": "b.png"}
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*"))
    assert written == sorted(expected)
    for name, rel in expected.items():
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape == shapes[rel], name
        assert f"written to {out / name}" in said  # each output is reported where it went
    before = {name: (out / name).read_bytes() for name in expected}

    # A second run refuses before writing anything, and says how to go on.
    (out / "x" / "a_faces.png").write_bytes(b"mine")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "exist" in err
    assert (out / "x" / "a_faces.png").read_bytes() == b"mine"
    assert all((out / n).read_bytes() == before[n] for n in expected if n != "x/a_faces.png")
    # Told to, it replaces them.
    assert main(argv + ["--overwrite"]) == 0
    assert cv2.imread(str(out / "x" / "a_faces.png")).shape == shapes["x/a.png"]


def test_detect_output_refuses_clashing_inputs_and_existing_files(tmp_path, astronaut, capsys):
    _tree(tmp_path / "in", astronaut)
    x, y = tmp_path / "in" / "x" / "a.png", tmp_path / "in" / "y" / "a.png"
    # Two files given by name with the same name: no silent loss, an error before any work.
    assert main(["detect", str(x), str(y), "--output", str(tmp_path / "o1"), "--device", "cpu"]) == 2
    assert "would both be written" in capsys.readouterr().err and not (tmp_path / "o1").exists()
    # One input, one output file: an existing file is kept unless --overwrite.
    single = tmp_path / "single.jpg"
    single.write_bytes(b"mine")
    assert main(["detect", str(x), "--output", str(single), "--device", "cpu"]) == 2
    assert "--overwrite" in capsys.readouterr().err and single.read_bytes() == b"mine"
    # --jsonl never truncates a file that exists.
    lines = tmp_path / "faces.jsonl"
    lines.write_text("mine\n")
    assert main(["detect", str(x), "--jsonl", str(lines), "--device", "cpu"]) == 2
    assert lines.read_text() == "mine\n"
    # The output folder never is an input folder.
    assert main(["detect", str(tmp_path / "in"), "--output", str(tmp_path / "in"), "--device", "cpu"]) == 2
    assert "input folder" in capsys.readouterr().err


def test_output_names_of_videos_with_one_stem_do_not_clash(tmp_path):
    from mtcnn_fast.cli import plan_outputs

    inputs = [(tmp_path / "c.mp4", Path("c.mp4")), (tmp_path / "c.mov", Path("c.mov")),
              (tmp_path / "c.avi", Path("c.avi")), (tmp_path / "d" / "c.mp4", Path("d/c.mp4"))]
    plan = plan_outputs(inputs, tmp_path / "out")
    assert {f.relative_to(tmp_path).as_posix(): t.relative_to(tmp_path / "out").as_posix()
            for f, t in plan.items()} == {"c.mp4": "c.mp4_faces.mp4", "c.mov": "c.mov_faces.mp4",
                                          "c.avi": "c_faces.avi", "d/c.mp4": "d/c_faces.mp4"}


def test_demo_does_not_overwrite(tmp_path, capsys):
    out = tmp_path / "demo.jpg"
    out.write_bytes(b"mine")
    assert main(["demo", "--output", str(out), "--device", "cpu"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"mine"
    assert main(["demo", "--output", str(out), "--device", "cpu", "--overwrite"]) == 0
    assert cv2.imread(str(out)).shape == (512, 512, 3)


def test_an_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    shutil.copy(sample_image_path(), tmp_path / "in" / "a.png")
    argv = ["detect", str(tmp_path / "in"), "--output", str(tmp_path / "in" / "annotated"), "--device", "cpu"]
    assert main(argv) == 0
    assert main(argv + ["--overwrite"]) == 0  # the annotated copy is not an input the second time
    out = capsys.readouterr().out
    assert out.count("face(s)") == 2 and "a_faces_faces" not in out
    assert sorted(p.name for p in (tmp_path / "in").rglob("*.png")) == ["a.png", "a_faces.png"]


def test_one_file_to_an_output_without_a_suffix_goes_into_a_folder(tmp_path, capsys):
    out = tmp_path / "annotated"
    assert main(["detect", str(sample_image_path()), "--output", str(out), "--device", "cpu"]) == 0
    assert f"written to {out / 'astronaut_faces.png'}" in capsys.readouterr().out
    assert cv2.imread(str(out / "astronaut_faces.png")).shape == (512, 512, 3)


def test_eval_does_not_overwrite_saved_predictions_or_plots(tmp_path, capsys):
    saved = tmp_path / "preds.jsonl"
    saved.write_text("mine\n")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "pr_hard.png").write_bytes(b"mine")
    # Refused before any data is read or any face detected (the data folders here do not exist).
    assert main(["eval", "landmarks", "--file", str(tmp_path / "none.jsonl"), "--save-predictions", str(saved)]) == 2
    assert "--overwrite" in capsys.readouterr().err and saved.read_text() == "mine\n"
    assert main(["eval", "widerface", "--root", str(tmp_path / "none"), "--plot-dir", str(plots)]) == 2
    assert "pr_hard.png" in capsys.readouterr().err and (plots / "pr_hard.png").read_bytes() == b"mine"
