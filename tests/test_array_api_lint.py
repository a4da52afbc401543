"""Tests of tools/check_array_api.py: the repository is clean, and bad code is caught."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "check_array_api.py"


def _lint(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        timeout=60,
    )


def test_repository_is_clean():
    proc = _lint()
    assert proc.returncode == 0, proc.stdout + proc.stderr


BAD = """\
from __future__ import annotations

import numpy as np
import numpy.linalg as la
from numpy import einsum


def kernel(x: np.ndarray, xp, rng: np.random.Generator) -> np.ndarray:
    if isinstance(x, (np.ndarray, list)):
        pass
    g = np.random.default_rng(0)
    y: np.ndarray = xp.zeros((2, 2), dtype=x.dtype, device=x.device)
    z = xp.ones_like(y) + xp.full((2,), 1.0, **{"device": None})
    a = np.linalg.svd(x)
    b = xp.zeros((3, 3), dtype=x.dtype)
    c = la.norm(x) + einsum("ii", x)
    d = xp.asarray([1.0])
    e = np.ndarray((2,))
    return g, z, a, b, c, d, e
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def test_bad_code_is_caught(tmp_path):
    root = tmp_path / "pkg"
    _write(root / "kernels" / "bad.py", BAD)
    _write(root / "good.py", "def f(x, xp):\n    return xp.eye(3, device=x.device)\n")
    # allow-listed places and NumPy-only modules may use numpy freely
    use_np = "import numpy as np\n\nA = np.zeros(3)\n"
    _write(root / "parallel.py", use_np)
    _write(root / "io" / "hdf5.py", use_np)
    _write(root / "io" / "sub" / "more.py", use_np)
    _write(root / "refs.py", '"""Reference data, NumPy-only by design."""\n\n' + use_np)

    proc = _lint(root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    bad = root / "kernels" / "bad.py"
    assert all(line.startswith(f"{bad}:") for line in lines), lines
    found = {(int(line.split(":")[1]), line.split(": ", 1)[1]) for line in lines}
    assert found == {
        (14, "bare numpy use `numpy.linalg.svd` (use the xp namespace)"),
        (15, "xp.zeros(...) without device="),
        (16, "bare numpy use `numpy.linalg.norm` (use the xp namespace)"),
        (16, "bare numpy use `numpy.einsum` (use the xp namespace)"),
        (17, "xp.asarray(...) without device="),
        (18, "bare numpy use `numpy.ndarray` (use the xp namespace)"),
    }


def test_clean_tree_passes(tmp_path):
    _write(tmp_path / "ok.py", "def f(x, xp):\n    return xp.linspace(0, 1, 5, device=x.device)\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout == ""


def test_array_api_compat_import_is_caught(tmp_path):
    (tmp_path / "kernel.py").write_text("import array_api_compat.numpy as xp\n")
    (tmp_path / "other.py").write_text("from array_api_compat import array_namespace\n")
    (tmp_path / "_array_api.py").write_text("import array_api_compat\n")  # the allowed place
    proc = _lint(tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and all("array_api_compat imported" in line for line in lines)
