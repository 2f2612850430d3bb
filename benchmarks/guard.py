"""Latency budget guard: runs the benchmark suite and fails if any benchmark got slower
relative to the calibration workload measured in the same run, against this CPU model's baseline.

    python benchmarks/guard.py                 # compare with this CPU's entry in benchmarks/baseline.json
    python benchmarks/guard.py --save          # compare, then (re)write this CPU's entry from this run (others kept)
    python benchmarks/guard.py --runs 5 --tolerance 0.3 -k detect
    python benchmarks/guard.py --cpu "my-vm-xeon"   # key the baseline by a name of your choosing

Each benchmark's median is divided by the median of `test_calibration` at the same thread count
(1 or 2; benchmarks without a thread setting use the default, 2 here), both from the same run.
The suite runs several times (--runs, default 3) and each benchmark keeps its smallest ratio:
on a shared machine interference only ever adds time. Measured on the 2-core benchmark machine
with unchanged code: single runs moved single ratios by up to 65%, best-of-three by up to 31%,
hence the default tolerance of 40%; it still catches the regressions that matter here (losing
channels-last costs 2x). The baseline stores these ratios, never absolute times, so a machine
that is uniformly slower or busier does not trip the guard; a benchmark whose ratio grew by more
than the tolerance does.

The ratios do not carry from one CPU model to another (the calibration convolution does not
track the network and core kernels across CPU families: with unchanged code an Intel Xeon read
2 to 8 "regressions" against the AMD EPYC's ratios), so baseline.json keeps one entry per CPU
model, keyed by the model name the CPU reports (/proc/cpuinfo "model name", as lscpu shows it;
--cpu overrides it, e.g. for a virtual machine whose name is generic). The guard compares only
with the entry of the CPU it runs on and says so plainly when there is none.

Exit status:
    0  no regression beyond the tolerance (or --save wrote the entry)
    1  at least one regression beyond the tolerance
    2  bad arguments (argparse)
    3  no baseline for this CPU model (nothing was run): run --save on this CPU, on a quiet machine
    4  the benchmark suite itself failed: the failing or erroring benchmarks are listed
Do not run it next to another heavy job: torch's threads spin when a core is taken.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.json"
EXIT_REGRESSION, EXIT_NO_BASELINE, EXIT_SUITE_FAILED = 1, 3, 4


class SuiteFailed(Exception):
    """The benchmark suite exited nonzero; `failed` names the tests that failed or errored."""

    def __init__(self, returncode: int, failed: List[str]):
        super().__init__(f"pytest exited with status {returncode}")
        self.returncode, self.failed = returncode, failed


def cpu_model() -> str:
    """The CPU's model name as the OS reports it (Linux: /proc/cpuinfo, what lscpu shows as
    "Model name"), whitespace collapsed; platform.processor() elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return " ".join(platform.processor().split()) or "unknown CPU"


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


def ratios(report: dict) -> dict:
    calib, medians = {}, {}
    for b in report["benchmarks"]:
        threads = b.get("extra_info", {}).get("threads", b.get("params", {}).get("threads", 2))
        if b["group"] == "calibration":
            calib[threads] = b["stats"]["median"]
        else:
            medians[b["fullname"]] = (b["stats"]["median"], threads)
    if not calib:
        raise SystemExit("the run has no calibration benchmark")
    fallback = calib.get(2, next(iter(calib.values())))
    return {name: m / calib.get(t, fallback) for name, (m, t) in medians.items()}


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
    cpus[key] = {"torch": torch_version, "ratios": dict(sorted(now.items()))}
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


def compare(cpu: str, entry: dict, now: Dict[str, float], tolerance: float) -> int:
    """Prints each benchmark's ratio against the entry's; returns the regressions beyond tolerance."""
    base = entry["ratios"]
    print(f"CPU {cpu!r}: baseline measured with torch {entry.get('torch', '?')}")
    if entry.get("torch") not in (None, torch_version()):
        print(f"note: this run uses torch {torch_version()}; another torch build moves the network "
              "stages by itself (refresh the entry with --save if that is the change)")
    print(f"{'benchmark':<70} {'base':>8} {'now':>8} {'change':>8}")
    failed = 0
    for name, r in sorted(now.items()):
        if name not in base:
            print(f"{name:<70} {'-':>8} {r:>8.3f}   (new)")
            continue
        change = r / base[name] - 1
        flag = "  REGRESSION" if change > tolerance else ""
        failed += bool(flag)
        print(f"{name:<70} {base[name]:>8.3f} {r:>8.3f} {change:>+7.1%}{flag}")
    print(f"{failed} regression(s) beyond {tolerance:.0%}")
    return failed


def main(argv=None, runner=run_suite) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--save", action="store_true", help="write this run's ratios as this CPU's baseline")
    ap.add_argument("--baseline", type=Path, default=BASELINE)
    ap.add_argument("--cpu", default=None, help="the baseline entry's name (default: the CPU's model name)")
    ap.add_argument("--tolerance", type=float, default=0.40)
    ap.add_argument("--runs", type=int, default=3, help="suite runs; each benchmark keeps its best")
    ap.add_argument("-k", help="pytest -k expression (the calibration always runs)")
    args = ap.parse_args(argv)
    cpu = args.cpu or cpu_model()
    baselines = load_baselines(args.baseline)
    entry = select(baselines, cpu)
    if entry is None and not args.save:
        print(no_baseline_message(args.baseline, cpu, baselines), file=sys.stderr)
        return EXIT_NO_BASELINE

    extra = ["-k", f"calibration or ({args.k})"] if args.k else []
    now: dict = {}
    for _ in range(args.runs):
        try:
            report = runner(extra)
        except SuiteFailed as e:
            names = "\n".join(f"    {n}" for n in e.failed) or "    (none recorded: see pytest's output above)"
            print(f"guard: the benchmark suite failed (pytest exit status {e.returncode}); nothing was "
                  f"compared. Failing or erroring benchmarks:\n{names}", file=sys.stderr)
            return EXIT_SUITE_FAILED
        for name, r in ratios(report).items():
            now[name] = min(r, now.get(name, r))
    failed = 0
    if entry is not None:  # with --save too: the run compared with the entry it replaces
        failed = compare(cpu, entry, now, args.tolerance)
    if args.save:
        save(args.baseline, cpu, torch_version(), now)
        print(f"baseline of {len(now)} ratios for {cpu!r} written to {args.baseline}")
        return 0
    return EXIT_REGRESSION if failed else 0


if __name__ == "__main__":
    sys.exit(main())
