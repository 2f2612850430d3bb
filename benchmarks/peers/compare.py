"""Side-by-side speed table: mtcnn-fast and each installed peer, one after another in one run,
same frames, same settings (min face 20, thresholds 0.6/0.7/0.7, factor 0.709), 1 and 2 threads.

    .venv/bin/python benchmarks/peers/compare.py [--repeat 10] [--out benchmarks/results/speed.json]

Peers run in their own virtual environments (paths below; see each peer script's docstring for
how to create them) and are skipped when missing. Nothing else may run meanwhile: torch's OpenMP
threads spin when a core is taken, and the timings are then meaningless.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUNNERS = {
    "mtcnn-fast": (REPO / ".venv" / "bin" / "python", HERE / "mtcnn_fast_speed.py"),
    "facenet-pytorch 2.6.0": (Path("/work/peers/facenet/bin/python"), HERE / "facenet_pytorch.py"),
}


def run(python: Path, script: Path, threads: int, repeat: int, sizes) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [str(python), str(script)]
        if script.name == "facenet_pytorch.py":
            cmd.append("speed")
        cmd += ["--threads", str(threads), "--repeat", str(repeat), "--json", str(out), "--sizes", *sizes]
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                       env={"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"})
        return json.loads(out.read_text())["results"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1280x720", "1920x1080", "wider"])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "speed.json")
    args = ap.parse_args(argv)
    table = {}
    for threads in (1, 2):
        for name, (python, script) in RUNNERS.items():
            if not python.exists():
                print(f"skipping {name}: {python} not found", file=sys.stderr)
                continue
            table[f"{name} @{threads}t"] = run(python, script, threads, args.repeat, args.sizes)
            print(f"done: {name} @{threads}t", file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=2) + "\n")
    print(f"median ms per frame (faces found); ratio = facenet-pytorch / mtcnn-fast at the same threads")
    print(f"{'implementation':<28}" + "".join(f"{s:>20}" for s in args.sizes))
    for key, res in table.items():
        print(f"{key:<28}" + "".join(f"{res[s]['median_ms']:>13.1f} ({res[s]['faces']:>3})" for s in args.sizes))
    for threads in (1, 2):
        ours, ref = table.get(f"mtcnn-fast @{threads}t"), table.get(f"facenet-pytorch 2.6.0 @{threads}t")
        if ours and ref:
            print(f"{'speed-up @' + str(threads) + 't':<28}" + "".join(
                f"{ref[s]['median_ms'] / ours[s]['median_ms']:>19.2f}x" for s in args.sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
