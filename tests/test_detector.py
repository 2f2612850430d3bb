"""FaceDetector on the bundled sample photo: the face, its landmarks, batches, empty results,
the BGR argument, devices, and TorchScript versus eager execution."""

import warnings

import numpy as np
import pytest
import torch

from mtcnn_fast import FaceDetector
from support import assert_empty, assert_same

# Read by hand off a 6x enlargement of astronaut.png: pupil centres, nose tip, mouth corners.
ASTRONAUT_LANDMARKS = np.array(
    [[204, 100], [247, 102], [224, 128], [201, 139], [245, 142]], np.float32
)


def test_finds_the_astronauts_face_and_landmarks(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    assert faces.boxes.shape == (1, 4) and faces.landmarks.shape == (1, 5, 2)
    assert faces.scores[0] > 0.99
    x1, y1, x2, y2 = faces.boxes[0]
    # The face spans roughly x 180..268, y 60..174 (hairline to chin).
    assert abs(x1 - 180) < 6 and abs(x2 - 268) < 6 and abs(y1 - 60) < 8 and abs(y2 - 174) < 8
    err = np.linalg.norm(faces.landmarks[0] - ASTRONAUT_LANDMARKS, axis=1)
    assert err.max() < 3.0, err


def test_landmarks_lie_inside_the_box_in_anatomical_order(detector, astronaut):
    faces = detector.detect(astronaut)
    (x1, y1, x2, y2), pts = faces.boxes[0], faces.landmarks[0]
    assert np.all((pts[:, 0] > x1) & (pts[:, 0] < x2) & (pts[:, 1] > y1) & (pts[:, 1] < y2))
    left_eye, right_eye, nose, left_mouth, right_mouth = pts
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_mouth[0] < nose[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


def test_bgr_argument_gives_the_rgb_result(detector, astronaut):
    bgr = np.ascontiguousarray(astronaut[:, :, ::-1])
    assert_same(detector.detect(bgr, bgr=True), detector.detect(astronaut))


def test_frame_without_a_face_gives_empty_arrays(detector, astronaut):
    # The lower right of the photo: helmet and suit, no face.
    assert_empty(detector.detect(np.ascontiguousarray(astronaut[300:, 280:])))


def test_frame_smaller_than_the_minimum_face_gives_empty_arrays(detector, astronaut):
    assert_empty(detector.detect(np.ascontiguousarray(astronaut[100:119, 200:219])))
    assert_empty(detector.detect(np.zeros((1, 1, 3), np.uint8)))


@pytest.mark.exactness
def test_list_of_mixed_frames_gives_what_each_gives_alone(detector, astronaut):
    frames = [
        astronaut,
        np.ascontiguousarray(astronaut[300:, 280:]),
        np.ascontiguousarray(astronaut[20:260, 120:330]),
        np.ascontiguousarray(astronaut[::2, ::2]),
        np.zeros((10, 15, 3), np.uint8),
    ]
    batch = detector.detect(frames)
    assert isinstance(batch, list) and len(batch) == len(frames)
    for frame, got in zip(frames, batch):
        assert_same(got, detector.detect(frame))
    assert [len(f) for f in batch] == [1, 0, 1, 1, 0]
    assert detector.detect([]) == []


def test_crop_shift_moves_detections_by_the_same_offset(detector, astronaut):
    # Cropping by an even offset that keeps the face well inside changes the pyramid grid,
    # so results move by about the offset, not exactly.
    full = detector.detect(astronaut)
    crop = detector.detect(np.ascontiguousarray(astronaut[20:, 40:]))
    shift = np.array([40, 20, 40, 20], np.float32)
    assert np.abs(crop.boxes[0] + shift - full.boxes[0]).max() < 6


@pytest.mark.exactness
def test_torchscript_and_eager_give_identical_detections(astronaut):
    scripted = FaceDetector(device="cpu", jit=True)
    eager = FaceDetector(device="cpu", jit=False)
    assert isinstance(scripted.pnet, torch.jit.ScriptModule)
    assert not isinstance(eager.pnet, torch.jit.ScriptModule)
    assert_same(scripted.detect(astronaut), eager.detect(astronaut))


@pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")  # torch's own notice of jit's end
def test_saved_torchscript_networks_keep_their_parts(tmp_path, detector, astronaut):
    """The networks are TorchScript modules that torch.jit.save writes; R-Net's and O-Net's
    two parts (features, head), which the detector calls on their own, survive the round trip
    and give the whole network's outputs."""
    boxes = detector.propose(astronaut)
    for name, size in (("pnet", 0), ("rnet", 24), ("onet", 48)):
        net = getattr(detector, name)
        path = tmp_path / f"{name}.pt"
        torch.jit.save(net, str(path))
        loaded = torch.jit.load(str(path))
        if not size:
            x = torch.from_numpy(detector._ops.pyramid(astronaut, [0.3])[0][None]).permute(0, 3, 1, 2)
            with torch.inference_mode():
                assert all(torch.equal(a, b) for a, b in zip(net(x), loaded(x)))
            continue
        crops = detector._ops.crop_windows(astronaut, boxes[:40], size)
        x = torch.from_numpy(crops).permute(0, 3, 1, 2)
        with torch.inference_mode():
            whole = net(x)
            parts = loaded.head(torch.cat([loaded.features(x[:16]), loaded.features(x[16:])]))
        assert len(whole) == len(parts)
        assert all(torch.equal(a, b) for a, b in zip(whole, parts)), name


def test_falls_back_to_eager_when_torch_jit_is_missing(monkeypatch, astronaut, detector):
    monkeypatch.delattr(torch, "jit")
    fallback = FaceDetector(device="cpu")
    monkeypatch.undo()
    assert not isinstance(fallback.onet, torch.jit.ScriptModule)
    assert_same(fallback.detect(astronaut), detector.detect(astronaut))


def test_no_torch_jit_warning_reaches_the_user(astronaut):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FaceDetector(device="cpu").detect(astronaut)
    assert caught == [], [str(w.message) for w in caught]


@pytest.mark.exactness
def test_numpy_backend_gives_identical_detections(detector, astronaut):
    assert_same(FaceDetector(device="cpu", backend="numpy").detect(astronaut), detector.detect(astronaut))


def test_custom_weights_folder_loads(tmp_path, astronaut, detector):
    import shutil
    from importlib import resources

    for name in ("pnet", "rnet", "onet"):
        shutil.copy(resources.files("mtcnn_fast") / "weights" / f"{name}.npz", tmp_path)
    assert_same(FaceDetector(device="cpu", weights=tmp_path).detect(astronaut), detector.detect(astronaut))
    with pytest.raises(ValueError, match="folder"):
        FaceDetector(device="cpu", weights=tmp_path / "missing")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_face_size": 0},
        {"min_face_size": float("nan")},
        {"thresholds": (0.6, 0.7)},
        {"thresholds": (0.6, 0.7, 1.5)},
        {"scale_factor": 1.0},
        {"scale_factor": 0.99999},  # refused at construction, not at the first detect
        {"nms_thresholds": (0.5, 0.7, 0.7, 1.2)},
        {"device": "tpu"},
        {"backend": "fortran"},
    ],
)
def test_bad_settings_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        FaceDetector(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_a_gpu_is_an_error_not_a_silent_cpu_fallback():
    with pytest.raises(ValueError, match="CUDA is not available"):
        FaceDetector(device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        FaceDetector(device="cuda:0")
    assert FaceDetector(device="auto").device.type == "cpu"


@pytest.mark.parametrize(
    "frame,exc",
    [
        (None, TypeError),
        ([[1, 2, 3]], TypeError),
        (np.zeros((10, 10, 3), np.float32), TypeError),
        (np.zeros((10, 10, 2), np.uint8), ValueError),
        (np.zeros((3, 10, 10), np.uint8), ValueError),
        (np.zeros((0, 10, 3), np.uint8), ValueError),
    ],
)
def test_bad_frames_raise_clear_errors(detector, frame, exc):
    with pytest.raises(exc):
        detector.detect(frame)


def test_a_list_with_one_bad_frame_names_it(detector, astronaut):
    with pytest.raises(TypeError, match=r"frames\[1\]"):
        detector.detect([astronaut, None])


def test_channels_first_error_says_what_to_do(detector):
    with pytest.raises(ValueError, match="transpose"):
        detector.detect(np.zeros((3, 40, 50), np.uint8))


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_a_min_face_size_that_would_exhaust_memory_is_refused_per_frame(backend):
    # min_face_size 0.001 is a valid number, but on a 64 x 64 frame it asks for a 768,000 x 768,000
    # first pyramid level (6.4 TiB): a ValueError naming the setting, not a MemoryError or an
    # out-of-memory kill. The same detector still runs on a frame small enough for the setting.
    det = FaceDetector(device="cpu", min_face_size=0.001, backend=backend)
    with pytest.raises(ValueError, match="min_face_size 0.001"):
        det.detect(np.zeros((64, 64, 3), np.uint8))
    tiny = FaceDetector(device="cpu", min_face_size=0.5, backend=backend)
    assert tiny.detect(np.zeros((12, 12, 3), np.uint8)).boxes.shape == (0, 4)


def test_settings_take_numpy_scalars(detector, astronaut):
    # Settings often come out of numpy (a grid search, a config array): numpy numbers are numbers.
    det = FaceDetector(device="cpu", min_face_size=np.float32(20), thresholds=np.array([0.6, 0.7, 0.7], np.float32),
                       scale_factor=np.float64(0.709))
    assert det.min_face_size == 20.0 and type(det.min_face_size) is float
    assert det.thresholds == tuple(float(t) for t in np.array([0.6, 0.7, 0.7], np.float32))
    assert_same(det.detect(astronaut), FaceDetector(device="cpu", thresholds=det.thresholds).detect(astronaut))
    assert type(FaceDetector(device="cpu", min_face_size=np.int64(30)).min_face_size) is float
    frames = [astronaut, astronaut[:, ::-1].copy(), astronaut]
    tracked = [faces for _, faces in detector.stream(frames, track=np.int64(1))]
    assert len(tracked) == 3 and all(len(f) == 1 for f in tracked)


@pytest.mark.parametrize("kwargs", [{"min_face_size": "20"}, {"min_face_size": True},
                                    {"thresholds": ("0.6", 0.7, 0.7)}, {"thresholds": 0.6},
                                    {"scale_factor": "0.709"}])
def test_settings_that_are_not_numbers_raise_type_error(kwargs):
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        FaceDetector(device="cpu", **kwargs)
