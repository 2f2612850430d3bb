#!/usr/bin/env bash
# Builds the C++ core with AddressSanitizer and UndefinedBehaviorSanitizer into a separate
# virtual environment (.venv-asan) and runs the core's tests and fuzzing (hypothesis, against
# the NumPy reference) under it. Any out-of-bounds access or undefined behaviour aborts the run.
#   bash scripts/sanitize.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-asan/bin/python ] || python3 -m venv .venv-asan
.venv-asan/bin/python -m pip install -q torch==2.13.0
.venv-asan/bin/python -m pip install -q ".[opencv,test]" -Ccmake.define.MTCNN_FAST_SANITIZE=ON \
  -Ccmake.build-type=Debug -Cbuild-dir=build-asan
ASAN_LIB=$(g++ -print-file-name=libasan.so)
UBSAN_LIB=$(g++ -print-file-name=libubsan.so)
export LD_PRELOAD="$ASAN_LIB $UBSAN_LIB"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export HYPOTHESIS_PROFILE=fuzz
.venv-asan/bin/python -m pytest tests/test_ops.py tests/test_fuzz_core.py -q -p no:cacheprovider "$@"
