#!/usr/bin/env bash
# Tests what scripts/build_release.sh put in dist/, as a user without a compiler gets it:
#  1. the wheel's and the sdist's file lists (tests/test_release.py's wheel_problems, tarfile);
#  2. a fresh venv, with no compiler or CMake on the PATH (CC and CXX set to /bin/false as
#     well): torch's CPU build, then the repaired wheel with its opencv, test and onnx extras,
#     binaries only; `mtcnn-fast demo`; the test suite, run from a copy of tests/ (and the
#     training code they import) so that only the installed wheel can be imported;
#  3. a venv that already has opencv-python (the GUI variant): installing the wheel keeps it,
#     brings no opencv-python-headless, and the demo runs on it.
#   bash scripts/check_release.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0}  # the CPU build (a plain `torch` from PyPI is a CUDA build)

shopt -s nullglob
wheels=(dist/mtcnn_fast-*-manylinux*.whl)
sdists=(dist/mtcnn_fast-*.tar.gz)
if [ ${#wheels[@]} -ne 1 ] || [ ${#sdists[@]} -ne 1 ]; then
  echo "expected one repaired wheel and one sdist in dist/: run scripts/build_release.sh" >&2
  exit 2
fi
WHEEL=$REPO/${wheels[0]}
SDIST=$REPO/${sdists[0]}
PY=$(command -v "$PYTHON")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mtcnn-fast-release.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "== the files"
"$PY" - "$WHEEL" "$SDIST" <<'EOF'
import sys, tarfile, zipfile
sys.path.insert(0, "tests")
from test_release import wheel_problems

wheel, sdist = sys.argv[1:]
names = zipfile.ZipFile(wheel).namelist()
problems = wheel_problems(names)
assert not problems, problems
core = [n for n in names if n.startswith("mtcnn_fast/_core.")]
print(f"{wheel.rsplit('/', 1)[1]}: {len(names)} files, the core {core}, no libgomp")
with tarfile.open(sdist) as tar:
    members = tar.getnames()
for lic in ("LICENSE", "src/mtcnn_fast/weights/LICENSE", "tests/conftest.py"):
    assert any(m.split("/", 1)[-1] == lic for m in members), lic
assert not any("/benchmarks/" in m or "/training/weights/" in m or "/.ci/" in m for m in members)
print(f"{sdist.rsplit('/', 1)[1]}: {len(members)} entries")
EOF

# A PATH with the venv's bin and a few ordinary tools, none of which compiles anything.
TOOLBIN=$WORK/toolbin
mkdir -p "$TOOLBIN"
for tool in sh bash env cat cp mv rm ls mkdir rmdir uname ldconfig readlink dirname basename \
            grep sed tr head tail sort wc nproc id true false; do
  found=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v "$tool" || true)
  [ -n "$found" ] && ln -s "$found" "$TOOLBIN/$tool"
done

in_venv() {  # in_venv VENV command...: runs with the venv's bin and the tools only
  local venv=$1
  shift
  env -u PYTHONPATH PATH="$venv/bin:$TOOLBIN" CC=/bin/false CXX=/bin/false "$@"
}

echo "== fresh venv, no compiler: torch, the wheel, the demo, the suite"
V1=$WORK/venv
"$PY" -m venv "$V1"
in_venv "$V1" python - <<'EOF'
import shutil
found = {t: shutil.which(t) for t in ("cc", "gcc", "g++", "c++", "clang", "clang++", "cmake", "ninja", "make")}
assert not any(found.values()), f"a compiler or build tool is on the PATH: {found}"
print("no compiler, CMake, Ninja or make on the PATH")
EOF
in_venv "$V1" python -m pip install -q --only-binary=:all: "$TORCH"
in_venv "$V1" python -m pip install -q --only-binary=:all: "$WHEEL[opencv,test,onnx]"
(cd "$WORK" && in_venv "$V1" mtcnn-fast demo --output "$WORK/demo.jpg")
[ -s "$WORK/demo.jpg" ]
SUITE=$WORK/suite
mkdir -p "$SUITE"
cp -r tests training pyproject.toml "$SUITE/"
# The tests that need ../shared/data (next to the repository) find it next to the copy too.
[ -d "$REPO/../shared" ] && ln -s "$(readlink -f "$REPO/../shared")" "$WORK/shared"
rm -rf "$SUITE/tests/__pycache__"
(cd "$SUITE" && in_venv "$V1" python - "$V1" <<'EOF'
import os, sys
import mtcnn_fast, mtcnn_fast._core as core
venv = os.path.realpath(sys.argv[1])
for f in (mtcnn_fast.__file__, core.__file__):
    assert os.path.realpath(f).startswith(venv + os.sep), f"{f} is not the installed wheel's"
print("imports", os.path.dirname(mtcnn_fast.__file__))
EOF
)
facenet=$REPO/.ci-cache/facenet_pytorch-2.6.0-py3-none-any.whl
(cd "$SUITE" && MTCNN_FAST_FACENET_WHEEL=$([ -f "$facenet" ] && echo "$facenet" || true) \
  in_venv "$V1" python -m pytest tests -q -p no:cacheprovider "$@")

echo "== a venv that already has opencv-python: the wheel keeps it"
V2=$WORK/venv-opencv
"$PY" -m venv "$V2"
in_venv "$V2" python -m pip install -q --only-binary=:all: "$TORCH" opencv-python
before=$(in_venv "$V2" python -c "import cv2; print(cv2.__file__, cv2.__version__)")
in_venv "$V2" python -m pip install -q --only-binary=:all: "$WHEEL"
after=$(in_venv "$V2" python -c "import cv2; print(cv2.__file__, cv2.__version__)")
[ "$before" = "$after" ] || { echo "cv2 changed: $before -> $after" >&2; exit 1; }
in_venv "$V2" python - <<'EOF'
import importlib.metadata as md
have = {d.metadata["Name"].lower() for d in md.distributions()}
variants = sorted(n for n in have if n.startswith("opencv"))
assert variants == ["opencv-python"], variants
print("OpenCV distributions installed:", variants)
EOF
in_venv "$V2" python -m pip check
(cd "$WORK" && in_venv "$V2" mtcnn-fast demo --output "$WORK/demo2.jpg")
[ -s "$WORK/demo2.jpg" ]
echo "release check passed: $(basename "$WHEEL"), $(basename "$SDIST")"
