"""The speed protocol that every peer runner follows (speed_protocol.py): what it calls, how it
counts faces and divides batched calls per frame, and mtcnn-fast's runner end to end."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import speed_protocol

HERE = Path(__file__).resolve().parent


def options(**kw):
    ap = argparse.ArgumentParser()
    speed_protocol.add_speed_options(ap)
    speed_protocol.add_device_options(ap)
    args = ap.parse_args(["--threads", "1"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_single_frames_each_called_twice_to_warm_up_then_once_per_round():
    calls = []

    def detect(img):
        calls.append(img.shape)
        return [0, 0]  # two faces

    results = speed_protocol.speed(detect, "fake", options(sizes=["640x480"], repeat=3))
    assert calls == [(480, 640, 3)] * (3 * 2 + 3 * 3)  # 3 frames: 2 warm-ups, then 3 rounds
    assert results["640x480"]["faces"] == 3 * 2  # the faces of the first round only


def test_batches_are_lists_of_same_size_frames_timed_per_frame(monkeypatch):
    batches = []

    def detect_many(group):
        batches.append([f.shape for f in group])
        return len(group)  # one face per frame

    ticks = iter(range(1000))
    monkeypatch.setattr(speed_protocol.time, "perf_counter", lambda: next(ticks) * 0.8)
    results = speed_protocol.speed(None, "fake", options(sizes=["640x480", "wider"], repeat=2, batch=4),
                                   detect_many=detect_many)
    assert batches == [[(480, 640, 3)] * 4] * (2 + 2)  # 2 warm-ups, 2 rounds; WIDER skipped
    assert list(results) == ["640x480"]
    assert results["640x480"]["faces"] == 4
    assert results["640x480"]["median_ms"] == pytest.approx(800.0 / 4)  # one 0.8 s call, 4 frames


def test_a_runner_without_batched_detection_refuses_a_batch():
    with pytest.raises(SystemExit, match="no batched detection"):
        speed_protocol.speed(lambda img: [], "fake", options(sizes=["640x480"], repeat=1, batch=2))


def test_mtcnn_fast_runner_single_and_batched(tmp_path):
    # In a fresh interpreter, as compare.py runs it (the runner sets torch's thread counts).
    found = {}
    for batch in (1, 3):
        out = tmp_path / f"b{batch}.json"
        subprocess.run([sys.executable, str(HERE / "peers" / "mtcnn_fast_speed.py"), "--threads", "1",
                        "--sizes", "640x480", "--repeat", "1", "--batch", str(batch), "--json", str(out)],
                       check=True, capture_output=True)
        report = json.loads(out.read_text())
        assert report["batch"] == batch and report["device"] == "cpu"
        assert report["results"]["640x480"]["median_ms"] > 0
        found[batch] = report["results"]["640x480"]["faces"]
    # A batch of 3 holds the same 3 frames that the single-frame run detects one by one.
    assert found[1] == found[3] > 0
