"""The latency guard's logic (guard.py), without timing anything: which CPU's baseline it picks,
what it says when this CPU has none, that --save keeps other CPUs' entries, how it compares, and
that a failing suite is reported by the names of its failing benchmarks."""

import json
from pathlib import Path

import guard
import pytest


def report(calibration, **medians):
    """A pytest-benchmark JSON report: a calibration median per thread count, then benchmarks
    given as name=(median, threads) or name=(median, threads, calibration timed beside it)."""
    rows = [{"group": "calibration", "fullname": f"calib[{t}]", "extra_info": {"threads": t}, "stats": {"median": m}}
            for t, m in calibration.items()]
    for name, (m, t, *beside) in medians.items():
        info = {"threads": t, **({"calibration": beside[0]} if beside else {})}
        # the fastest round: a tenth below the median (only read where a calibration is beside it)
        rows.append({"group": "g", "fullname": name, "extra_info": info, "stats": {"median": m, "min": m * 0.9}})
    return {"benchmarks": rows}


def write_baseline(path, cpus):
    """A baseline file of the given entries, each marked as measured against this guard's
    yardstick unless it says otherwise."""
    cpus = {name: {"yardstick": guard.YARDSTICK, **entry} for name, entry in cpus.items()}
    path.write_text(json.dumps({"about": "test", "cpus": cpus}))


def runner_of(*reports):
    """A fake runner handing out the given reports, one per suite run (or per run of the paths
    given, the guard's confirmation runs)."""
    it = iter(reports)
    calls = []

    def run(extra, paths=None):
        calls.append(extra if paths is None else [str(p) for p in paths])
        return next(it)

    run.calls = calls
    return run


def test_baseline_is_picked_by_cpu_model(tmp_path):
    cpus = {"AMD EPYC 9R14 96-Core Processor": {"ratios": {"a": 1.0}},
            "Intel(R) Xeon(R) Processor": {"ratios": {"a": 5.0}}}
    assert guard.select(cpus, "Intel(R)  Xeon(R) Processor ")["ratios"] == {"a": 5.0}  # spacing ignored
    assert guard.select(cpus, "AMD EPYC 9R14 96-Core Processor")["ratios"] == {"a": 1.0}
    assert guard.select(cpus, "AMD EPYC 7R13 Processor") is None


ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD  EPYC
stepping\t: 1

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
"""


def test_the_cpu_model_tells_cpu_generations_with_one_generic_name_apart():
    # What two VMs of this project reported: both "AMD EPYC", one Zen 4 and one Zen 5.
    zen4 = guard.cpu_model(ZEN4)
    zen5 = guard.cpu_model(ZEN4.replace(": 25", ": 26").replace(": 17", ": 2"))
    assert zen4 == "AMD EPYC (family 25, model 17)"
    assert zen5 == "AMD EPYC (family 26, model 2)"
    cpus = {zen4: {"ratios": {"a": 1.0}}}
    assert guard.select(cpus, zen5) is None and guard.select(cpus, zen4) == {"ratios": {"a": 1.0}}
    # Without family and model lines: the name alone.
    assert guard.cpu_model("model name\t: Some CPU\n") == "Some CPU"


def test_the_cpu_model_is_the_reported_name():
    name = guard.cpu_model()
    assert name and name == " ".join(name.split())
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo here")
    first = text.split("\n\n")[0].splitlines()
    value = {line.split(":", 1)[0].strip(): " ".join(line.split(":", 1)[1].split()) for line in first if ":" in line}
    if value.get("model name"):
        assert name.startswith(value["model name"])
        if "cpu family" in value and "model" in value:
            assert name.endswith(f"(family {value['cpu family']}, model {value['model']})")


def test_compares_with_this_cpus_entry_only(tmp_path, capsys):
    path = tmp_path / "baseline.json"
    # Against the other CPU's ratios "b" would be a regression (+100%); against this one's it is not.
    write_baseline(path, {"cpu A": {"torch": guard.torch_version(), "ratios": {"a": 2.0, "b": 1.0}},
                          "cpu B": {"torch": guard.torch_version(), "ratios": {"a": 2.0, "b": 2.0}}})
    run = runner_of(report({1: 1.0}, a=(2.1, 1), b=(2.0, 1)))
    assert guard.main(["--baseline", str(path), "--cpu", "cpu B", "--runs", "1"], runner=run) == 0
    assert len(run.calls) == 1
    run = runner_of(report({1: 1.0}, a=(2.1, 1), b=(2.0, 1)))
    assert guard.main(["--baseline", str(path), "--cpu", "cpu A", "--runs", "1", "--confirm", "0"],
                      runner=run) == guard.EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "1 regression(s) beyond 40%" in out and "REGRESSION" in out.splitlines()[-2]


def judged(tmp_path, base, now, *again):
    """guard.main against an entry of base ratios, with one run whose calibration is 1.0 at 1 and
    2 threads and on the GPU and whose medians are `now` (name -> (median, threads)), then the
    confirmation runs `again` (each a dict like `now`; none: no confirmation run); returns the
    exit status."""
    path = tmp_path / "baseline.json"
    write_baseline(path, {"cpu": {"torch": guard.torch_version(), "ratios": base}})
    args = ["--baseline", str(path), "--cpu", "cpu", "--runs", "1", "--confirm", str(len(again))]
    calib = {1: 1.0, 2: 1.0, "cuda": 1.0}
    return guard.main(args, runner=runner_of(report(calib, **now), *(report(calib, **a) for a in again)))


def test_a_machine_slower_as_a_whole_is_judged_against_its_drift(tmp_path, capsys):
    """Seven benchmarks at 1 thread read 30% slower against the calibration; one of them 60%
    (23% against the others: noise within the tolerance), and in a second run 95% (50% against
    them: a regression). The old rule (the change against the calibration alone) flagged both."""
    base = {f"b{i}": 1.0 for i in range(7)}
    now = {f"b{i}": (1.3, 1) for i in range(7)}
    now["b6"] = (1.6, 1)
    assert judged(tmp_path, base, now) == 0
    out = capsys.readouterr().out
    assert "1 thread(s): drift +30.0% (median change of 7 benchmarks)" in out
    assert "0 regression(s) beyond 40%" in out
    now["b6"] = (1.3 * 1.5, 1)
    assert judged(tmp_path, base, now) == guard.EXIT_REGRESSION
    lines = capsys.readouterr().out.splitlines()
    flagged = [line.split()[0] for line in lines if line.endswith("REGRESSION")]
    assert flagged == ["b6"] and "+50.0%" in next(line for line in lines if line.startswith("b6"))


def test_a_benchmark_beyond_the_tolerance_runs_again_before_it_counts(tmp_path, capsys):
    """Confirmation runs: a row that comes back within the tolerance passes, one that stays
    beyond it after every confirmation run is a regression; only those rows run again (with the
    calibration), and none when nothing is beyond the tolerance."""
    base = {f"b{i}": 1.0 for i in range(6)}
    now = {f"b{i}": (1.0, 1) for i in range(6)}
    now["b5"] = (1.9, 1)
    assert judged(tmp_path, base, now, {"b5": (1.1, 1)}) == 0
    out = capsys.readouterr().out
    assert "guard: 1 benchmark(s) beyond 40%, run again to confirm: b5" in out
    assert "0 regression(s) beyond 40%" in out
    path = tmp_path / "baseline.json"
    run = runner_of(report({1: 1.0}, **now), report({1: 1.0}, b5=(1.8, 1)), report({1: 1.0}, b5=(1.7, 1)))
    assert guard.main(["--baseline", str(path), "--cpu", "cpu", "--runs", "1"], runner=run) == guard.EXIT_REGRESSION
    assert len(run.calls) == 3  # one run, then the default two confirmation runs of b5 alone
    assert [Path(p).name for p in run.calls[1]] == ["test_bench_calibration.py", "b5"]
    assert capsys.readouterr().out.count("run again to confirm: b5") == 2
    run = runner_of(report({1: 1.0}, **{f"b{i}": (1.0, 1) for i in range(6)}))
    assert guard.main(["--baseline", str(path), "--cpu", "cpu", "--runs", "1"], runner=run) == 0
    assert len(run.calls) == 1


def test_every_benchmark_slower_beyond_the_tolerance_is_a_regression(tmp_path, capsys):
    """A drift beyond the tolerance is not normalised away: it is what a regression in code
    that every benchmark shares looks like."""
    base = {f"b{i}": 1.0 for i in range(6)}
    now = {f"b{i}": (1.5, 2) for i in range(6)}
    assert judged(tmp_path, base, now) == guard.EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "2 thread(s): drift +50.0%" in out and "every benchmark of 2 thread(s) slower by more than 40%" in out
    assert "1 regression(s) beyond 40%" in out


def test_each_thread_count_has_its_own_drift(tmp_path, capsys):
    """1-thread benchmarks 30% slower, 2-thread ones 20% faster: a 2-thread benchmark 20% slower
    than its baseline is 50% slower than its peers, a 1-thread one 30% slower is not."""
    base = {**{f"one{i}": 1.0 for i in range(5)}, **{f"two{i}": 1.0 for i in range(6)}, "gpu": 1.0}
    now = {**{f"one{i}": (1.3, 1) for i in range(5)}, **{f"two{i}": (0.8, 2) for i in range(6)}}
    now["two5"] = (1.2, 2)
    now["gpu"] = (1.3, "cuda")  # the GPU rows ("cuda"), here one: judged by its change alone
    assert judged(tmp_path, base, now) == guard.EXIT_REGRESSION
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if line.endswith("REGRESSION")] == ["two5"]
    assert "the GPU rows: 1 benchmark(s) in the baseline" in out


def test_too_few_benchmarks_are_judged_by_their_change_alone(tmp_path, capsys):
    """With fewer than MIN_DRIFT_SET benchmarks at a thread count one regression would be the
    median: there each change is taken as it is (as with -k selecting a few benchmarks)."""
    base = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert judged(tmp_path, base, {"a": (1.5, 1), "b": (1.5, 1), "c": (1.0, 1)}) == guard.EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "fewer than 5: judged by their change alone" in out and "2 regression(s) beyond 40%" in out
    # benchmarks of the entry that did not run are counted, not compared
    assert judged(tmp_path, {**base, "gone": 1.0}, {"a": (1.1, 1)}) == 0
    assert "3 benchmark(s) of the baseline not in this run" in capsys.readouterr().out


def test_each_benchmark_is_divided_by_the_calibration_timed_beside_it():
    """A benchmark's fastest round over the fastest calibration call beside it; its median over
    test_calibration's median only where a report lacks that (reports of the guard before it)."""
    r = guard.ratios(report({1: 2.0, 2: 4.0}, a=(3.0, 1, 1.5), b=(3.0, 1, 0.5), c=(3.0, 1), d=(8.0, 2)))
    assert r == pytest.approx({"a": 2.7 / 1.5, "b": 2.7 / 0.5, "c": 1.5, "d": 2.0})
    with pytest.raises(SystemExit, match="no calibration for c"):
        guard.ratios(report({}, a=(3.0, 1, 1.5), c=(3.0, 1)))


def test_an_entry_against_another_yardstick_is_not_compared(tmp_path, capsys):
    """Ratios saved against test_calibration's median (entries before the calibration beside
    each benchmark) are off by a factor per thread count: told so, nothing runs, and --save
    replaces the entry without comparing."""
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"cpus": {"cpu": {"torch": "2.13.0", "ratios": {"a": 1.0}}}}))

    def runner(extra):
        raise AssertionError("the suite ran although the entry does not compare")

    assert guard.main(["--baseline", str(path), "--cpu", "cpu"], runner=runner) == guard.EXIT_NO_BASELINE
    err = capsys.readouterr().err
    assert "measured against another yardstick" in err and "guard.py --save" in err
    assert guard.main(["--baseline", str(path), "--cpu", "cpu", "--runs", "1", "--save"],
                      runner=runner_of(report({1: 1.0}, a=(10.0, 1, 3.0)))) == 0
    captured = capsys.readouterr()
    assert "This run replaces it without comparing" in captured.err and "REGRESSION" not in captured.out
    assert json.loads(path.read_text())["cpus"]["cpu"]["ratios"] == {"a": pytest.approx(3.0)}


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
    assert data["cpus"]["other cpu"] == {"yardstick": guard.YARDSTICK, **other}
    # the entry is replaced under its existing name; each ratio is the median of the runs' (two
    # runs here: their mean), not the best, which would keep a lucky run's outlier
    assert data["cpus"]["this  cpu"] == {"torch": guard.torch_version(), "yardstick": guard.YARDSTICK,
                                         "ratios": {"a": 2.75, "b": 3.5}}
    assert sorted(data["cpus"]) == ["other cpu", "this  cpu"]
    # a new CPU is added beside them
    assert guard.main(["--baseline", str(path), "--cpu", "new cpu", "--runs", "1", "--save"],
                      runner=runner_of(report({1: 1.0}, a=(1.5, 1)))) == 0
    data = json.loads(path.read_text())
    assert data["cpus"]["new cpu"]["ratios"] == {"a": 1.5}
    assert data["cpus"]["other cpu"] == {"yardstick": guard.YARDSTICK, **other}


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
