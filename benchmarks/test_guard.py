"""The latency guard's logic (guard.py), without timing anything: which CPU's baseline it picks,
what it says when this CPU has none, that --save keeps other CPUs' entries, how it compares, and
that a failing suite is reported by the names of its failing benchmarks."""

import json
from pathlib import Path

import guard
import pytest


def report(calibration, **medians):
    """A pytest-benchmark JSON report: a calibration median per thread count, then benchmarks
    given as name=(median, threads)."""
    rows = [{"group": "calibration", "fullname": f"calib[{t}]", "extra_info": {"threads": t}, "stats": {"median": m}}
            for t, m in calibration.items()]
    rows += [{"group": "g", "fullname": name, "extra_info": {"threads": t}, "stats": {"median": m}}
             for name, (m, t) in medians.items()]
    return {"benchmarks": rows}


def write_baseline(path, cpus):
    path.write_text(json.dumps({"about": "test", "cpus": cpus}))


def runner_of(*reports):
    """A fake runner handing out the given reports, one per suite run."""
    it = iter(reports)
    calls = []

    def run(extra):
        calls.append(extra)
        return next(it)

    run.calls = calls
    return run


def test_baseline_is_picked_by_cpu_model(tmp_path):
    cpus = {"AMD EPYC 9R14 96-Core Processor": {"ratios": {"a": 1.0}},
            "Intel(R) Xeon(R) Processor": {"ratios": {"a": 5.0}}}
    assert guard.select(cpus, "Intel(R)  Xeon(R) Processor ")["ratios"] == {"a": 5.0}  # spacing ignored
    assert guard.select(cpus, "AMD EPYC 9R14 96-Core Processor")["ratios"] == {"a": 1.0}
    assert guard.select(cpus, "AMD EPYC 7R13 Processor") is None


def test_the_cpu_model_is_the_reported_name():
    name = guard.cpu_model()
    assert name and name == " ".join(name.split())
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        pytest.skip("no /proc/cpuinfo here")
    reported = [line.split(":", 1)[1] for line in lines if line.startswith("model name")]
    if reported:
        assert name == " ".join(reported[0].split())


def test_compares_with_this_cpus_entry_only(tmp_path, capsys):
    path = tmp_path / "baseline.json"
    # Against the other CPU's ratios "b" would be a regression (+100%); against this one's it is not.
    write_baseline(path, {"cpu A": {"torch": guard.torch_version(), "ratios": {"a": 2.0, "b": 1.0}},
                          "cpu B": {"torch": guard.torch_version(), "ratios": {"a": 2.0, "b": 2.0}}})
    run = runner_of(report({1: 1.0}, a=(2.1, 1), b=(2.0, 1)))
    assert guard.main(["--baseline", str(path), "--cpu", "cpu B", "--runs", "1"], runner=run) == 0
    assert len(run.calls) == 1
    run = runner_of(report({1: 1.0}, a=(2.1, 1), b=(2.0, 1)))
    assert guard.main(["--baseline", str(path), "--cpu", "cpu A", "--runs", "1"], runner=run) == guard.EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "1 regression(s) beyond 40%" in out and "REGRESSION" in out.splitlines()[-2]


def test_a_cpu_without_a_baseline_is_told_so_and_nothing_runs(tmp_path, capsys):
    path = tmp_path / "baseline.json"
    write_baseline(path, {"AMD EPYC (model string not recorded)": {"ratios": {"a": 1.0}}})

    def runner(extra):
        raise AssertionError("the suite ran although there is nothing to compare with")

    assert guard.main(["--baseline", str(path), "--cpu", "Some New CPU"], runner=runner) == guard.EXIT_NO_BASELINE == 3
    err = capsys.readouterr().err
    assert "no baseline for this CPU ('Some New CPU')" in err
    assert "AMD EPYC (model string not recorded)" in err and "guard.py --save" in err
    # a missing file is the same case
    assert guard.main(["--baseline", str(tmp_path / "none.json"), "--cpu", "x"], runner=runner) == 3


def test_save_writes_this_cpus_entry_and_keeps_the_others(tmp_path, capsys):
    path = tmp_path / "baseline.json"
    other = {"torch": "2.0.0", "note": "kept as it is", "ratios": {"a": 9.0}}
    write_baseline(path, {"other cpu": other, "this  cpu": {"torch": "1.0", "ratios": {"old": 1.0}}})
    run = runner_of(report({1: 2.0, 2: 1.0}, a=(6.0, 1), b=(3.0, 2)),
                    report({1: 2.0, 2: 1.0}, a=(5.0, 1), b=(4.0, 2)))
    assert guard.main(["--baseline", str(path), "--cpu", "this cpu", "--runs", "2", "--save"], runner=run) == 0
    # the run is first compared with the entry it replaces (one run: a check and a new entry)
    out = capsys.readouterr().out
    assert "CPU 'this cpu': baseline measured with torch 1.0" in out
    assert out.index("(new)") < out.index("0 regression(s) beyond 40%") < out.index("written to")
    data = json.loads(path.read_text())
    assert data["about"] == "test"
    assert data["cpus"]["other cpu"] == other
    # the entry is replaced under its existing name; each ratio is the best of the two runs
    assert data["cpus"]["this  cpu"] == {"torch": guard.torch_version(), "ratios": {"a": 2.5, "b": 3.0}}
    assert sorted(data["cpus"]) == ["other cpu", "this  cpu"]
    # a new CPU is added beside them
    assert guard.main(["--baseline", str(path), "--cpu", "new cpu", "--runs", "1", "--save"],
                      runner=runner_of(report({1: 1.0}, a=(1.5, 1)))) == 0
    data = json.loads(path.read_text())
    assert data["cpus"]["new cpu"]["ratios"] == {"a": 1.5} and data["cpus"]["other cpu"] == other


def test_an_old_single_cpu_file_is_refused_plainly(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"benchmarks/x.py::test_a": 1.0}))
    with pytest.raises(SystemExit, match="not a per-CPU baseline"):
        guard.main(["--baseline", str(path), "--cpu", "x"], runner=runner_of())


def test_the_shipped_baseline_is_per_cpu():
    cpus = guard.load_baselines(guard.BASELINE)
    assert cpus and all(isinstance(e["ratios"], dict) and e["ratios"] for e in cpus.values())


def test_a_failing_suite_is_reported_by_its_failing_benchmarks(tmp_path, capsys):
    suite = tmp_path / "test_fake_suite.py"
    suite.write_text(
        "import pytest\n\n"
        "@pytest.fixture\n"
        "def broken():\n"
        "    raise RuntimeError('setup fails')\n\n"
        "def test_calibration(benchmark):\n"
        "    benchmark.group = 'calibration'\n"
        "    benchmark(lambda: None)\n\n"
        "def test_fine(benchmark):\n"
        "    benchmark(lambda: None)\n\n"
        "def test_wrong_answer(benchmark):\n"
        "    assert benchmark(lambda: 1) == 2\n\n"
        "def test_setup_error(benchmark, broken):\n"
        "    benchmark(lambda: None)\n")
    baseline = tmp_path / "baseline.json"
    write_baseline(baseline, {"cpu": {"ratios": {}}})

    def runner(extra):
        return guard.run_suite([*extra, "--benchmark-max-time=0.0001", "--benchmark-warmup=off",
                                f"--rootdir={tmp_path}"], paths=[suite])

    assert guard.main(["--baseline", str(baseline), "--cpu", "cpu", "--runs", "1"], runner=runner) == guard.EXIT_SUITE_FAILED == 4
    err = capsys.readouterr().err
    assert "the benchmark suite failed" in err
    named = [line.strip() for line in err.splitlines() if line.startswith("    ")]
    assert named == ["test_fake_suite.py::test_wrong_answer", "test_fake_suite.py::test_setup_error"]
