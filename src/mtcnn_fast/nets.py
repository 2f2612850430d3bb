"""P-Net, R-Net and O-Net (Zhang et al., 2016) as PyTorch modules, in plain NCHW layout.

Shapes follow the authors' Caffe models. Every max pool uses ceil mode (Caffe's rounding). The
shipped weights (``weights/*.npz``, converted by ``training/convert_weights.py``) are already in
torch layout: conv kernels with their spatial axes swapped back from the transposed images the
original was trained on, and the first fully connected layer in torch's (C, y, x) flatten order.
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHT_FILES = {"pnet": "pnet.npz", "rnet": "rnet.npz", "onet": "onet.npz"}

# Marks a method TorchScript compiles besides forward (a no-op where torch has no jit).
_export = getattr(getattr(torch, "jit", None), "export", lambda fn: fn)


class SliceMaxPool(nn.Module):
    """Max pooling in ceil mode (like ``nn.MaxPool2d(k, s, ceil_mode=True)``, the same numbers)
    computed as element-wise maxima of strided slices, rows then columns, without padding
    copies: a last window that hangs over the edge takes the maximum of the slices that reach
    it. On channels-last maps torch's pooling kernel is 1.1 to 3.5 times slower than this (P-Net's
    full-size 10-channel map and R-Net's first pool most of all; benchmarks/README.md). The
    maxima are taken in place, which autograd refuses: where a gradient is wanted (training)
    torch's own pool runs."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if x.requires_grad and torch.is_grad_enabled():  # training: torch's pool has the gradient
            return F.max_pool2d(x, self.kernel, self.stride, ceil_mode=True)
        return self._along(self._along(x, 2), 3)

    def _take(self, x: Tensor, dim: int, start: int, count: int) -> Tensor:
        """Elements start, start + stride, ... (count of them) along dim, as a view."""
        end = start + (count - 1) * self.stride + 1
        if dim == 2:
            return x[:, :, start:end:self.stride]
        return x[:, :, :, start:end:self.stride]

    def _along(self, x: Tensor, dim: int) -> Tensor:
        k, s = self.kernel, self.stride
        size = x.size(dim)
        n = (size - k + s - 1) // s + 1  # ceil mode: every window starts inside the map
        first = self._take(x, dim, 0, n)
        # Slice i reaches the windows j with j * s + i < size: all n of them, or all but the last.
        reach = min(n, (size - 2) // s + 1)
        if reach == n:
            out = torch.maximum(first, self._take(x, dim, 1, n))
        else:
            out = torch.empty_like(first)
            head = out.narrow(dim, 0, reach)
            torch.maximum(first.narrow(dim, 0, reach), self._take(x, dim, 1, reach), out=head)
            out.narrow(dim, reach, n - reach).copy_(first.narrow(dim, reach, n - reach))
        for i in range(2, k):
            reach = min(n, (size - 1 - i) // s + 1)
            head = out.narrow(dim, 0, reach)
            torch.maximum(head, self._take(x, dim, i, reach), out=head)
        return out


def _onednn_available() -> bool:
    mkldnn = getattr(torch.backends, "mkldnn", None)
    return mkldnn is not None and bool(mkldnn.is_available())


def _cat_bias(a: Optional[Tensor], b: Optional[Tensor]) -> Optional[Tensor]:
    if a is None or b is None:
        return None
    return torch.cat([a, b])


class OneDNNConv2d(nn.Conv2d):
    """``nn.Conv2d`` (the same parameters) that on the CPU always runs oneDNN's convolution,
    whatever the batch, map size and thread count.

    Why: ``F.conv2d`` picks its CPU kernel by a heuristic of shape and thread count: small
    single-image inputs, and 1x1 kernels at one thread, go to an im2col + BLAS (MKL) path whose
    matrix-multiply kernel depends on the row count and on the CPU, and ``F.linear`` always
    calls that matrix multiply. There one window's outputs changed in the last bits with the
    batch around it and with the thread count (measured on an Intel Xeon; benchmarks/README.md).
    oneDNN's direct convolution computes every image of a batch, and every output position,
    with the same code, so a window gives the same bits in any batch and position, at 1 or 2
    threads, under every kernel dispatch setting tested (``tests/test_batches.py``; ``.ci/run``
    repeats the exactness tests under other MKL and oneDNN ISA settings). On CUDA, and where
    torch lacks oneDNN, ``F.conv2d`` runs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.onednn = _onednn_available()
        self.pad: List[int] = [int(p) for p in self.padding]
        self.steps: List[int] = [int(s) for s in self.stride]

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x, self.weight, self.bias)

    def run(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        """This layer's convolution with the given parameters (heads joined into one call)."""
        if self.onednn and x.device.type == "cpu" and x.dtype != torch.float64:
            return torch.mkldnn_convolution(x, weight, bias, self.pad, self.steps, [1, 1], 1)
        return F.conv2d(x, weight, bias, self.steps, self.pad)


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` (the same ``weight`` and ``bias``) computed on the CPU as a oneDNN 1x1
    convolution: ``F.linear`` calls BLAS's matrix multiply, whose kernel (picked by the row
    count and the CPU) made a row's outputs depend on the batch around it (see
    ``OneDNNConv2d``). The rows are the pixels of one 1 x N channels-last map (the (N,
    in_features) matrix itself, no copy), so the weights are read once per call; as N images of
    one pixel each they were read once per row, about twice the time (R-Net's fc4 on 64 windows
    0.39 against 0.21 ms, O-Net's fc5 on 16 windows 0.52 against 0.22). Each row's outputs are
    the same bits in any batch, position and thread count (tests/test_batches.py). Takes (N, ...)
    with in_features values per row."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.onednn = _onednn_available()

    def forward(self, x: Tensor) -> Tensor:
        return self.run(x, self.weight, self.bias)

    def run(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        """This layer's product with the given parameters (heads joined into one call)."""
        n, k, out = x.shape[0], weight.shape[1], weight.shape[0]
        if self.onednn and x.device.type == "cpu" and x.dtype != torch.float64:
            if n == 0:  # a map of no pixels is refused; no rows give no outputs
                return x.new_zeros([0, out])
            rows = x.reshape(1, 1, n, k).permute(0, 3, 1, 2)
            y = torch.mkldnn_convolution(rows, weight.view(out, k, 1, 1), bias, [0, 0], [1, 1], [1, 1], 1)
            return y.permute(0, 2, 3, 1).reshape(n, out)
        return F.linear(x.reshape(n, k), weight, bias)


class TiledPReLU(nn.PReLU):
    """``nn.PReLU`` (the same numbers, the same ``weight``). On a channels-last map with fewer
    channels than one AVX-512 vector holds (16 floats), torch's kernel is slow: P-Net's first
    PReLU (10 channels) took 3.2 ms on a 418x612 map, 9 times its time in NCHW memory. There the
    map runs as a 2-D PReLU over rows of W x C values with the slopes repeated W times (0.5 ms;
    1.9 against 3.8 ms per WIDER photo over all levels). Wider maps (R-Net's 28 channels: 2.9
    against 2.8 ms) and training (where a gradient is wanted) take ``nn.PReLU``'s own path."""

    def forward(self, x: Tensor) -> Tensor:
        c = self.num_parameters
        if (
            x.dim() == 4
            and c < 16
            and x.is_contiguous(memory_format=torch.channels_last)
            and not (x.requires_grad and torch.is_grad_enabled())
        ):
            n, h, w = x.shape[0], x.shape[2], x.shape[3]
            rows = x.permute(0, 2, 3, 1).reshape(n * h, w * c)
            return F.prelu(rows, self.weight.repeat(w)).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return F.prelu(x, self.weight)


def standard_layers(net: nn.Module) -> nn.Module:
    """The net with every SliceMaxPool and TiledPReLU replaced by the torch layer it equals (for
    exporters, which trace shapes and have their own operators for both)."""
    for name, child in list(net.named_children()):
        if isinstance(child, SliceMaxPool):
            setattr(net, name, nn.MaxPool2d(child.kernel, child.stride, ceil_mode=True))
        elif isinstance(child, TiledPReLU):
            plain = nn.PReLU(child.num_parameters)
            plain.weight = child.weight
            setattr(net, name, plain)
    return net


def portable_kernels(net: nn.Module) -> nn.Module:
    """The net with its convolutions and fully connected layers on torch's own kernel choice
    (``F.conv2d``, ``F.linear``) instead of oneDNN's convolution, for exporters, which know
    those operators. The numbers agree within float32 rounding, not bit for bit."""
    for module in net.modules():
        if isinstance(module, (OneDNNConv2d, OneDNNLinear)):
            module.onednn = False
    return net


class PNet(nn.Module):
    """Proposal network: fully convolutional, 12x12 receptive field, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = OneDNNConv2d(3, 10, 3)
        self.prelu1 = TiledPReLU(10)
        self.pool1 = SliceMaxPool(2, 2)
        self.conv2 = OneDNNConv2d(10, 16, 3)
        self.prelu2 = TiledPReLU(16)
        self.conv3 = OneDNNConv2d(16, 32, 3)
        self.prelu3 = TiledPReLU(32)
        self.conv4_1 = OneDNNConv2d(32, 2, 1)
        self.conv4_2 = OneDNNConv2d(32, 4, 1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(N, 3, H, W) -> face probability (N, H', W') and box offsets (N, 4, H', W')."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        # Both heads in one convolution (their filters stacked): one pass over the map.
        weight = torch.cat([self.conv4_1.weight, self.conv4_2.weight])
        heads = self.conv4_1.run(x, weight, _cat_bias(self.conv4_1.bias, self.conv4_2.bias))
        prob = torch.softmax(heads[:, 0:2], dim=1)[:, 1]
        return prob, heads[:, 2:6]


class RNet(nn.Module):
    """Refinement network on 24x24 windows."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = OneDNNConv2d(3, 28, 3)
        self.prelu1 = TiledPReLU(28)
        self.pool1 = SliceMaxPool(3, 2)
        self.conv2 = OneDNNConv2d(28, 48, 3)
        self.prelu2 = TiledPReLU(48)
        self.pool2 = SliceMaxPool(3, 2)
        self.conv3 = OneDNNConv2d(48, 64, 2)
        self.prelu3 = TiledPReLU(64)
        self.fc4 = OneDNNLinear(576, 128)
        self.prelu4 = TiledPReLU(128)
        self.fc5_1 = OneDNNLinear(128, 2)
        self.fc5_2 = OneDNNLinear(128, 4)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(N, 3, 24, 24) -> face probability (N,) and box offsets (N, 4)."""
        return self.head(self.features(x))

    @_export
    def features(self, x: Tensor) -> Tensor:
        """The first two blocks: (N, 3, 24, 24) -> (N, 48, 4, 4) (see ONet.features)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        return self.pool2(self.prelu2(self.conv2(x)))

    @_export
    def head(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """The rest: features (N, 48, 4, 4) -> probability (N,) and box offsets (N, 4)."""
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.fc4(x.flatten(1)))
        heads = self.fc5_1.run(x, torch.cat([self.fc5_1.weight, self.fc5_2.weight]),
                               _cat_bias(self.fc5_1.bias, self.fc5_2.bias))
        prob = torch.softmax(heads[:, 0:2], dim=1)[:, 1]
        return prob, heads[:, 2:6]


class ONet(nn.Module):
    """Output network on 48x48 windows: score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = OneDNNConv2d(3, 32, 3)
        self.prelu1 = TiledPReLU(32)
        self.pool1 = SliceMaxPool(3, 2)
        self.conv2 = OneDNNConv2d(32, 64, 3)
        self.prelu2 = TiledPReLU(64)
        self.pool2 = SliceMaxPool(3, 2)
        self.conv3 = OneDNNConv2d(64, 64, 3)
        self.prelu3 = TiledPReLU(64)
        self.pool3 = SliceMaxPool(2, 2)
        self.conv4 = OneDNNConv2d(64, 128, 2)
        self.prelu4 = TiledPReLU(128)
        self.fc5 = OneDNNLinear(1152, 256)
        self.prelu5 = TiledPReLU(256)
        self.fc6_1 = OneDNNLinear(256, 2)
        self.fc6_2 = OneDNNLinear(256, 4)
        self.fc6_3 = OneDNNLinear(256, 10)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(N, 3, 48, 48) -> probability (N,), box offsets (N, 4), landmarks (N, 10):
        x1..x5 then y1..y5, as fractions of the input window."""
        return self.head(self.features(x))

    @_export
    def features(self, x: Tensor) -> Tensor:
        """The first three blocks: (N, 3, 48, 48) -> (N, 64, 3, 3). The detector runs them in
        chunks of windows (their activations are large: 271 KB per window at the first) and the
        rest (`head`: the last convolution, 2.3 KB per window in, and the fully connected
        layers) once over all the chunks' windows: each call of a layer has oneDNN reorder its
        weights (fc5: 1.2 MB), about the time of fc5's arithmetic on a chunk, and has a fixed
        cost of its own. Each window gives the same bits either way (OneDNNConv2d,
        OneDNNLinear)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        return self.pool3(self.prelu3(self.conv3(x)))

    @_export
    def head(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The rest: features (N, 64, 3, 3) -> probability, box offsets, landmarks."""
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.fc5(x.flatten(1)))
        weight = torch.cat([self.fc6_1.weight, self.fc6_2.weight, self.fc6_3.weight])
        heads = self.fc6_1.run(x, weight, _cat_bias(_cat_bias(self.fc6_1.bias, self.fc6_2.bias), self.fc6_3.bias))
        prob = torch.softmax(heads[:, 0:2], dim=1)[:, 1]
        return prob, heads[:, 2:6], heads[:, 6:16]


NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet}

WeightsArg = Union[None, str, Path]


def load_state(path: Union[str, Path]) -> Dict[str, Tensor]:
    """Reads one ``.npz`` weight file into a state dict (float32 tensors)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: torch.from_numpy(np.array(data[k], dtype=np.float32)) for k in data.files}


def weights_dir(weights: WeightsArg = None) -> Path:
    """The folder holding pnet.npz, rnet.npz and onet.npz: the shipped one by default."""
    if weights is None:
        return Path(str(resources.files("mtcnn_fast") / "weights"))
    path = Path(weights)
    if not path.is_dir():
        raise ValueError(f"weights must be a folder holding {sorted(WEIGHT_FILES.values())}, got {path}")
    return path


def load_net(name: str, weights: WeightsArg = None) -> nn.Module:
    """Builds one network and loads its weights (strictly: every parameter, nothing else)."""
    net = NETS[name]()
    path = weights_dir(weights) / WEIGHT_FILES[name]
    if not path.is_file():
        raise ValueError(f"missing weight file {path}")
    try:
        net.load_state_dict(load_state(path), strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} does not match {NETS[name].__name__}: {e}") from None
    return net.eval()


def compile_net(net: nn.Module, jit: bool = True) -> nn.Module:
    """TorchScript (scripted and frozen) when asked for and available, else the eager module.

    torch.jit is deprecated in recent torch releases and warns on every call; those warnings
    are ours to handle, not the user's. Where torch.jit is missing the eager module runs; both
    give identical results."""
    script = getattr(getattr(torch, "jit", None), "script", None)
    if not jit or script is None:
        return net
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        scripted = torch.jit.script(net)
        freeze = getattr(torch.jit, "freeze", None)
        if freeze is None:
            return scripted
        # R-Net's and O-Net's two parts are called on their own (detector._run): kept.
        return freeze(scripted, preserved_attrs=[m for m in ("features", "head") if hasattr(net, m)])
