"""Helpers shared by the benchmarks: timing, test tensors, errors, machine description."""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from tensorsim.testing import fold_slices, unfold_slices

T = TypeVar("T")


#: The repository root.
ROOT = Path(__file__).resolve().parent.parent


def best_time(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Time ``fn()`` after one warm-up call: best (min) of ``repeat`` runs.

    Parameters
    ----------
    fn
        Callable without arguments; what it returns is kept from the last run.
    repeat
        Number of timed runs (at least 1).

    Returns
    -------
    tuple[float, T]
        The smallest wall time in seconds (``time.perf_counter``) and the last result.
    """
    if repeat < 1:
        raise ValueError(f"repeat: expected an integer >= 1, got {repeat}")
    result = fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bcirc_product(big: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``fold(big @ unfold(b))`` for ``big = bcirc(a)``: the t-product ``a * b``, ``(n1, n3, k)``.

    ``unfold(b)`` stacks the frontal slices of ``b`` (``n2 x n3 x k``) vertically
    (:func:`tensorsim.testing.unfold_slices`).
    """
    return fold_slices(big @ unfold_slices(b), b.shape[2])


def relative_error(x: np.ndarray, approx: np.ndarray) -> float:
    """Return ``||x - approx||_F / ||x||_F``."""
    return float(np.linalg.norm(x - approx) / np.linalg.norm(x))


def add_noise(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Return ``x`` plus Gaussian noise of Frobenius norm ``level * ||x||_F``."""
    noise = rng.standard_normal(x.shape)
    return x + (level * np.linalg.norm(x) / np.linalg.norm(noise)) * noise


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` if unavailable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def openblas_core() -> str:
    """Kernel family chosen at run time by NumPy's bundled OpenBLAS, or ``"unknown"``.

    Asked through ``scipy_openblas_get_corename64_`` of the ``scipy-openblas`` library
    shipped in ``numpy.libs``; other BLAS builds give ``"unknown"``.
    """
    libs_dir = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for lib_path in sorted(libs_dir.glob("*openblas*")):
        try:
            getter = ctypes.CDLL(str(lib_path)).scipy_openblas_get_corename64_
        except (OSError, AttributeError):
            continue
        getter.restype = ctypes.c_char_p
        return getter().decode()
    return "unknown"


def machine_info() -> dict[str, str]:
    """Describe the machine and software the benchmark runs on."""
    import tensorly

    import tensorsim

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "CPU": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {affinity} usable by this process",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "OpenBLAS kernels": openblas_core(),
        "Python": platform.python_version(),
        "numpy": np.__version__,
        "tensorly": f"{tensorly.__version__} (backend {tensorly.get_backend()})",
        "tensorsim": tensorsim.__version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format a markdown table (no trailing newline)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def venv_mpiexec() -> Path:
    """The ``mpiexec`` next to the running interpreter (the venv's own, MPICH wheel)."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        raise SystemExit(f"{mpiexec} not found: install the 'mpi' extra (mpi4py, mpich)")
    return mpiexec


def progress(message: str) -> None:
    """Print a progress line to stderr (the report goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def write_report(report: str, output: Path | None) -> None:
    """Print the report and, when ``output`` is given, write it there."""
    print(report)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report, encoding="utf-8")
        progress(f"wrote {output}")


def code_state() -> str:
    """Commit and the uncommitted library files, so a result can be matched to the code."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "tensorsim", "solvers", "problems"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = [line[3:] for line in status]
    return head + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")


def run_provenance(
    code_at_start: str, load: tuple[tuple[float, ...], tuple[float, ...]], wall: float
) -> dict[str, str]:
    """Report lines on what ran: the code at the start and end, the load, the wall time."""
    code_at_end = code_state()
    return {
        "tensorsim code": (
            code_at_end
            if code_at_end == code_at_start
            else f"{code_at_start} at the start, {code_at_end} at the end (changed during the run)"
        ),
        "load average (1, 5, 15 min) at start / end": (
            f"{', '.join(f'{x:.2f}' for x in load[0])} / {', '.join(f'{x:.2f}' for x in load[1])}"
        ),
        "benchmark wall time": f"{wall:.0f} s",
    }


def ladder_parser(
    prog: str, description: str, case_keys: Sequence[str], results: str
) -> argparse.ArgumentParser:
    """The options of a ladder benchmark: ``--quick``, ``--cases``, ``--budget``, ``--output``.

    ``results`` names the report a full run writes (``benchmarks/results/<results>``). Check
    the budget with :func:`check_budget` after parsing.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run (< 1 min)")
    parser.add_argument(
        "--cases", nargs="+", choices=case_keys, default=list(case_keys), help="cases to run"
    )
    parser.add_argument("--budget", type=float, default=None, help="seconds per run (quick: 10)")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"markdown file to write (default benchmarks/results/{results} for a full run "
        "of every case, nothing otherwise)",
    )
    return parser


def check_budget(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Refuse a non-positive ``--budget``; return ``args``."""
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget: expected a positive number, got {args.budget}")
    return args
