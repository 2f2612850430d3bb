"""Videos and streams: FaceDetector.stream and `mtcnn-fast detect VIDEO`."""

import json

import cv2
import numpy as np
import pytest

from mtcnn_fast.cli import main
from support import assert_same


@pytest.fixture(scope="module")
def pan_frames(astronaut):
    """A slow pan over the photo: 8 frames of 320 x 320, 8 px apart."""
    return [np.ascontiguousarray(astronaut[20:340, 8 * k : 8 * k + 320]) for k in range(8)]


@pytest.fixture(scope="module")
def pan_video(tmp_path_factory, pan_frames):
    path = tmp_path_factory.mktemp("video") / "pan.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 320))
    assert writer.isOpened()
    for f in pan_frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_stream_over_a_video_file_finds_the_face_in_every_frame(detector, pan_video):
    seen = list(detector.stream(pan_video))
    assert len(seen) == 8
    for frame, faces in seen:
        assert frame.shape == (320, 320, 3)
        assert len(faces) == 1 and faces.scores[0] > 0.99
        assert_same(faces, detector.detect(frame))
    # The pan moves the face left by 8 px a frame (JPEG-compressed frames and the pyramid grid
    # jitter single steps by a few pixels).
    xs = np.array([faces.boxes[0, 0] for _, faces in seen])
    assert abs(xs[-1] - xs[0] + 56) < 4 and np.all(np.abs(np.diff(xs) + 8) < 5)


def test_stream_over_an_iterable_matches_detect(detector, pan_frames):
    for (frame, faces), original in zip(detector.stream(iter(pan_frames)), pan_frames):
        assert frame is original
        assert_same(faces, detector.detect(original))
    bgr = (np.ascontiguousarray(f[:, :, ::-1]) for f in pan_frames[:2])
    for (_, faces), original in zip(detector.stream(bgr, bgr=True), pan_frames):
        assert_same(faces, detector.detect(original))


def test_stream_on_a_missing_file_is_a_value_error(detector, tmp_path):
    with pytest.raises(ValueError, match="no such video"):
        next(detector.stream(tmp_path / "missing.mp4"))


def test_command_line_on_a_video_writes_json_lines_and_an_annotated_video(pan_video, tmp_path, capsys):
    out, lines = tmp_path / "annotated.avi", tmp_path / "faces.jsonl"
    assert main(["detect", str(pan_video), "--device", "cpu", "--output", str(out), "--jsonl", str(lines)]) == 0
    assert "8 frame(s), 8 face(s)" in capsys.readouterr().out
    records = [json.loads(l) for l in lines.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(8))
    assert all(len(r["faces"]) == 1 for r in records)
    cap = cv2.VideoCapture(str(out))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 8


def test_tracking_follows_the_face_without_p_net(detector, pan_frames, monkeypatch):
    full = [faces for _, faces in detector.stream(pan_frames)]
    calls = []
    real = detector.propose
    monkeypatch.setattr(detector, "propose", lambda img: calls.append(1) or real(img))
    tracked = [faces for _, faces in detector.stream(pan_frames, track=3)]
    assert len(calls) == 2  # frames 0 and 4 run the full cascade; the others only R/O-Net
    from mtcnn_fast.metrics import iou_matrix

    for a, b in zip(full, tracked):
        assert len(b) == 1 and iou_matrix(a.boxes, b.boxes)[0, 0] > 0.8


def test_tracking_falls_back_to_full_detection_when_faces_are_lost(detector, pan_frames):
    blank = np.zeros_like(pan_frames[0])
    frames = [pan_frames[0], blank, pan_frames[1]]
    got = [len(faces) for _, faces in detector.stream(frames, track=5)]
    assert got == [1, 0, 1]
    with pytest.raises(ValueError, match="track"):
        next(detector.stream(frames, track=-1))


def test_stream_reads_an_open_video_capture_and_leaves_it_open(detector, pan_video):
    cap = cv2.VideoCapture(str(pan_video))
    seen = list(detector.stream(cap))
    assert len(seen) == 8 and all(len(faces) == 1 for _, faces in seen)
    by_path = list(detector.stream(pan_video))
    for (frame, faces), (frame2, faces2) in zip(seen, by_path):
        assert np.array_equal(frame, frame2)
        assert_same(faces, faces2)
    assert cap.isOpened()  # the caller's capture: not released behind its back
    cap.release()
    with pytest.raises(ValueError, match="not open"):
        detector.stream(cap)


def test_stream_takes_what_video_capture_takes_image_sequence_pattern(detector, pan_frames, tmp_path):
    for k, f in enumerate(pan_frames[:3]):
        assert cv2.imwrite(str(tmp_path / f"f{k:02d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    seen = list(detector.stream(str(tmp_path / "f%02d.png")))
    assert len(seen) == 3
    for (frame, faces), original in zip(seen, pan_frames):
        assert np.array_equal(frame, original)
        assert_same(faces, detector.detect(original))


def test_a_url_that_cannot_be_reached_is_a_clear_error_quickly(detector):
    import socket
    import time

    with socket.socket() as s:  # a local port that nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url in (f"http://127.0.0.1:{port}/clip.mp4", f"rtsp://127.0.0.1:{port}/live"):
        start = time.monotonic()
        with pytest.raises(ValueError, match="cannot open the video stream") as info:
            detector.stream(url)  # refused when called, before any frame is asked for
        assert url in str(info.value) and time.monotonic() - start < 5


def test_bgr_for_a_decoded_source_is_an_error(detector, pan_video):
    with pytest.raises(ValueError, match="bgr"):
        detector.stream(pan_video, bgr=True)
    with pytest.raises(ValueError, match="bgr"):
        detector.stream(str(pan_video), bgr=True)
    with pytest.raises(TypeError, match="iterable of frames"):
        detector.stream(3.5)
