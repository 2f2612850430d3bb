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
@pytest.mark.parametrize("channels_last", [True, False])
def test_slice_max_pool_equals_ceil_mode_max_pool(kernel, stride, channels_last):
    """Every map size from the kernel up, even and odd (odd sizes leave a last window hanging
    over the edge), in both memory formats, NaN included; TorchScript as the detector runs it."""
    import torch

    from mtcnn_fast.nets import SliceMaxPool, compile_net

    gen = torch.Generator().manual_seed(0)
    pool = torch.nn.MaxPool2d(kernel, stride, ceil_mode=True)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fast = SliceMaxPool(kernel, stride)
    scripted = compile_net(torch.nn.Sequential(SliceMaxPool(kernel, stride)).eval())
    for h in range(kernel, 16):
        for w in (kernel, kernel + 1, 12, 17):
            x = torch.randn(2, 10, h, w, generator=gen).contiguous(memory_format=fmt)
            x[1, 3, h // 2, w - 1] = float("nan")
            before = x.clone()
            want = pool(x)
            for f in (fast, scripted):
                got = f(x)
                assert got.shape == want.shape, (h, w)
                assert torch.equal(got.nan_to_num(7.0), want.nan_to_num(7.0)), (h, w)
                assert torch.isnan(got).sum() == torch.isnan(want).sum(), (h, w)
                assert got.is_contiguous(memory_format=fmt), (h, w)
            assert torch.equal(x.nan_to_num(7.0), before.nan_to_num(7.0))  # input untouched
    # Training: the same numbers, and the gradient of torch's pool.
    x = torch.randn(2, 10, 13, 12, generator=gen).contiguous(memory_format=fmt).requires_grad_()
    got = fast(x)
    got.sum().backward()
    x2 = x.detach().clone().requires_grad_()
    pool(x2).sum().backward()
    assert torch.equal(got.detach(), pool(x.detach())) and torch.equal(x.grad, x2.grad)


def test_nets_with_fast_layers_give_the_numbers_of_the_standard_layers(astronaut, detector):
    """P-Net on a photo, R-Net and O-Net on the windows the detector makes of it."""
    import torch

    from mtcnn_fast.nets import portable_kernels, standard_layers

    x = torch.from_numpy((astronaut[:301, :257].astype(np.float32) - 127.5) * 0.0078125)
    inputs = {"pnet": x.permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)}
    windows = detector.propose(astronaut)
    assert len(windows) > 10
    for name, size in (("rnet", 24), ("onet", 48)):
        crops = torch.from_numpy(detector._ops.crop_windows(astronaut, windows, size))
        inputs[name] = crops.permute(0, 3, 1, 2)
    for name, x in inputs.items():
        fast, plain = load_net(name), standard_layers(load_net(name))
        swapped = {"SliceMaxPool": "MaxPool2d", "TiledPReLU": "PReLU"}
        fast_kinds = [(n, type(m).__name__) for n, m in fast.named_children() if type(m).__name__ in swapped]
        assert {k for _, k in fast_kinds} == set(swapped)
        assert all(type(getattr(plain, n)).__name__ == swapped[k] for n, k in fast_kinds)
        with torch.inference_mode():
            for a, b in zip(fast(x), plain(x)):
                assert torch.equal(a, b), name
            # The oneDNN convolutions against torch's own kernel choice: the same layers, the
            # sums in another order (exporters get this form).
            for a, b in zip(fast(x), portable_kernels(plain)(x)):
                assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), name


@pytest.mark.parametrize("channels", [10, 16, 28])
@pytest.mark.parametrize("channels_last", [True, False])
def test_tiled_prelu_equals_prelu(channels, channels_last):
    """Both paths (fewer channels than 16, and more), both memory formats,
    odd sizes, NaN and signed zeros; TorchScript as the detector runs it; training's gradient."""
    import torch

    from mtcnn_fast.nets import TiledPReLU, compile_net

    gen = torch.Generator().manual_seed(1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fast = TiledPReLU(channels)
    with torch.no_grad():
        fast.weight.copy_(torch.randn(channels, generator=gen))
    plain = torch.nn.PReLU(channels)
    plain.weight = fast.weight
    scripted = compile_net(torch.nn.Sequential(fast).eval())
    for shape in [(1, channels, 13, 7), (3, channels, 5, 11), (2, channels, 1, 1)]:
        x = torch.randn(shape, generator=gen).contiguous(memory_format=fmt)
        x[0, 0, 0, 0], x[0, 1, 0, 0], x[-1, 2, -1, -1] = float("nan"), -0.0, 0.0
        with torch.inference_mode():
            want = plain(x)
            for f in (fast, scripted):
                got = f(x)
                assert got.shape == want.shape and got.is_contiguous(memory_format=fmt)
                assert torch.equal(got.nan_to_num(7.0), want.nan_to_num(7.0))
                assert torch.equal(got.isnan(), want.isnan())
    x = torch.randn(2, channels, 6, 5, generator=gen).contiguous(memory_format=fmt).requires_grad_()
    fast(x).sum().backward()
    x2 = x.detach().clone().requires_grad_()
    torch.nn.functional.prelu(x2, fast.weight.detach()).sum().backward()
    assert torch.equal(x.grad, x2.grad)


@pytest.mark.parametrize("bias", [True, False])
def test_fully_connected_layer_equals_linear(bias):
    """OneDNNLinear (the rows as one channels-last map, the weights as 1x1 filters) against
    torch's linear, in float32 and, where the CPU has it, bfloat16; eager and under TorchScript as
    the detector runs it; any row count, a row alone, an input flattened from a channels-last map,
    no rows."""
    import torch

    from mtcnn_fast.detector import cpu_has_bf16
    from mtcnn_fast.nets import OneDNNLinear, compile_net

    gen = torch.Generator().manual_seed(2)
    layer = OneDNNLinear(72, 24)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(24, 72, generator=gen) * 0.1)
        if not bias:
            layer.bias = None
    scripted = compile_net(torch.nn.Sequential(layer).eval())
    half = None
    if cpu_has_bf16():
        half = OneDNNLinear(72, 24).to(torch.bfloat16)
        with torch.no_grad():
            half.weight.copy_(layer.weight)
            half.bias = None if layer.bias is None else torch.nn.Parameter(layer.bias.to(torch.bfloat16))
    for n in (1, 3, 16, 64):
        # (n, 8, 3, 3) channels-last, flattened as the networks do: (C, y, x) order, a copy
        x = torch.randn(n, 8, 3, 3, generator=gen).contiguous(memory_format=torch.channels_last).flatten(1)
        want = torch.nn.functional.linear(x, layer.weight, layer.bias)
        with torch.inference_mode():
            got, got_scripted = layer(x), scripted(x)
        assert got.shape == (n, 24) and torch.equal(got, got_scripted)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), n
        # a row's outputs alone are the bits it has in the batch
        with torch.inference_mode():
            assert torch.equal(layer(x[n - 1 :]), got[n - 1 :])
        if half is not None:
            with torch.inference_mode():
                got16 = half(x.to(torch.bfloat16))
            assert got16.dtype == torch.bfloat16 and got16.shape == (n, 24)
            assert torch.allclose(got16.float(), want, rtol=0.05, atol=0.05), n
    with torch.inference_mode():
        assert layer(torch.zeros(0, 72)).shape == (0, 24)
