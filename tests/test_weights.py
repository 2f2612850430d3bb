"""The shipped weights: the original numbers, bit for bit, in torch layout."""

import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from mtcnn_fast.nets import load_net, load_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
import convert_weights  # noqa: E402

WHEEL_NAME = "facenet_pytorch-2.6.0-py3-none-any.whl"


def shipped(name):
    return load_state(resources.files("mtcnn_fast") / "weights" / f"{name}.npz")


def find_wheel():
    """The facenet-pytorch 2.6.0 wheel: $MTCNN_FAST_FACENET_WHEEL, or .ci-cache/ (where .ci/run
    puts it with `pip download --no-deps`)."""
    candidates = [os.environ.get("MTCNN_FAST_FACENET_WHEEL", "")]
    candidates.append(str(Path(__file__).resolve().parents[1] / ".ci-cache" / WHEEL_NAME))
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    pytest.skip(
        "needs the facenet-pytorch 2.6.0 wheel (pip download --no-deps -d .ci-cache "
        "facenet-pytorch==2.6.0, or set MTCNN_FAST_FACENET_WHEEL); not found"
    )


@pytest.mark.parametrize("name", ["pnet", "rnet", "onet"])
def test_parameter_counts_are_the_original(name):
    assert sum(v.numel() for v in shipped(name).values()) == convert_weights.PARAMETER_COUNTS[name]
    net = load_net(name)
    assert sum(p.numel() for p in net.parameters()) == convert_weights.PARAMETER_COUNTS[name]


@pytest.mark.parametrize("name", ["pnet", "rnet", "onet"])
def test_shipped_weights_are_bit_exact_conversions_of_the_source(name):
    source = convert_weights.read_source(find_wheel())[name]
    ours = {k: v.numpy() for k, v in shipped(name).items()}
    converted = convert_weights.convert(name, source)
    assert sorted(ours) == sorted(converted)
    for key in ours:
        assert ours[key].dtype == np.float32
        assert np.array_equal(ours[key], converted[key]), key
    # And every source number is there unchanged: same multiset of bits per tensor.
    for key, value in source.items():
        mine = ours[key.replace("dense", "fc")]
        assert np.array_equal(np.sort(mine.ravel()), np.sort(value.ravel())), key


def test_first_fc_reorder_matches_facenet_flatten_order():
    """The reordered fc4 weights applied to a torch-flattened (C, y, x) input equal the source
    weights applied to facenet-pytorch's permute(0, 3, 2, 1) flatten order."""
    rng = np.random.default_rng(0)
    src = rng.standard_normal((128, 576)).astype(np.float32)
    ours = convert_weights.convert("rnet", {**_rnet_like(rng), "dense4.weight": src})["fc4.weight"]
    x = rng.standard_normal((64, 3, 3)).astype(np.float32)  # (C, H, W)
    facenet_flat = x.transpose(2, 1, 0).reshape(-1)  # permute(0, 3, 2, 1) on NCHW: (W, H, C)
    assert np.allclose(src @ facenet_flat, ours @ x.reshape(-1), atol=1e-4)


def _rnet_like(rng):
    sd = {k.replace("fc", "dense"): v.numpy() for k, v in shipped("rnet").items()}
    sd.pop("dense4.weight")
    return sd


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2)])
def test_slice_max_pool_equals_ceil_mode_max_pool(kernel, stride):
    import torch

    from mtcnn_fast.nets import SliceMaxPool

    gen = torch.Generator().manual_seed(0)
    pool = torch.nn.MaxPool2d(kernel, stride, ceil_mode=True)
    for h, w in [(12, 12), (13, 12), (12, 17), (5, 3), (3, 3), (2, 2)]:
        if kernel > min(h, w):
            continue
        x = torch.randn(2, 10, h, w, generator=gen).contiguous(memory_format=torch.channels_last)
        got = SliceMaxPool(kernel, stride)(x)
        assert torch.equal(got, pool(x)), (h, w)


def test_pnet_with_slice_pool_gives_the_numbers_of_the_standard_pool(astronaut):
    import torch

    from mtcnn_fast.nets import standard_pools

    x = torch.from_numpy((astronaut[:301, :257].astype(np.float32) - 127.5) * 0.0078125)
    x = x.permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
    fast, plain = load_net("pnet"), standard_pools(load_net("pnet"))
    assert type(plain.pool1).__name__ == "MaxPool2d" and type(fast.pool1).__name__ == "SliceMaxPool"
    with torch.inference_mode():
        for a, b in zip(fast(x), plain(x)):
            assert torch.equal(a, b)
