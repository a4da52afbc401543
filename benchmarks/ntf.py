"""Benchmark this project's nonnegative CP (HALS, MU) against TensorLy's, same data, same start.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.ntf [--repeat N] [--quick] [--output PATH]

Every case plants a nonnegative rank-R tensor (uniform factors, Gaussian noise of 1% of its
norm, clipped at zero; the shapes of ``docs/ntf.md``) and draws one uniform starting point,
scaled to its best least-squares multiple. Both libraries start from it (TensorLy through
``init=CPTensor(...)``), in this one process:

- HALS: :func:`tensorsim.decomp.nonneg_cp` (``method="hals"``) against
  ``tensorly.decomposition.non_negative_parafac_hals``;
- MU: ``method="mu"`` against ``tensorly.decomposition.non_negative_parafac``;
- the same two pairs on torch tensors (``tl.set_backend("pytorch")`` for TensorLy).

A first run of each makes a fixed number of iterations (no early stop) and records its
error curve. The **target** is the larger of the two final errors times 1.001, which both
reach. The **time to target** is the wall time of a run stopped at the first iteration whose
error is at or below the target (best of ``--repeat``; the curve run is the warm-up). The
**ratio** is tensorsim / TensorLy: below 1 means tensorsim is faster; the goal of issue 10 is
a ratio of at most 0.5. FMS is the factor match score of the curve run's final fit against
the planted factors.

A full run writes ``benchmarks/results/ntf.md``; ``--quick`` runs the smallest case only and
prints.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._common import machine_info, markdown_table, progress, write_report
from tensorsim._array_api import to_numpy
from tensorsim.decomp import CP, fms, nonneg_cp

RESULTS = Path(__file__).resolve().parent / "results" / "ntf.md"
SEED = 20261127


@dataclass(frozen=True)
class Case:
    """One planted tensor and the iteration caps of the two methods."""

    shape: tuple[int, ...]
    rank: int
    hals_iters: int = 150
    mu_iters: int = 200

    @property
    def label(self) -> str:
        """Row label of the case."""
        return "x".join(map(str, self.shape)) + f", R={self.rank}"


CASES = (
    Case((50, 50, 50), 5),
    Case((100, 100, 100), 10),
    Case((1000, 60, 8), 10),
)


def planted(case: Case) -> tuple[np.ndarray, CP, list[np.ndarray]]:
    """The noisy tensor, the planted CP and the shared (scaled) uniform start."""
    rng = np.random.default_rng(SEED)
    factors = [rng.uniform(size=(n, case.rank)) for n in case.shape]
    clean = CP(np.ones(case.rank), tuple(factors)).to_dense()
    noise = rng.standard_normal(case.shape)
    x = np.maximum(clean + 0.01 * np.linalg.norm(clean) / np.linalg.norm(noise) * noise, 0.0)
    start = [rng.uniform(size=(n, case.rank)) for n in case.shape]
    hat = CP(np.ones(case.rank), tuple(start)).to_dense()
    scale = (np.vdot(x, hat) / np.vdot(hat, hat)) ** (1.0 / len(case.shape))
    return x, CP(np.ones(case.rank), tuple(factors)), [a * scale for a in start]


@dataclass
class Run:
    """Error curve and final fit of a capped run; wall time of the run stopped at a target."""

    errors: np.ndarray
    fit: CP
    iterations: int = -1
    seconds: float = float("inf")

    def reach(self, target: float) -> int:
        """Iterations needed to reach ``target`` (``-1`` if never)."""
        hit = np.nonzero(self.errors <= target)[0]
        return int(hit[0]) + 1 if hit.size else -1


def curve(fn: Callable[[int], tuple[list[float], CP]], iters: int) -> Run:
    """A run of ``iters`` iterations: its error curve and final fit."""
    errors, fit = fn(iters)
    return Run(np.asarray([float(e) for e in errors]), fit)


def time_to(run: Run, fn: Callable[[int], tuple[list[float], CP]], target: float, repeat: int):
    """Record in ``run`` the best wall time of ``repeat`` runs stopped at ``target``."""
    run.iterations = run.reach(target)
    if run.iterations < 0:
        return
    for _ in range(repeat):
        start = time.perf_counter()
        fn(run.iterations)
        run.seconds = min(run.seconds, time.perf_counter() - start)


def _as_numpy_cp(weights, factors) -> CP:
    return CP(to_numpy(weights), tuple(to_numpy(a) for a in factors))


def run_pair(
    x, start, case: Case, method: str, backend: str, repeat: int
) -> tuple[Run, Run, float]:
    """Our run and TensorLy's for one method on one backend (``"numpy"`` or ``"torch"``)."""
    import tensorly as tl
    from tensorly.cp_tensor import CPTensor
    from tensorly.decomposition import non_negative_parafac, non_negative_parafac_hals

    iters = case.hals_iters if method == "hals" else case.mu_iters
    conv: Callable = np.asarray
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        conv = torch.as_tensor
    xt = conv(x)

    def ours(n: int) -> tuple[list[float], CP]:
        fit = nonneg_cp(
            xt, case.rank, method=method, init=(None, [conv(a) for a in start]),
            max_iter=n, tol=0.0,
        )  # fmt: skip
        return list(fit.errors), _as_numpy_cp(fit.weights, fit.factors)

    peer = non_negative_parafac_hals if method == "hals" else non_negative_parafac

    def theirs(n: int) -> tuple[list[float], CP]:
        init = CPTensor((conv(np.ones(case.rank)), [conv(a.copy()) for a in start]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (w, f), errors = peer(
                xt, case.rank, init=init, n_iter_max=n, tol=1e-300, return_errors=True
            )
        return errors, _as_numpy_cp(w, f)

    previous = tl.get_backend()
    tl.set_backend("pytorch" if backend == "torch" else "numpy")
    try:
        mine, peers = curve(ours, iters), curve(theirs, iters)
        target = max(mine.errors[-1], peers.errors[-1]) * 1.001
        time_to(mine, ours, target, repeat)
        time_to(peers, theirs, target, repeat)
        return mine, peers, target
    finally:
        tl.set_backend(previous)


def run_case(case: Case, repeat: int, backends: Sequence[str]) -> list[list[str]]:
    """Rows of the report for one case."""
    x, truth, start = planted(case)
    rows = []
    for backend in backends:
        for method in ("hals", "mu"):
            progress(f"{case.label}: {method} on {backend}")
            ours, theirs, target = run_pair(x, start, case, method, backend, repeat)
            ratio = ours.seconds / theirs.seconds
            cell = f"**{ratio:.2f}**" if ratio <= 0.5 else f"{ratio:.2f}"
            rows.append(
                [
                    case.label,
                    method.upper(),
                    backend,
                    f"{target:.5f}",
                    f"{ours.iterations} / {theirs.iterations}",
                    f"{1e3 * ours.seconds / ours.iterations:.2f} / "
                    f"{1e3 * theirs.seconds / theirs.iterations:.2f}",
                    f"{ours.seconds:.3f} / {theirs.seconds:.3f}",
                    cell,
                    f"{ours.errors[-1]:.5f} / {theirs.errors[-1]:.5f}",
                    f"{fms(ours.fit, truth):.3f} / {fms(theirs.fit, truth):.3f}",
                ]
            )
    return rows


HEADER = (
    "case",
    "method",
    "backend",
    "target error",
    "iterations to target (ours / TensorLy)",
    "ms per iteration to target (ours / TensorLy)",
    "s to target (ours / TensorLy)",
    "time ratio ours/TensorLy",
    "error at the cap (ours / TensorLy)",
    "FMS (ours / TensorLy)",
)


def report(rows: list[list[str]], repeat: int, caps: str) -> str:
    """The markdown report."""
    import tensorly

    info = machine_info() | {"tensorly (peer)": tensorly.__version__}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    lines = [
        "# Nonnegative CP: tensorsim vs TensorLy",
        "",
        "Generated by `python -m benchmarks.ntf`.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "## Same tensor, same start",
        "",
        f"Planted nonnegative tensors, 1% Gaussian noise (clipped at 0). {caps} Wall time: best "
        f"of {repeat}. Target = 1.001 x the larger error at the cap; time to target = wall "
        "time of a run stopped at the first iteration that reaches it (module docstring of "
        "`benchmarks/ntf.py`). **Bold**: the issue's goal (ratio <= 0.5) is met.",
        "",
        markdown_table(HEADER, rows),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (default 1)")
    parser.add_argument("--quick", action="store_true", help="the smallest case only")
    parser.add_argument("--no-torch", action="store_true", help="numpy backend only")
    parser.add_argument("--output", type=Path, default=None, help="write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write (full run) or print (``--quick``) the report."""
    args = parse_args(argv)
    cases = CASES[:1] if args.quick else CASES
    backends = ["numpy"] if args.no_torch else ["numpy", "torch"]
    rows = []
    for case in cases:
        rows += run_case(case, args.repeat, backends)
    caps = "Iteration caps: " + ", ".join(
        f"{c.label}: HALS {c.hals_iters}, MU {c.mu_iters}" for c in cases
    )
    caps += "."
    output = args.output
    if output is None and not args.quick:
        output = RESULTS
    write_report(report(rows, args.repeat, caps), output)


if __name__ == "__main__":
    main()
