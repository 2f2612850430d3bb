"""ONNX export: the three networks with dynamic sizes give the TorchScript outputs."""

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install mtcnn-fast[onnx])")
pytest.importorskip("onnx", reason="needs onnx (pip install mtcnn-fast[onnx])")

from mtcnn_fast.export import export_onnx  # noqa: E402


def test_exported_networks_match_torchscript(tmp_path, detector):
    paths = {p.stem: p for p in export_onnx(tmp_path)}
    assert sorted(paths) == ["onet", "pnet", "rnet"]
    rng = np.random.default_rng(0)
    cases = {
        "pnet": [(1, 3, 12, 12), (1, 3, 97, 130), (2, 3, 64, 51)],  # dynamic batch, H and W
        "rnet": [(1, 3, 24, 24), (37, 3, 24, 24)],
        "onet": [(1, 3, 48, 48), (9, 3, 48, 48)],
    }
    for name, shapes in cases.items():
        session = ort.InferenceSession(str(paths[name]), providers=["CPUExecutionProvider"])
        net = getattr(detector, name)
        for shape in shapes:
            x = rng.uniform(-1, 1, shape).astype(np.float32)
            got = session.run(None, {"image": x})
            with torch.inference_mode():
                want = net(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == tuple(w.shape)
                assert np.abs(g - w.numpy()).max() < 1e-4, (name, shape)
