"""Shared fixtures: ``xp`` runs a test on every available array backend; ``kill_after_ready``
runs a writing script and SIGKILLs it mid-write."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import importlib.util  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def _backends() -> list:
    params = [pytest.param("numpy", id="numpy")]
    if importlib.util.find_spec("array_api_strict"):
        params.append(pytest.param("array_api_strict", id="strict"))
    if importlib.util.find_spec("torch"):
        params.append(pytest.param("torch", id="torch"))
    if importlib.util.find_spec("cupy"):
        params.append(pytest.param("cupy", id="cupy", marks=pytest.mark.gpu))
    return params


@pytest.fixture(params=_backends())
def xp(request):
    """The array namespace of one backend (numpy, array_api_strict, torch; cupy on a GPU)."""
    name = request.param
    if name == "numpy":
        import array_api_compat.numpy as xp_mod
    elif name == "array_api_strict":
        import array_api_strict as xp_mod
    elif name == "torch":
        import array_api_compat.torch as xp_mod
        import torch

        torch.set_num_threads(1)
    else:
        cp = pytest.importorskip("cupy")
        if not cp.is_available():
            pytest.skip("no CUDA device")
        import array_api_compat.cupy as xp_mod
    return xp_mod


@pytest.fixture
def rng():
    """A seeded NumPy generator."""
    return np.random.default_rng(1234)


@pytest.fixture
def mpiexec():
    """The venv's own ``mpiexec`` (next to ``sys.executable``); skips without it or mpi4py."""
    import sys
    from pathlib import Path

    path = Path(sys.executable).with_name("mpiexec")
    if not path.exists():
        pytest.skip(f"no mpiexec next to {sys.executable}")
    pytest.importorskip("mpi4py")
    return path


@pytest.fixture
def two_ranks(mpiexec):
    """Run ``python ARGS...`` on 2 MPI ranks from the repository root; fail on a non-zero exit.

    Returns the function ``run(args, timeout=120) -> subprocess.CompletedProcess``.
    """
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}

    def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(mpiexec), "-n", "2", "-genv", "OMP_NUM_THREADS", "1", sys.executable, *args]
        proc = subprocess.run(
            cmd,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    return run


@pytest.fixture
def break_step(monkeypatch):
    """Make an integrator of a driver's registry corrupt the state it returns at one call.

    Returns ``apply(integrators, name, at, change)``: call ``at`` (1-based) of
    ``integrators[name]`` returns the state with ``change`` applied to its root tensor.
    """

    def apply(integrators, name, at, change):
        real = integrators[name]
        calls = {"n": 0}

        def step(state, t, h, **kwargs):
            calls["n"] += 1
            y, info = real(state, t, h, **kwargs)
            if calls["n"] == at:
                tensors = list(y.tensors)
                tensors[y.tree.root] = change(tensors[y.tree.root])
                y = type(y)(y.tree, tuple(tensors))
            return y, info

        monkeypatch.setitem(integrators, name, step)

    return apply


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def kill_after_ready(tmp_path: Path) -> Callable[[str, Path, float], None]:
    """``kill(script, path, delay, extra=())``: run ``script`` (Python source taking the
    output path and ``extra`` as its arguments and printing ``ready`` once it works), SIGKILL
    it ``delay`` seconds after ``ready``, and check that the signal is what ended it."""
    script_file = tmp_path / "kill_me.py"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    def kill(script: str, path: Path, delay: float, extra: Sequence[str] = ()) -> None:
        import time

        script_file.write_text(textwrap.dedent(script))
        proc = subprocess.Popen(
            [sys.executable, str(script_file), str(path), *extra],
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL

    return kill
