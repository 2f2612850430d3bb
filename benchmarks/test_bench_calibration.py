"""A fixed workload that involves none of mtcnn-fast's code: the yardstick that the latency
guard (benchmarks/guard.py) divides every other median by, so that a machine that is slower or
busier as a whole does not read as a regression."""

import numpy as np
import torch


def test_calibration(benchmark, threads):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 192, 192, generator=gen)
    w = torch.randn(32, 16, 3, 3, generator=gen)
    a = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    benchmark.group = "calibration"
    benchmark.extra_info["threads"] = threads

    def work():
        with torch.inference_mode():
            y = torch.nn.functional.conv2d(x, w)
        return float(y.sum()) + float(np.sort(a, axis=1)[:, 128].sum())

    first = work()
    assert benchmark(work) == first
