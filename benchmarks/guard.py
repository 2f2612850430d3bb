"""Latency budget guard: runs the benchmark suite and fails if any benchmark got slower
relative to a calibration workload timed beside it, against this CPU model's baseline.

    python benchmarks/guard.py                 # compare with this CPU's entry in benchmarks/baseline.json
    python benchmarks/guard.py --save          # compare, then (re)write this CPU's entry from this run (others kept)
    python benchmarks/guard.py --runs 5 --tolerance 0.3 -k detect
    python benchmarks/guard.py --cpu "my-vm-xeon"   # key the baseline by a name of your choosing

Each benchmark's fastest round is divided by the fastest of ten calls of a fixed calibration
workload (a torch convolution and a NumPy sort, none of mtcnn-fast's code) timed right before and
after it at its thread count (benchmarks/conftest.py): on a shared VM whose speed moves by tens
of percent from minute to minute, a yardstick timed seconds away tracks the benchmark; the
calibration benchmark of the run, timed once, did not (measured on an AMD EPYC with unchanged
code, four single runs: each benchmark's ratio spread by 1.72x (median over the 50; 2.19x at the
90th percentile) against that one, 1.21x (1.40x) against the calibration beside it, 1.28x
(1.55x) with no yardstick at all). The suite runs several times (--runs, default 3): a check
keeps each benchmark's smallest ratio (interference only ever adds time), while --save writes
the median of the runs' ratios, so that the entry is a benchmark's typical ratio and not the
luckiest run's (a check then needs every run 40% slower than typical to fail). The baseline stores these
ratios, never absolute times, so a machine that is uniformly slower or busier does not trip the
guard; the default tolerance is 40% (losing channels-last costs 2x).

Each thread count's drift, the median change of its benchmarks against the baseline, is measured
too, and a benchmark is a regression when its change against that drift exceeds the tolerance:
the VM moves 1- and 2-thread work apart, and its memory-bound passes and page faults apart from
any convolution (with the earlier yardstick an AMD EPYC read every ratio 16 to 19% higher minutes
after its entry was saved, and 4 of 50 benchmarks beyond 40%). A drift itself beyond the tolerance
is a regression as well (every benchmark slower: code they all share, or a machine slower than
the calibration shows; the guard names the thread count). Thread counts with fewer than
MIN_DRIFT_SET benchmarks in the run (e.g. after -k) are judged by each change alone. An entry
saved against another yardstick (YARDSTICK) is not compared: the guard says so and asks for --save.

The ratios do not carry from one CPU model to another (the calibration convolution does not
track the network and core kernels across CPU families: with unchanged code an Intel Xeon read
2 to 8 "regressions" against the AMD EPYC's ratios), so baseline.json keeps one entry per CPU
model, keyed by the model name the CPU reports (/proc/cpuinfo "model name", as lscpu shows it)
with its family and model numbers (cpu_model: virtual machines report generic names, and an AMD
EPYC of the Zen 4 and of the Zen 5 generation both say "AMD EPYC"); --cpu overrides it. The guard
compares only with the entry of the CPU it runs on and says so plainly when there is none.

Exit status:
    0  no regression beyond the tolerance (or --save wrote the entry)
    1  at least one regression beyond the tolerance
    2  bad arguments (argparse)
    3  no baseline for this CPU model, or one saved against another yardstick (nothing was run):
       run --save on this CPU, on a quiet machine
    4  the benchmark suite itself failed: the failing or erroring benchmarks are listed
Do not run it next to another heavy job: torch's threads spin when a core is taken.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"
EXIT_REGRESSION, EXIT_NO_BASELINE, EXIT_SUITE_FAILED = 1, 3, 4
# A thread count's drift is taken from at least this many benchmarks (see drifts).
MIN_DRIFT_SET = 5
# A benchmark's thread count, or "cuda" for the GPU rows.
ThreadKey = Union[int, str]
# What an entry's ratios are divided by; an entry saved against another yardstick does not compare.
YARDSTICK = "fastest round / fastest of 10 calibration calls beside it; entry: median of the runs"


class SuiteFailed(Exception):
    """The benchmark suite exited nonzero; `failed` names the tests that failed or errored."""

    def __init__(self, returncode: int, failed: List[str]):
        super().__init__(f"pytest exited with status {returncode}")
        self.returncode, self.failed = returncode, failed


def cpu_model(cpuinfo: Optional[str] = None) -> str:
    """The CPU model this run's ratios belong to: the model name the OS reports (Linux:
    /proc/cpuinfo, what lscpu shows as "Model name"), whitespace collapsed, followed by the CPU
    family and model numbers where the OS gives them, e.g. "AMD EPYC (family 26, model 2)".
    Virtual machines often report a generic name: an AMD EPYC of the Zen 4 generation (family 25,
    model 17) and one of Zen 5 (family 26, model 2) both say "AMD EPYC", and their ratios differ
    (with unchanged code the Zen 5 read the NMS benchmarks 61 to 90% slower than the Zen 4 entry,
    against the drift, and the C++ crops 45% faster). platform.processor() where there is no
    /proc/cpuinfo. `cpuinfo`: its text, for tests."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: Dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip() and fields:
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), " ".join(value.split()))
    name = fields.get("model name", "")
    if not name:
        return " ".join(platform.processor().split()) or "unknown CPU"
    family, model = fields.get("cpu family", ""), fields.get("model", "")
    return f"{name} (family {family}, model {model})" if family and model else name


def failed_tests(junit: Path) -> List[str]:
    """The tests a JUnit XML report records as failed or errored, as file::name[params]."""
    if not junit.is_file():
        return []
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            cls, name = case.get("classname", ""), case.get("name", "")
            # classname is dotted (benchmarks.test_bench_pipeline); show it as the file it names
            out.append(f"{cls.replace('.', '/')}.py::{name}" if cls else name)
    return out


def run_suite(extra: Sequence[str] = (), paths: Sequence[Path] = (HERE,)) -> dict:
    """Runs pytest on `paths` with timing on and returns pytest-benchmark's JSON report; raises
    SuiteFailed, naming the failing tests, if pytest exits nonzero."""
    with tempfile.TemporaryDirectory() as tmp:
        out, junit = Path(tmp) / "bench.json", Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", *map(str, paths), "-q", "-p", "no:cacheprovider",
               "--benchmark-only", f"--benchmark-json={out}", "--benchmark-min-rounds=5",
               f"--junitxml={junit}", *extra]
        proc = subprocess.run(cmd)
        if proc.returncode != 0:
            raise SuiteFailed(proc.returncode, failed_tests(junit))
        return json.loads(out.read_text())


def _threads(bench: dict):
    """A benchmark's thread count (its extra_info or parameter, else torch's default here, 2), or
    "cuda" for the GPU rows."""
    return bench.get("extra_info", {}).get("threads", bench.get("params", {}).get("threads", 2))


def ratios(report: dict) -> dict:
    """Each benchmark's fastest round divided by the fastest call of the calibration work timed
    right beside it (extra_info "calibration", conftest.py): interference on a shared machine only
    ever adds time, to either. Rows without that (the GPU rows, which have their own calibration,
    and reports of the guard before it) give each median divided by the run's calibration median
    at its thread count ("cuda" for the GPU)."""
    calib, rows = {}, {}
    for b in report["benchmarks"]:
        threads = _threads(b)
        if b["group"] == "calibration":
            calib[threads] = b["stats"]["median"]
        else:
            rows[b["fullname"]] = (b["stats"], threads, b.get("extra_info", {}).get("calibration"))
    out = {}
    for name, (stats, t, beside) in rows.items():
        if beside:
            out[name] = stats["min"] / beside
        elif calib:
            out[name] = stats["median"] / calib.get(t, calib.get(2, next(iter(calib.values()))))
        else:
            raise SystemExit(f"the run has no calibration for {name}")
    return out


def thread_counts(report: dict) -> Dict[str, ThreadKey]:
    """Each benchmark's thread count (the calibration left out)."""
    return {b["fullname"]: _threads(b) for b in report["benchmarks"] if b["group"] != "calibration"}


def drifts(base: Dict[str, float], now: Dict[str, float],
           threads: Dict[str, ThreadKey]) -> Dict[ThreadKey, Tuple[float, int]]:
    """Per thread count: the median of now / base over the benchmarks both have at that count, and
    how many there are. That median is how far the machine as a whole moved against the
    calibration since the baseline: on a shared VM it moves 1- and 2-thread work apart, and
    memory-bound and compute-bound kernels apart from the calibration's convolution (an AMD EPYC
    read every ratio 16 to 19% higher minutes after its entry was saved). Counts with fewer than
    MIN_DRIFT_SET such benchmarks get no drift (1.0): there one regression would be the median."""
    changes: Dict[ThreadKey, List[float]] = {}
    for name, r in now.items():
        if name in base and base[name] > 0:
            changes.setdefault(threads.get(name, 2), []).append(r / base[name])
    return {t: (statistics.median(c) if len(c) >= MIN_DRIFT_SET else 1.0, len(c)) for t, c in changes.items()}


def load_baselines(path: Path) -> Dict[str, dict]:
    """The baseline file's entries, CPU model -> {"torch": version, "ratios": {...}}; none if
    the file does not exist."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("cpus"), dict):
        raise SystemExit(f"{path} is not a per-CPU baseline (expected {{\"cpus\": {{model: entry}}}}); "
                         "an old single-CPU file cannot tell which CPU it was measured on")
    return data["cpus"]


def select(baselines: Dict[str, dict], cpu: str) -> Optional[dict]:
    """This CPU's entry (model names compared with whitespace collapsed), or None."""
    key = " ".join(cpu.split())
    for name, entry in baselines.items():
        if " ".join(name.split()) == key:
            return entry
    return None


def save(path: Path, cpu: str, torch_version: str, now: Dict[str, float]) -> None:
    """Writes (or replaces) this CPU's entry, keeping every other CPU's."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    cpus = load_baselines(path)
    key = next((name for name in cpus if " ".join(name.split()) == " ".join(cpu.split())), cpu)
    cpus[key] = {"torch": torch_version, "yardstick": YARDSTICK, "ratios": dict(sorted(now.items()))}
    data["cpus"] = dict(sorted(cpus.items()))
    path.write_text(json.dumps(data, indent=1) + "\n")


def no_baseline_message(path: Path, cpu: str, baselines: Dict[str, dict]) -> str:
    have = ", ".join(repr(n) for n in baselines) or "none"
    return (f"guard: no baseline for this CPU ({cpu!r}) in {path} (it has: {have}).\n"
            "Ratios do not carry from one CPU model to another, so nothing was compared. On a quiet "
            "machine, record this CPU's baseline with\n"
            "    python benchmarks/guard.py --save\n"
            "(other CPUs' entries are kept; --cpu NAME picks or names an entry yourself). "
            f"Exit status {EXIT_NO_BASELINE}.")


def torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "unknown"


def best(seen: Dict[str, List[float]]) -> Dict[str, float]:
    """Each benchmark's smallest ratio over its runs: interference only ever adds time."""
    return {name: min(rs) for name, rs in seen.items()}


def against_drift(name: str, base: Dict[str, float], now: Dict[str, float], threads: Dict[str, ThreadKey],
                  drift: Dict[ThreadKey, Tuple[float, int]]) -> float:
    """A benchmark's change against the baseline, divided by its thread count's drift, minus 1."""
    return now[name] / base[name] / drift.get(threads.get(name, 2), (1.0, 0))[0] - 1


def suspects(base: Dict[str, float], now: Dict[str, float], threads: Dict[str, ThreadKey],
             tolerance: float) -> List[str]:
    """The benchmarks whose change against their drift exceeds the tolerance."""
    drift = drifts(base, now, threads)
    return sorted(n for n in now if n in base and against_drift(n, base, now, threads, drift) > tolerance)


def compare(cpu: str, entry: dict, now: Dict[str, float], tolerance: float,
            threads: Optional[Dict[str, ThreadKey]] = None) -> int:
    """Prints each benchmark's ratio against the entry's and its change against its thread
    count's drift (drifts); returns the regressions beyond tolerance: each benchmark whose change
    against the drift exceeds it, and each thread count whose drift itself does (every benchmark
    slower: a regression in code they all share, or a machine slower in a way the calibration
    missed; either way not to be normalised away)."""
    base = entry["ratios"]
    threads = threads or {}
    print(f"CPU {cpu!r}: baseline measured with torch {entry.get('torch', '?')}")
    if entry.get("torch") not in (None, torch_version()):
        print(f"note: this run uses torch {torch_version()}; another torch build moves the network "
              "stages by itself (refresh the entry with --save if that is the change)")
    drift = drifts(base, now, threads)
    failed = 0
    for t, (d, n) in sorted(drift.items(), key=lambda item: str(item[0])):
        where = "the GPU rows" if t == "cuda" else f"{t} thread(s)"
        if n < MIN_DRIFT_SET:
            print(f"{where}: {n} benchmark(s) in the baseline, fewer than {MIN_DRIFT_SET}: judged by their change alone")
            continue
        flag = d - 1 > tolerance
        failed += flag
        print(f"{where}: drift {d - 1:+.1%} (median change of {n} benchmarks); each is judged against it"
              + (f"  REGRESSION: every benchmark of {where} slower by more than {tolerance:.0%}" if flag else ""))
    print(f"{'benchmark':<70} {'base':>8} {'now':>8} {'change':>8} {'vs drift':>9}")
    for name, r in sorted(now.items()):
        if name not in base:
            print(f"{name:<70} {'-':>8} {r:>8.3f}   (new)")
            continue
        change = r / base[name]
        against = against_drift(name, base, now, threads, drift)
        flag = "  REGRESSION" if against > tolerance else ""
        failed += bool(flag)
        print(f"{name:<70} {base[name]:>8.3f} {r:>8.3f} {change - 1:>+7.1%} {against:>+8.1%}{flag}")
    missing = sorted(set(base) - set(now))
    if missing:
        print(f"{len(missing)} benchmark(s) of the baseline not in this run (deselected, or renamed since "
              "the entry was saved)")
    print(f"{failed} regression(s) beyond {tolerance:.0%}")
    return failed


def main(argv=None, runner=run_suite) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true", help="write this run's ratios as this CPU's baseline")
    ap.add_argument("--baseline", type=Path, default=BASELINE)
    ap.add_argument("--cpu", default=None, help="the baseline entry's name (default: the CPU's model name, family and model)")
    ap.add_argument("--tolerance", type=float, default=0.40)
    ap.add_argument("--runs", type=int, default=3,
                    help="suite runs; a check keeps each benchmark's best ratio, --save their median")
    ap.add_argument("--confirm", type=int, default=2,
                    help="runs of the benchmarks found beyond the tolerance, again, before they count")
    ap.add_argument("-k", help="pytest -k expression (the calibration always runs)")
    args = ap.parse_args(argv)
    cpu = args.cpu or cpu_model()
    baselines = load_baselines(args.baseline)
    entry = select(baselines, cpu)
    if entry is None and not args.save:
        print(no_baseline_message(args.baseline, cpu, baselines), file=sys.stderr)
        return EXIT_NO_BASELINE
    if entry is not None and entry.get("yardstick") != YARDSTICK:
        print(f"guard: this CPU's entry ({cpu!r}) was measured against another yardstick "
              f"({entry.get('yardstick', 'the median of test_calibration, timed once per run')!r}; this guard "
              f"divides by the {YARDSTICK}), so its ratios do not compare. "
              + ("This run replaces it without comparing." if args.save else
                 "Record it again on a quiet machine with\n    python benchmarks/guard.py --save"),
              file=sys.stderr)
        if not args.save:
            return EXIT_NO_BASELINE
        entry = None

    extra = ["-k", f"calibration or ({args.k})"] if args.k else []
    seen: Dict[str, List[float]] = {}  # each benchmark's ratio in every run
    threads: Dict[str, ThreadKey] = {}
    try:
        for _ in range(args.runs):
            report = runner(extra)
            for name, r in ratios(report).items():
                seen.setdefault(name, []).append(r)
            threads.update(thread_counts(report))
        # A benchmark beyond the tolerance runs again (alone, beside the calibrations) before it
        # counts: a regression stays, while a row that sat in a slow mode for one whole process
        # need not (the C++ crops at 2 threads: fastest of 200-odd calls 1.7 to 4.6 ms from one
        # run of the suite to the next, with no page faults).
        for _ in range(0 if entry is None or args.save else args.confirm):
            again = suspects(entry["ratios"], best(seen), threads, args.tolerance)
            if not again:
                break
            print(f"guard: {len(again)} benchmark(s) beyond {args.tolerance:.0%}, run again to confirm: "
                  + ", ".join(again))
            nodes = [HERE / "test_bench_calibration.py"] + [HERE.parent / name for name in again]
            if any(threads.get(name) == "cuda" for name in again):
                nodes.append(HERE / "test_bench_cuda.py::test_calibration_cuda")
            for name, r in ratios(runner([], nodes)).items():
                if name in seen:
                    seen[name].append(r)
    except SuiteFailed as e:
        names = "\n".join(f"    {n}" for n in e.failed) or "    (none recorded: see pytest's output above)"
        print(f"guard: the benchmark suite failed (pytest exit status {e.returncode}); nothing was "
              f"compared. Failing or erroring benchmarks:\n{names}", file=sys.stderr)
        return EXIT_SUITE_FAILED
    failed = 0
    if entry is not None:  # with --save too: the run compared with the entry it replaces
        failed = compare(cpu, entry, best(seen), args.tolerance, threads)
    if args.save:
        # The entry keeps each benchmark's typical ratio, the median of the runs, while a check
        # takes its best: the best of the save's runs would keep a lucky run's outlier (the
        # crops, a 2 to 5 ms call at 2 threads, read 0.48 in one run against 0.77 to 1.7 in others).
        save(args.baseline, cpu, torch_version(), {name: statistics.median(rs) for name, rs in seen.items()})
        print(f"baseline of {len(seen)} ratios (each the median of {args.runs} runs) for {cpu!r} written to {args.baseline}")
        return 0
    return EXIT_REGRESSION if failed else 0


if __name__ == "__main__":
    sys.exit(main())
