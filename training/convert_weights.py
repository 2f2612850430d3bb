"""Converts the original MTCNN weights into the files shipped in src/mtcnn_fast/weights/.

Source: the authors' Caffe models (kpzhang93/MTCNN_face_detection_alignment, MIT, Copyright (c)
2016 Kaipeng Zhang) as repackaged in facenet-pytorch 2.6.0's wheel (MIT, Copyright (c) 2019
Timothy Esler). Get the wheel without installing anything:

    pip download --no-deps -d /tmp/fp facenet-pytorch==2.6.0
    python training/convert_weights.py /tmp/fp/facenet_pytorch-2.6.0-py3-none-any.whl

What changes (see ../shared/REFERENCE.md, "The transpose trap"): layer names (dense* -> fc*),
and the first fully connected layer after the convolutions (R-Net fc4, O-Net fc5) is reordered
from facenet-pytorch's (x, y, C) input order to torch's plain (C, y, x) flatten order. Every
number is copied bit for bit; the conv kernels in that wheel are already swapped for NCHW input.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path
from typing import Dict

import numpy as np

SOURCE_MEMBERS = {name: f"facenet_pytorch/data/{name}.pt" for name in ("pnet", "rnet", "onet")}
# First fully connected layer of each net: (our name, its (C, H, W) input).
FIRST_FC = {"rnet": ("fc4", (64, 3, 3)), "onet": ("fc5", (128, 3, 3))}
PARAMETER_COUNTS = {"pnet": 6632, "rnet": 100178, "onet": 389040}


def read_source(wheel: Path) -> Dict[str, Dict[str, np.ndarray]]:
    """The three facenet-pytorch state dicts from the wheel, as numpy arrays."""
    import torch

    out = {}
    with zipfile.ZipFile(wheel) as zf:
        for name, member in SOURCE_MEMBERS.items():
            state = torch.load(io.BytesIO(zf.read(member)), weights_only=True, map_location="cpu")
            out[name] = {k: v.numpy().copy() for k, v in state.items()}
    return out


def convert(name: str, source: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """One net's facenet-pytorch state dict in mtcnn-fast's names and layout."""
    out = {}
    for key, value in source.items():
        new_key = key.replace("dense", "fc")
        if name in FIRST_FC and new_key.startswith(FIRST_FC[name][0] + ".weight"):
            c, h, w = FIRST_FC[name][1]
            o = value.shape[0]
            # (O, x, y, C) -> (O, C, y, x)
            value = value.reshape(o, w, h, c).transpose(0, 3, 2, 1).reshape(o, c * h * w)
        out[new_key] = np.ascontiguousarray(value, dtype=np.float32)
    count = sum(v.size for v in out.values())
    if count != PARAMETER_COUNTS[name]:
        raise ValueError(f"{name}: {count} parameters, expected {PARAMETER_COUNTS[name]}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="facenet_pytorch-2.6.0-py3-none-any.whl")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "src" / "mtcnn_fast" / "weights",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, state in read_source(args.wheel).items():
        arrays = convert(name, state)
        np.savez(args.out / f"{name}.npz", **arrays)
        print(f"{name}: {sum(v.size for v in arrays.values())} parameters -> {args.out / name}.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
