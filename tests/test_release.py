"""What a release ships: the installed wheel's files (from its RECORD, the wheel's own listing),
the sdist's files (built into a temporary folder and listed with tarfile), one version, the
licences in both, the torch floor that is tested, and one OpenMP runtime in the process.

scripts/check_release.sh runs this module (with the rest of the suite) against the repaired
wheel installed in a fresh venv, and lists the wheel file itself with wheel_problems()."""

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests also run from a copy (cibuildwheel's test-sources, or an unpacked sdist) against an
# installed wheel: the configuration checks need the repository's files.
SOURCE_TREE = all((REPO / p).exists() for p in ("CMakeLists.txt", "src/mtcnn_fast", ".ci/run"))
needs_source_tree = pytest.mark.skipif(not SOURCE_TREE, reason=f"needs the source tree (not at {REPO})")

WEIGHTS = ("pnet.npz", "rnet.npz", "onet.npz")


def wheel_problems(names):
    """What is wrong with a wheel's file list (paths inside the wheel); [] when it is right."""
    names = set(names)
    problems = []
    pkg = {n for n in names if n.startswith("mtcnn_fast/")}
    core = [n for n in pkg if re.fullmatch(r"mtcnn_fast/_core\.[^/]*(\.so|\.pyd)", n)]
    if len(core) != 1:
        problems.append(f"expected one compiled core mtcnn_fast/_core.*.so|pyd, found {core}")
    wanted = ["mtcnn_fast/_core.pyi", "mtcnn_fast/py.typed", "mtcnn_fast/__init__.py",
              "mtcnn_fast/weights/LICENSE", "mtcnn_fast/data/astronaut.png"]
    wanted += [f"mtcnn_fast/weights/{w}" for w in WEIGHTS]
    problems += [f"missing {n}" for n in wanted if n not in names]
    info = {n for n in names if re.match(r"mtcnn_fast-[^/]+\.dist-info/", n)}
    for lic in ("licenses/LICENSE", "licenses/src/mtcnn_fast/weights/LICENSE"):
        if not any(n.endswith(".dist-info/" + lic) for n in info):
            problems.append(f"missing the licence file .dist-info/{lic}")
    top = {n.split("/")[0] for n in names}
    stray = top - {"mtcnn_fast", "mtcnn_fast.libs"} - {n.split("/")[0] for n in info}
    if stray:
        problems.append(f"unexpected top-level entries: {sorted(stray)}")
    for n in names:
        if re.search(r"(^|/)(tests?|benchmarks|training|__pycache__)/", n) or n.endswith(".pyc"):
            problems.append(f"should not ship {n}")
        if "gomp" in n.rsplit("/", 1)[-1]:
            problems.append(f"vendors an OpenMP runtime: {n} (torch's is the one to use)")
    return problems


def test_wheel_problems_finds_what_is_wrong():
    good = ["mtcnn_fast/__init__.py", "mtcnn_fast/_core.cpython-311-x86_64-linux-gnu.so",
            "mtcnn_fast/_core.pyi", "mtcnn_fast/py.typed", "mtcnn_fast/weights/LICENSE",
            "mtcnn_fast/data/astronaut.png", *(f"mtcnn_fast/weights/{w}" for w in WEIGHTS),
            "mtcnn_fast-0.1.0.dist-info/licenses/LICENSE",
            "mtcnn_fast-0.1.0.dist-info/licenses/src/mtcnn_fast/weights/LICENSE",
            "mtcnn_fast-0.1.0.dist-info/RECORD"]
    assert wheel_problems(good) == []
    bad = [n for n in good if not n.endswith("py.typed") and "licenses/src" not in n]
    bad += ["mtcnn_fast.libs/libgomp-a34b3233.so.1", "tests/test_ops.py"]
    found = "\n".join(wheel_problems(bad))
    for what in ("missing mtcnn_fast/py.typed", "licenses/src/mtcnn_fast/weights/LICENSE",
                 "libgomp-a34b3233", "unexpected top-level entries: ['tests']", "tests/test_ops.py"):
        assert what in found


def test_the_installed_wheel_holds_what_a_release_ships():
    """The installed distribution's RECORD lists exactly the wheel's files."""
    files = md.files("mtcnn-fast")
    assert files is not None
    # RECORD also lists what pip made at install time: the console script and bytecode.
    names = [f.as_posix() for f in files]
    names = [n for n in names if not n.startswith("../") and "/__pycache__/" not in n]
    assert wheel_problems(names) == []
    meta = md.metadata("mtcnn-fast")
    assert meta["License-Expression"] == "MIT"
    assert sorted(meta.get_all("License-File")) == ["LICENSE", "src/mtcnn_fast/weights/LICENSE"]


def test_one_version():
    import mtcnn_fast

    assert md.version("mtcnn-fast") == mtcnn_fast.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", mtcnn_fast.__version__)


@needs_source_tree
def test_the_version_is_written_once():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M)
    assert not re.search(r"^version\s*=", pyproject, re.M)
    changelog = (REPO / "CHANGELOG.md").read_text()
    init = (REPO / "src" / "mtcnn_fast" / "__init__.py").read_text()
    (version,) = re.findall(r'^__version__ = "([^"]+)"', init, re.M)
    assert f"## {version}" in changelog


@needs_source_tree
def test_the_declared_torch_floor_is_the_tested_torch():
    """The declared torch>=X.Y (the installed distribution's requirement) is the version
    .ci/run installs, and so tests."""
    (floor,) = [m.group(1) for r in md.requires("mtcnn-fast") or []
                if (m := re.fullmatch(r"torch>=([\d.]+)", r.replace(" ", "")))]
    tested = set(re.findall(r"(?<![\w-])torch==([\d.]+)", (REPO / ".ci" / "run").read_text()))
    assert tested and all(v.split(".")[:2] == floor.split(".")[:2] for v in tested), (floor, tested)
    import torch

    assert tuple(map(int, torch.__version__.split("+")[0].split(".")[:2])) >= tuple(map(int, floor.split(".")[:2]))


@needs_source_tree
def test_sdist_holds_sources_tests_and_licences_not_the_repository_tooling(tmp_path):
    pytest.importorskip("build", reason="needs the build package (pip install 'mtcnn-fast[test]')")
    run = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(REPO)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (sdist,) = tmp_path.glob("mtcnn_fast-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
        pkg_info = tar.extractfile(f"{sdist.name[:-len('.tar.gz')]}/PKG-INFO").read().decode()
    names = set(names)
    for wanted in ("pyproject.toml", "CMakeLists.txt", "README.md", "CHANGELOG.md", "LICENSE",
                   "src/mtcnn_fast/weights/LICENSE", "src/mtcnn_fast/_core.pyi", "src/mtcnn_fast/py.typed",
                   "csrc/ops.cpp", "csrc/bindings.cpp", "tests/conftest.py", "tests/test_release.py",
                   "tests/typecheck/usage.py", "training/convert_weights.py",
                   *(f"src/mtcnn_fast/weights/{w}" for w in WEIGHTS)):
        assert wanted in names, wanted
    for n in names:
        assert not re.match(r"(\.ci|\.ci-cache|\.venv|\.github|benchmarks|scripts|dist|build|"
                            r"training/weights|training/runs)(/|$)", n), n
        assert "__pycache__" not in n and not n.endswith((".so", ".pyc")), n
    assert "License-Expression: MIT" in pkg_info
    assert "License-File: src/mtcnn_fast/weights/LICENSE" in pkg_info
    import mtcnn_fast

    assert f"\nVersion: {mtcnn_fast.__version__}\n" in pkg_info


def _libgomp_after(code: str) -> list:
    script = (code + "\nwith open('/proc/self/maps') as f:\n"
              "    print('\\n'.join(sorted({l.split()[-1] for l in f if 'libgomp' in l})))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps (Linux)")
@pytest.mark.parametrize("path", ["detector", "core_first"])
def test_one_openmp_runtime_and_it_is_torchs(path, tmp_path):
    """After a detection (or after asking for the core before anything else), exactly one
    libgomp is mapped, torch's own copy where torch has one: the core never brings another."""
    import numpy as np

    np.save(tmp_path / "frame.npy", np.full((120, 160, 3), 90, np.uint8))
    if path == "detector":
        code = ("import numpy as np\nfrom mtcnn_fast import FaceDetector\n"
                f"FaceDetector(device='cpu').detect(np.load({str(tmp_path / 'frame.npy')!r}))")
    else:
        code = ("from mtcnn_fast.ops import get_ops\nimport numpy as np\n"
                "core = get_ops('cpp')\n"
                "core.pyramid(np.zeros((64, 64, 3), np.uint8), [0.5, 0.25], 2)")
    mapped = _libgomp_after(code)
    import torch

    assert len(mapped) == 1, mapped
    # torch's Linux wheels carry torch/lib/libgomp.so.1; where torch carries one, that is it.
    torch_lib = os.path.realpath(os.path.join(os.path.dirname(torch.__file__), "lib"))
    if any(name.startswith("libgomp") for name in os.listdir(torch_lib)):
        assert os.path.dirname(os.path.realpath(mapped[0])) == torch_lib, mapped


def test_detection_needs_no_opencv_and_the_rest_says_how_to_get_it(astronaut, tmp_path):
    """With no cv2 importable, detecting on an array works; align, the image reader and the
    command line raise ModuleNotFoundError naming the opencv extra."""
    import numpy as np

    np.save(tmp_path / "frame.npy", astronaut)
    code = (
        "import sys\nsys.modules['cv2'] = None\n"  # import cv2 now raises ModuleNotFoundError
        "import numpy as np\nimport mtcnn_fast\nfrom mtcnn_fast import FaceDetector, align\n"
        f"faces = FaceDetector(device='cpu').detect(np.load({str(tmp_path / 'frame.npy')!r}))\n"
        "print(len(faces))\n"
        "for call in (lambda: align(np.zeros((64, 64, 3), np.uint8), faces.landmarks),\n"
        "             lambda: __import__('mtcnn_fast.cli'),\n"
        "             lambda: __import__('mtcnn_fast._input').\\\n"
        "                 _input.decode_image(b'x')):\n"
        "    try:\n        call()\n    except ModuleNotFoundError as e:\n"
        "        print(e.name, 'mtcnn-fast[opencv]' in str(e))\n"
        "    else:\n        print('no error')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:4] == ["1", "cv2 True", "cv2 True", "cv2 True"]
