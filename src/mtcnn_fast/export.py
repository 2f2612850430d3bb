"""ONNX export of the three networks, for runtimes other than torch.

    from mtcnn_fast.export import export_onnx
    export_onnx("onnx/")        # writes onnx/pnet.onnx, onnx/rnet.onnx, onnx/onet.onnx

P-Net takes any N x 3 x H x W input (dynamic batch, height and width) and returns the face
probability (N, H', W') and the box offsets (N, 4, H', W'); R-Net (N x 3 x 24 x 24) and O-Net
(N x 3 x 48 x 48) take any batch and return probability, offsets and, for O-Net, the landmarks
(N, 10: x1..x5, y1..y5 as fractions of the window). Inputs are normalised as
(pixel - 127.5) * 0.0078125, RGB. Needs the `onnx` package (`pip install mtcnn-fast[onnx]`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Union

import torch

from .nets import load_net, portable_kernels, standard_layers

__all__ = ["export_onnx"]

_SPECS = {
    "pnet": ((1, 3, 64, 64), ["prob", "reg"], {"image": {0: "n", 2: "h", 3: "w"},
                                               "prob": {0: "n", 1: "out_h", 2: "out_w"},
                                               "reg": {0: "n", 2: "out_h", 3: "out_w"}}),
    "rnet": ((2, 3, 24, 24), ["prob", "reg"], {"image": {0: "n"}, "prob": {0: "n"}, "reg": {0: "n"}}),
    "onet": ((2, 3, 48, 48), ["prob", "reg", "landmarks"],
             {"image": {0: "n"}, "prob": {0: "n"}, "reg": {0: "n"}, "landmarks": {0: "n"}}),
}


def export_onnx(directory: Union[str, Path], weights=None, opset: int = 17) -> List[Path]:
    """Writes pnet.onnx, rnet.onnx and onet.onnx into directory; returns their paths."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx package: pip install mtcnn-fast[onnx]") from e
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (shape, outputs, axes) in _SPECS.items():
        net = portable_kernels(standard_layers(load_net(name, weights)))
        path = out_dir / f"{name}.onnx"
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # torch's exporter warns about itself, not about us
            torch.onnx.export(net, (torch.zeros(shape),), str(path), input_names=["image"],
                              output_names=outputs, dynamic_axes=axes, opset_version=opset,
                              dynamo=False)
        paths.append(path)
    return paths
