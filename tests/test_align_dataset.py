"""align_dataset / mtcnn-fast align-dataset: crops and manifest for a folder tree of real photos,
resume after an interruption, worker processes and the Ray path giving identical outputs."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import WIDER_VAL, read_rgb

from mtcnn_fast import FaceDetector, align, crop
from mtcnn_fast import _dataset_records as dataset_files
from mtcnn_fast import _local_runner
from mtcnn_fast.align import ARCFACE_TEMPLATE, similarity_transform
from mtcnn_fast.cli import main, sample_image_path
from mtcnn_fast.dataset import align_dataset, decode_image, list_images, read_manifest

# The settings of every run compared with the reference run (margin crops kept small: quick).
RUN = {"margin": 0.25, "margin_size": 64, "device": "cpu", "threads": 1, "progress": False}
BROKEN = {"broken/corrupt.jpg": "cannot decode an image (3000 bytes)",
          "broken/empty.png": "empty file (0 bytes)"}
ROTATION = 20.0


def _wider_photos(count=3):
    """A few WIDER FACE photos with some faces of 40 px or more (none when ../shared is absent)."""
    ann = WIDER_VAL / "annotations.jsonl"
    if not ann.is_file():
        return []
    chosen = []
    for line in ann.read_text().splitlines():
        rec = json.loads(line)
        sides = [x2 - x1 for x1, _, x2, _ in rec["boxes"]]
        if 1 <= len(sides) <= 6 and max(sides) >= 40:
            chosen.append(WIDER_VAL / rec["image"])
        if len(chosen) == count:
            break
    return chosen


def _rotate(rgb, degrees):
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A nested tree of real photos: the sample portrait as PNG, JPEG, grayscale, rotated and
    under an upper-case suffix, the same stem with two suffixes, a few WIDER FACE photos when
    ../shared is there, a corrupt .jpg, an empty .png and a text file to be ignored."""
    root = tmp_path_factory.mktemp("photos")
    rgb = read_rgb(sample_image_path())
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    (root / "people" / "deep").mkdir(parents=True)
    (root / "broken").mkdir()
    shutil.copy(sample_image_path(), root / "astronaut.png")
    shutil.copy(sample_image_path(), root / "people" / "astronaut.png")
    cv2.imwrite(str(root / "people" / "astronaut.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cv2.imwrite(str(root / "people" / "SMALL.JPG"), cv2.resize(bgr, (320, 320), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(root / "people" / "deep" / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(root / "people" / "deep" / "rotated.jpg"), _rotate(bgr, ROTATION))
    for path in _wider_photos():
        target = root / "wider" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (root / "broken" / "corrupt.jpg").write_bytes(np.random.default_rng(8).bytes(3000))
    (root / "broken" / "empty.png").write_bytes(b"")
    (root / "people" / "notes.txt").write_text("not an image\n")
    return root


@pytest.fixture(scope="module")
def reference(tree, tmp_path_factory):
    """One clean single-process run: (summary, output folder)."""
    out = tmp_path_factory.mktemp("reference")
    return align_dataset(tree, out, **RUN), out


def _files(out: Path) -> dict:
    """Every file under an output folder: relative path -> bytes."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _assert_same_outputs(out: Path, ref: Path):
    assert (out / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()
    got, want = _files(out), _files(ref)
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []


@pytest.mark.exactness
def test_every_image_is_in_the_manifest_with_crops_for_every_face(tree, reference):
    summary, out = reference
    records = list(read_manifest(out / "manifest.jsonl"))
    images = [p.relative_to(tree).as_posix() for p in sorted(tree.rglob("*"))
              if p.is_file() and p.suffix.lower() in {".png", ".jpg"}]
    assert [r["image"] for r in records] == sorted(images) == list_images(tree)
    assert "people/notes.txt" not in images and "people/SMALL.JPG" in images
    assert {r["image"]: r["error"] for r in records if "error" in r} == BROKEN == summary.errors
    assert (summary.images, summary.processed, summary.skipped, summary.failed) == (len(images), len(images), 0, 2)
    assert summary.faces == sum(len(r.get("faces", ())) for r in records)

    det = FaceDetector(device="cpu")
    listed = {"manifest.jsonl", "settings.json"}
    for rec in records:
        listed.add(f".records/{rec['image']}.json")
        if "error" in rec:
            continue
        rgb = read_rgb(tree / rec["image"])
        # The dataset decoder gives exactly read_rgb's pixels.
        assert np.array_equal(decode_image((tree / rec["image"]).read_bytes()), rgb)
        assert (rec["width"], rec["height"]) == (rgb.shape[1], rgb.shape[0])
        faces = det.detect(rgb)
        assert len(rec["faces"]) == len(faces)
        if rec["image"].startswith(("astronaut", "people/")):
            assert len(faces) == 1 and faces.scores[0] > 0.99, rec["image"]
        aligned = align(rgb, faces.landmarks)
        squares = crop(rgb, faces.boxes, RUN["margin"], RUN["margin_size"])
        stem = rec["image"]
        for k, face in enumerate(rec["faces"]):
            assert face["aligned"] == f"aligned/{stem}_{k}.png" and face["margin"] == f"margin/{stem}_{k}.png"
            listed.update((face["aligned"], face["margin"]))
            assert np.allclose(face["box"], faces.boxes[k], atol=0.006)
            assert np.allclose(face["landmarks"], faces.landmarks[k], atol=0.006)
            assert abs(face["score"] - faces.scores[k]) < 1e-6
            a, m = read_rgb(out / face["aligned"]), read_rgb(out / face["margin"])
            assert a.shape == (112, 112, 3) and m.shape == (64, 64, 3)
            assert np.array_equal(a, aligned[k]) and np.array_equal(m, squares[k])
    # Nothing else in the output folder: no stray crops, no temporary files.
    assert set(_files(out)) == listed
    # Same photo, two suffixes: two images, two sets of crops.
    assert (out / "aligned/people/astronaut.png_0.png").is_file()
    assert (out / "aligned/people/astronaut.jpg_0.png").is_file()


def test_wider_photos_are_part_of_the_tree(tree, reference):
    if not (WIDER_VAL / "annotations.jsonl").is_file():
        pytest.skip(f"needs the shared WIDER FACE subset at {WIDER_VAL} (not present); "
                    "the tree then holds the sample photo only")
    records = [r for r in read_manifest(reference[1] / "manifest.jsonl") if r["image"].startswith("wider/")]
    assert len(records) == 3
    assert all(len(r["faces"]) >= 1 and r["width"] >= 500 for r in records)


def test_aligned_eyes_land_on_the_template(tree, reference):
    """The rotated portrait: its eye line is tilted by the rotation, and its aligned crop puts
    the eyes back on the template's (from the landmarks, and as found again in the pixels)."""
    out = reference[1]
    recs = {r["image"]: r for r in read_manifest(out / "manifest.jsonl")}
    det = FaceDetector(device="cpu")
    for name in ("astronaut.png", "people/deep/rotated.jpg", "people/deep/gray.png"):
        (face,) = recs[name]["faces"]
        pts = np.array(face["landmarks"])
        (dx, dy) = pts[1] - pts[0]
        tilt = np.degrees(np.arctan2(dy, dx))
        expected_tilt = -ROTATION if name.endswith("rotated.jpg") else 0.0
        assert abs(tilt - expected_tilt) < 6, (name, tilt)
        m = similarity_transform(pts, ARCFACE_TEMPLATE)
        moved = pts @ m[:, :2].T + m[:, 2]
        # Level again, and within 3 px of the template's eyes (a similarity cannot fit all five
        # points of a real, smiling face: the least-squares residual is spread over them).
        (mx, my), (tx, ty) = moved[1] - moved[0], ARCFACE_TEMPLATE[1] - ARCFACE_TEMPLATE[0]
        assert abs(np.degrees(np.arctan2(my, mx) - np.arctan2(ty, tx))) < 2, name
        assert np.linalg.norm(moved[:2] - ARCFACE_TEMPLATE[:2], axis=1).max() < 3.0, name
        canvas = np.zeros((224, 224, 3), np.uint8)
        canvas[56:168, 56:168] = read_rgb(out / face["aligned"])
        again = det.detect(canvas)
        assert len(again) == 1, name
        eyes = again.landmarks[0][:2] - 56
        assert np.linalg.norm(eyes - moved[:2], axis=1).max() < 2.0, (name, eyes, moved[:2])


class Interrupted(Exception):
    pass


def _stat(path: Path):
    s = path.stat()
    return s.st_ino, s.st_mtime_ns


def test_resume_after_an_interruption(tree, reference, tmp_path, monkeypatch):
    ref_summary, ref = reference
    out = tmp_path / "out"
    real_write = _local_runner._write_image
    victim = "people/deep/gray.png"

    def interrupted_write(out_dir, rel, text, files):
        if rel != victim:
            return real_write(out_dir, rel, text, files)
        # Killed half-way through this image: its crops written, a temporary record left.
        for name, pixels in files:
            dataset_files._atomic_write(Path(out_dir, name), dataset_files._encode_png(pixels))
        record = dataset_files._record_path(out_dir, rel)
        record.parent.mkdir(parents=True, exist_ok=True)
        (record.parent / f".{record.name}.{'0' * 32}.tmp").write_text(text[:10])
        raise Interrupted()

    # The local runner's writer thread is what writes an image.
    monkeypatch.setattr(_local_runner, "_write_image", interrupted_write)
    with pytest.raises(Interrupted):
        align_dataset(tree, out, **RUN)
    monkeypatch.setattr(_local_runner, "_write_image", real_write)
    assert not (out / "manifest.jsonl").exists()
    assert (out / f"aligned/{victim}_0.png").is_file() and not dataset_files._record_path(out, victim).exists()

    # More damage: a finished image loses a crop, a stray temporary file, a truncated manifest.
    done = sorted(r for r in list_images(tree) if dataset_files._read_record(str(out), r) is not None)
    assert 0 < len(done) < ref_summary.images - 2
    damaged = done[0]
    (out / f"aligned/{damaged}_0.png").unlink()
    (out / "aligned" / f".x.png.{'a' * 32}.tmp").write_bytes(b"partial")
    (out / "manifest.jsonl").write_bytes((ref / "manifest.jsonl").read_bytes()[:200])
    untouched = {r: _stat(dataset_files._record_path(out, r)) for r in done[1:]}

    calls = []
    real_detect = FaceDetector.detect
    monkeypatch.setattr(FaceDetector, "detect", lambda self, *a, **k: calls.append(1) or real_detect(self, *a, **k))
    summary = align_dataset(tree, out, **RUN)
    todo = ref_summary.images - len(done) + 1  # the rest, and the damaged one
    assert (summary.processed, summary.skipped) == (todo, len(done) - 1)
    assert len(calls) == todo - 2  # the two broken files are read again but never detected
    assert {r: _stat(dataset_files._record_path(out, r)) for r in done[1:]} == untouched
    _assert_same_outputs(out, ref)

    # A finished folder: nothing detected or rewritten, the same manifest again.
    crops = {p: _stat(p) for p in (out / "aligned").rglob("*.png")}
    calls.clear()
    summary = align_dataset(tree, out, **RUN)
    assert (summary.processed, summary.skipped, len(calls)) == (2, ref_summary.images - 2, 0)
    assert {p: _stat(p) for p in crops} == crops
    _assert_same_outputs(out, ref)


def test_other_settings_in_the_same_folder_are_refused(tree, reference):
    with pytest.raises(ValueError, match="other settings.*size"):
        align_dataset(tree, reference[1], **{**RUN, "size": 96})


@pytest.mark.exactness
def test_two_worker_processes_give_identical_outputs(tree, reference, tmp_path):
    summary = align_dataset(tree, tmp_path / "out", workers=2, **RUN)
    assert summary.processed == reference[0].images
    _assert_same_outputs(tmp_path / "out", reference[1])


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
def test_ray_path_gives_identical_outputs(tree, reference, tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'mtcnn-fast[ray]')")
    import ray

    ray.init(num_cpus=2)
    try:
        # Two one-CPU actors would leave no CPU for reading and writing: refused, not hung.
        with pytest.raises(ValueError, match="2 CPU"):
            align_dataset(tree, tmp_path / "refused", workers=2, ray=True, **RUN)
        summary = align_dataset(tree, tmp_path / "out", workers=1, ray=True, **RUN)
    finally:
        ray.shutdown()
    assert (summary.processed, summary.failed) == (reference[0].images, 2)
    _assert_same_outputs(tmp_path / "out", reference[1])


def test_ray_path_without_ray_says_how_to_install_it(tree, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(ImportError, match=r"mtcnn-fast\[ray\]"):
        align_dataset(tree, tmp_path / "out", ray=True, **RUN)
    assert main(["align-dataset", str(tree), str(tmp_path / "out"), "--ray", "--device", "cpu"]) == 2


def test_importing_the_package_does_not_import_ray():
    code = ("import sys, mtcnn_fast, mtcnn_fast.dataset, mtcnn_fast.cli; "
            "print('ray' in sys.modules, 'mtcnn_fast._ray_runner' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False False"


def test_command_line_writes_the_same_outputs(tree, reference, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["align-dataset", str(tree), str(out), "--margin", "0.25", "--margin-size", "64",
                   "--device", "cpu", "--threads", "1", "--quiet"])
    captured = capsys.readouterr()
    assert status == 1  # two unreadable images
    assert "broken/corrupt.jpg" in captured.err and "broken/empty.png" in captured.err
    assert f"{reference[0].images} image(s)" in captured.out
    _assert_same_outputs(out, reference[1])


def test_command_line_honours_weights(tree, tmp_path, capsys):
    """--weights: a copy of the shipped weights whose O-Net says "no face" to everything."""
    from mtcnn_fast.nets import weights_dir

    weights = tmp_path / "weights"
    shutil.copytree(weights_dir(), weights)
    with np.load(weights / "onet.npz") as z:
        params = {k: z[k] for k in z.files}
    params["fc6_1.bias"] = np.array([50.0, -50.0], np.float32)
    np.savez(weights / "onet.npz", **params)
    out = tmp_path / "out"
    assert main(["align-dataset", str(tree), str(out), "--weights", str(weights), "--device", "cpu",
                 "--threads", "1", "--quiet"]) == 1
    records = list(read_manifest(out / "manifest.jsonl"))
    assert len(records) == len(list_images(tree))
    assert all(r.get("faces", []) == [] for r in records)
    assert not (out / "aligned").exists()
    assert main(["align-dataset", str(tree), str(tmp_path / "o2"), "--weights", str(tmp_path / "none")]) == 2
    assert "weights" in capsys.readouterr().err


def test_output_inside_the_input_is_left_out_of_the_walk(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(sample_image_path(), photos / "a.png")
    first = align_dataset(photos, photos / "faces", **RUN)
    again = align_dataset(photos, photos / "faces", **RUN)
    assert (first.images, first.faces, again.images, again.skipped) == (1, 1, 1, 1)
    assert [r["image"] for r in read_manifest(photos / "faces" / "manifest.jsonl")] == ["a.png"]


def test_an_empty_folder_gives_an_empty_manifest(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    summary = align_dataset(tmp_path / "in", tmp_path / "out", **RUN)
    assert (summary.images, summary.faces) == (0, 0)
    assert (tmp_path / "out" / "manifest.jsonl").read_bytes() == b""
    assert main(["align-dataset", str(tmp_path / "in"), str(tmp_path / "out2"), "--quiet"]) == 2
    assert "no images" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ({"in_dir": "missing"}, "does not exist"),
    ({"in_dir": "file"}, "not a folder"),
    ({"out_dir": "file"}, "not a folder"),
    ({"out_dir": "in"}, "must differ"),
    ({"workers": 0}, "workers"),
    ({"workers": 1.5}, "workers"),
    ({"threads": 0}, "threads"),
    ({"io_threads": 0}, "io_threads"),
    ({"size": 4}, "size"),
    ({"margin": -0.1}, "margin"),
    ({"margin": float("nan")}, "margin"),
    ({"margin_size": 0}, "margin_size"),
    ({"min_face_size": -3}, "min_face_size"),
    ({"thresholds": (0.6, 0.7)}, "thresholds"),
    ({"device": "tpu"}, "device"),
    ({"precision": "int8"}, "precision"),
    ({"ray": ""}, "ray"),
])
def test_bad_arguments_raise_value_error(tmp_path, change, message):
    (tmp_path / "in").mkdir()
    (tmp_path / "file").write_text("x")
    args = {"in_dir": "in", "out_dir": "out", **change}
    in_dir, out_dir = tmp_path / args.pop("in_dir"), tmp_path / args.pop("out_dir")
    with pytest.raises(ValueError, match=message):
        align_dataset(in_dir, out_dir, progress=False, **args)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_bad_command_line_arguments_exit_with_status_2(tmp_path, capsys):
    assert main(["align-dataset", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "in").mkdir()
    assert main(["align-dataset", str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "0"]) == 2
    assert "workers" in capsys.readouterr().err


def test_decode_image_refuses_what_is_not_an_image():
    with pytest.raises(ValueError, match="empty"):
        decode_image(b"")
    with pytest.raises(ValueError, match="cannot decode"):
        decode_image(os.urandom(100))
