"""A fixed workload that involves none of mtcnn-fast's code, timed once per run at 1 and 2
threads. The latency guard (benchmarks/guard.py) divides each CPU benchmark by the same work timed
right before and after that benchmark (conftest.py): on a shared VM whose speed moves from minute
to minute, that one tracks it and this one did not. This one remains the run's record of the
machine's speed, and the yardstick for rows without one beside them (reports of earlier versions
of the guard)."""

from bench_support import calibration_workload


def test_calibration(benchmark, threads):
    work, first = calibration_workload()
    benchmark.group = "calibration"
    benchmark.extra_info["threads"] = threads
    assert benchmark(work) == first
