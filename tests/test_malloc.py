"""The allocator setting (mtcnn_fast._malloc): freed frame buffers stay in the process, when
asked for (keep_freed_memory=True); a default detector changes nothing.

The cases that watch the allocator run in a fresh interpreter: the setting is per process, and
the test process's own allocator state is not a clean slate."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mtcnn_fast import _malloc

pytestmark = pytest.mark.skipif(_malloc.glibc() is None, reason="the setting applies under glibc only")

# Allocates, fills and frees a 64 MB torch tensor twice (the size of P-Net's activations on a
# 4K frame), then prints whether the setting is on and how many pages the second one faulted in.
# (NumPy asks for transparent huge pages on big arrays, torch does not unless THP_MEM_ALLOC_ENABLE
# is set: its buffers fault in 4 kB at a time.)
PROBE = """
import json, resource, sys
import torch
import mtcnn_fast._malloc as m
from mtcnn_fast import FaceDetector
mode = sys.argv[1]
if mode == "bad":  # a detector that cannot be made
    try:
        FaceDetector(device="cpu", keep_freed_memory=True, min_face_size=-1)
    except ValueError:
        pass
elif mode == "default":
    FaceDetector(device="cpu")
else:
    FaceDetector(device="cpu", keep_freed_memory=mode == "on")
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(16 << 20).sum()
before = faults()
torch.ones(16 << 20).sum()
print(json.dumps({"applied": m._state["applied"], "faults": faults() - before}))
"""

PAGES_64MB = (64 << 20) // 4096


def run_script(script, *args, **env):
    """Runs script in a fresh interpreter, without the caller's allocator settings (MALLOC_*,
    glibc tunables, THP_MEM_ALLOC_ENABLE, LD_PRELOAD) but with `env`; returns its last line as JSON."""
    ours = ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ours}
    environ.update(env)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, env=environ, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def probe(mode, **env):
    return run_script(PROBE, mode, **env)


def test_a_detector_keeps_freed_buffers_for_the_next_frame():
    got = probe("on")
    assert got["applied"] is True
    # The second buffer reuses the first one's pages: next to none fault in again.
    assert got["faults"] < PAGES_64MB // 20, got


def test_without_the_setting_glibc_returns_big_buffers_to_the_system():
    got = probe("off")
    assert got["applied"] is False
    # The control that shows what the setting saves: every page of the buffer faults in again.
    assert got["faults"] > PAGES_64MB * 9 // 10, got


def test_a_default_detector_leaves_the_allocator_as_it_is():
    got = probe("default")
    assert got["applied"] is False
    assert got["faults"] > PAGES_64MB * 9 // 10, got


def test_a_detector_that_cannot_be_made_changes_nothing():
    got = probe("bad")
    assert got["applied"] is False
    assert got["faults"] > PAGES_64MB * 9 // 10, got


def test_the_users_own_malloc_settings_stand():
    got = probe("on", MALLOC_TRIM_THRESHOLD_="131072")
    assert got["applied"] is False
    assert got["faults"] > PAGES_64MB * 9 // 10, got


def test_no_trim_where_the_user_set_the_allocator_or_asked_to_keep(monkeypatch):
    assert _malloc.glibc() is not None
    monkeypatch.setitem(_malloc._state, "applied", False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert _malloc.release_free_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    for k in [k for k in __import__("os").environ if k.startswith("MALLOC_") and k.endswith("_")]:
        monkeypatch.delenv(k)
    assert _malloc.release_free_memory() is True
    monkeypatch.setitem(_malloc._state, "applied", True)  # keep_freed_memory holds: no trim
    assert _malloc.release_free_memory() is False


# Another allocator serving malloc, the way jemalloc or tcmalloc do when preloaded: a shim whose
# malloc, free, calloc and realloc are its own symbols (it hands the work to glibc underneath, so
# it runs anywhere a C compiler does).
SHIM = r"""
#include <stddef.h>
void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t n, size_t m) { return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
"""

# Detects on frames of two sizes (the second call would trim), then asks for the trim and the
# setting directly.
UNDER = """
import json
import numpy as np
import mtcnn_fast._malloc as m
from mtcnn_fast import FaceDetector
det = FaceDetector(device="cpu")
rng = np.random.default_rng(0)
faces = [len(det.detect(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))) for h, w in ((96, 128), (120, 90))]
print(json.dumps({"glibc": m.glibc() is not None, "trimmed": m.release_free_memory(),
                  "kept": m.keep_freed_memory(), "faces": faces}))
"""


def run_under(preload):
    return run_script(UNDER, **({"LD_PRELOAD": str(preload)} if preload else {}))


def test_under_another_allocator_the_detector_leaves_memory_to_it(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler (cc or gcc) to build the malloc shim")
    (tmp_path / "shim.c").write_text(SHIM)
    shim = tmp_path / "libshim.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(shim), str(tmp_path / "shim.c")], check=True)
    # glibc's thresholds and malloc_trim would reach nothing the shim's malloc hands out: neither
    # is applied, and detection works as ever.
    got = run_under(shim)
    assert got == {"glibc": False, "trimmed": False, "kept": False, "faces": got["faces"]}, got
    # The control: the same script under glibc's own malloc trims, then keeps.
    assert run_under(None) == {"glibc": True, "trimmed": True, "kept": True, "faces": got["faces"]}


def installed(name):
    """The path of a shared library from the usual library folders, or None."""
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


@pytest.mark.parametrize("name", ["libjemalloc.so.2", "libtcmalloc_minimal.so.4"])
def test_under_jemalloc_or_tcmalloc_the_detector_leaves_memory_to_it(name):
    path = installed(name)
    if path is None:
        pytest.skip(f"{name} is not installed here (Debian/Ubuntu: libjemalloc2, libtcmalloc-minimal4)")
    got = run_under(path)
    assert got == {"glibc": False, "trimmed": False, "kept": False, "faces": got["faces"]}, got


def test_user_settings_are_recognised(monkeypatch):
    for k in [k for k in os.environ if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"]:
        monkeypatch.delenv(k)
    assert not _malloc.user_has_set_malloc()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=512")
    assert not _malloc.user_has_set_malloc()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000")
    assert _malloc.user_has_set_malloc()
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # the number of arenas, not the thresholds
    assert not _malloc.user_has_set_malloc()
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert _malloc.user_has_set_malloc()


def test_the_peer_comparison_gives_peers_the_same_setting():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "peers" / "compare.py"
    if not path.is_file():
        pytest.skip(f"checks the repository's benchmark script {path} (not in the sdist or a wheel test)")
    spec = importlib.util.spec_from_file_location("compare", path)
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    assert compare.KEEP_BYTES == _malloc.KEEP_BYTES
    keep = str(_malloc.KEEP_BYTES)
    assert compare.SAME_MALLOC == {"MALLOC_MMAP_THRESHOLD_": keep, "MALLOC_TRIM_THRESHOLD_": keep}
