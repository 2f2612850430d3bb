"""A fixed workload that involves none of mtcnn-fast's code: the yardstick that the latency
guard (benchmarks/guard.py) divides every other median by, so that a machine that is slower or
busier as a whole does not read as a regression. Besides this benchmark, the same work is timed
right before and after every other timed benchmark (conftest.py), at its thread count: on a
shared VM whose speed moves from minute to minute, that one tracks the benchmark beside it."""

from bench_support import calibration_workload


def test_calibration(benchmark, threads):
    work, first = calibration_workload()
    benchmark.group = "calibration"
    benchmark.extra_info["threads"] = threads
    assert benchmark(work) == first
