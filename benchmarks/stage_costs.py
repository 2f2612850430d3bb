"""Where the time goes: each stage's median time next to its arithmetic, and the floor that this
CPU's measured convolution throughput puts under it.

    .venv/bin/python benchmarks/stage_costs.py [--threads 1] [--repeat 15] [--keep-freed-memory]

Throughput is measured on a large, well-shaped convolution (64 -> 64 channels, 3x3, 8 x 56 x 56,
channels-last), the best case for torch's oneDNN kernels here. A stage's floor is its
multiply-accumulates divided by that throughput; "x floor" is how far the stage is from it.
Frames: the fixed WIDER photos of benchmarks/frames.py (the astronaut if ../shared is absent).

The networks are timed alone, on each photo's own windows, as the detector runs them. The core's
stages (pyramid, proposals, crops, refine, outputs) are timed in place: every call the detector
makes to the core during `detect` is timed and added to its stage, so they are measured with the
caches and the heap as a detection leaves them (the image read again by the crops after the
networks ran, the crops' summed-area table faulted in after a trim), and without the noise of
subtracting one long median from another.

By default the detector runs as a user gets it, under glibc's default malloc settings, where the
activations of repeated calls are handed back to the system and faulted in again, page by page:
that price is the allocator's, not the stage's arithmetic, and it differs from machine to
machine (on an AMD EPYC of the Zen 5 generation about a third of a WIDER photo's detection).
--keep-freed-memory runs the detector with keep_freed_memory=True (a setting of this whole
process: glibc keeps freed memory), so each stage shows its own work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import frames  # noqa: E402

from mtcnn_fast import FaceDetector, _core  # noqa: E402
from mtcnn_fast.detector import CHUNK_ROWS, ONET_SIZE, RNET_SIZE  # noqa: E402


def median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def macs(net, x) -> int:
    """Multiply-accumulates of the convolutions and fully connected layers of net(x)."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.inference_mode():
        net(x)
    for h in handles:
        h.remove()
    return total[0]


def conv_throughput(repeat) -> float:
    """GMAC/s of a large 3x3 convolution, channels-last."""
    x = torch.randn(8, 64, 56, 56).contiguous(memory_format=torch.channels_last)
    conv = nn.Conv2d(64, 64, 3).to(memory_format=torch.channels_last).eval()
    with torch.inference_mode():
        ms = median_ms(lambda: conv(x), repeat)
    return 8 * 54 * 54 * 64 * 64 * 9 / (ms / 1000) / 1e9


class TimedCore:
    """The detector's core (module or twin) with every call timed into `spent[stage]`: `stage`
    is set by the detector's stage methods (see time_in_place); crops go by their size."""

    def __init__(self, ops):
        self.ops, self.stage, self.spent = ops, "", {}

    def __getattr__(self, name):
        fn = getattr(self.ops, name)
        if not callable(fn):
            return fn

        def timed(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            t = time.perf_counter() - t
            if name == "crop_windows":
                stage = "R-Net crops" if args[2] == RNET_SIZE else "O-Net crops"
            else:
                stage = "pyramid" if name in ("pyramid", "pyramid_scales", "pyramid_values") else self.stage
            self.spent[stage] = self.spent.get(stage, 0.0) + t
            return out

        return timed


def time_in_place(det, img, repeat) -> dict:
    """Median ms per core stage, and of all of them together ("together"), over `repeat`
    detections of img (after one untimed)."""
    core = TimedCore(det._ops)
    staged = {"propose": "proposals (windows, NMS)", "_refined": "refine (NMS, regression)",
              "_outputs": "outputs (regression, NMS)"}

    def labelled(method, stage):
        def run(*args, **kwargs):
            core.stage = stage
            return method(*args, **kwargs)
        return run

    det._ops = core
    for name, stage in staged.items():
        setattr(det, name, labelled(getattr(det, name), stage))
    try:
        det.detect(img)
        runs = []
        for _ in range(repeat):
            core.spent = {}
            det.detect(img)
            runs.append(dict(core.spent, together=sum(core.spent.values())))
    finally:
        det._ops = core.ops
        for name in staged:
            delattr(det, name)
    stages = {k for r in runs for k in r}
    return {k: statistics.median(r.get(k, 0.0) for r in runs) * 1000 for k in stages}


def nchw(a):
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="the detector with keep_freed_memory=True: no page faults from memory handed back")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    det = FaceDetector(device="cpu", keep_freed_memory=args.keep_freed_memory)
    eager = FaceDetector(device="cpu", jit=False)  # plain modules, for counting
    gmacs = conv_throughput(args.repeat)
    core_rows = ("pyramid", "proposals (windows, NMS)", "R-Net crops", "refine (NMS, regression)",
                 "O-Net crops", "outputs (regression, NMS)")
    rows = {k: [0.0, 0] for k in ("pyramid", "P-Net", "proposals (windows, NMS)", "R-Net crops",
                                  "R-Net", "refine (NMS, regression)", "O-Net crops", "O-Net",
                                  "outputs (regression, NMS)", "core stages together", "whole detect")}
    photos = frames.wider_photos()
    windows = [0, 0]
    for img in photos:
        scales = _core.pyramid_scales(*img.shape[:2], det.min_face_size, det.scale_factor)
        levels = _core.pyramid(img, scales, torch.get_num_threads())
        proposals = det.propose(img)
        refined = det.refine(img, proposals)
        windows[0] += len(proposals)
        windows[1] += len(refined)
        r_hwc = _core.crop_windows(img, proposals, RNET_SIZE, torch.get_num_threads())
        o_hwc = _core.crop_windows(img, refined, ONET_SIZE, torch.get_num_threads())
        r_in, o_in = nchw(r_hwc), nchw(o_hwc)

        def pnet_all():  # as the detector runs it: large levels in bands (detector._pnet)
            return [det._pnet(level) for level in levels]

        t_pnet = median_ms(pnet_all, args.repeat)
        # As the detector runs them: the first blocks in chunks (detector.CHUNK_ROWS), the rest
        # (last convolution, fully connected layers) once over all the windows.
        t_rnet = median_ms(lambda: det._run(det.rnet, r_hwc, CHUNK_ROWS[RNET_SIZE]), args.repeat)
        t_onet = median_ms(lambda: det._run(det.onet, o_hwc, CHUNK_ROWS[ONET_SIZE]), args.repeat)
        t_all = median_ms(lambda: det.detect(img), args.repeat)
        in_place = time_in_place(det, img, args.repeat)
        p_macs = sum(macs(eager.pnet, nchw(l[None])) for l in levels)
        r_macs = macs(eager.rnet, r_in) if len(r_in) else 0
        o_macs = macs(eager.onet, o_in) if len(o_in) else 0
        for key, t, m in (
            *((k, in_place.get(k, 0.0), 0) for k in core_rows),
            ("core stages together", in_place["together"], 0),
            ("P-Net", t_pnet, p_macs), ("R-Net", t_rnet, r_macs), ("O-Net", t_onet, o_macs),
            ("whole detect", t_all, p_macs + r_macs + o_macs),
        ):
            rows[key][0] += t / len(photos)
            rows[key][1] += m // len(photos)
    print(f"{len(photos)} photos, {args.threads} thread(s), "
          f"{'keep_freed_memory' if args.keep_freed_memory else 'default malloc settings'}; windows per photo: "
          f"{windows[0] / len(photos):.0f} to R-Net, {windows[1] / len(photos):.0f} to O-Net")
    print(f"measured convolution throughput: {gmacs:.1f} GMAC/s")
    print(f"{'stage':<28}{'ms':>8}{'MMAC':>9}{'floor ms':>10}{'x floor':>9}")
    for key, (ms, m) in rows.items():
        floor = m / 1e9 / gmacs * 1000
        ratio = f"{ms / floor:>9.2f}" if floor else f"{'-':>9}"
        print(f"{key:<28}{ms:>8.2f}{m / 1e6:>9.0f}{floor:>10.1f}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
