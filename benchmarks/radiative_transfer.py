"""Radiative transfer and UQ: full-rank solves against tree-tensor DLRA at equal accuracy.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.radiative_transfer [--quick] [--output PATH]

Cases (``--quick`` shrinks the grids):

``plane-source``
    Deterministic slab, arXiv 2412.00858 Sec. 5.2 grid (201 cells, 100 moments, sigma_s = 1,
    T = 2, CFL 0.1). Full rank: RK4 on the 201 x 100 moments. DLRA: matrix (2-leaf tree),
    augmented and parallel BUG, RK4 substeps, mass-conservative truncation.
``uq``
    Slab with ``sigma_s = 5 + 4 xi + eta``, the full Sec. 5.2 grid (201 cells, 100 moments,
    100 x 100 Gauss points, T = 2). Full rank: the 100 x 100 collocation reference, computed
    from 32 deterministic RK4 solves by :func:`problems.uq.interpolated_density` (the
    brute-force 10^4 solves are timed by one solve and extrapolated; ``--quick``: a reduced
    grid with one solve per point). DLRA on the tree ``root -> {(x, moments), (xi, eta)}``.
``scaling``
    Per-step wall time of the UQ DLRA step on 1 and 2 MPI ranks (``mpiexec``).

For each integrator a ladder of relative tolerances is tried, coarse to fine, until the
relative L2 error of the density (deterministic) or of the expected density (UQ) at T is at
most :data:`TARGET`; the table reports that run's wall time, ranks and stored numbers (the
largest TTN over the run) against the full-rank solve. A full run writes
``benchmarks/results/radiative_transfer.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._common import (
    machine_info,
    markdown_table,
    progress,
    venv_mpiexec,
    write_report,
)
from problems.radiative_transfer import (
    TransportParams,
    density,
    full_rank_solve,
    initial_moments,
    mass_weights,
    time_step,
    transport_operator,
)
from problems.uq import (
    UQParams,
    collocation_reference,
    density_statistics,
    initial_vectors,
    uq_mass_weights,
    uq_operator,
    uq_tree,
)
from solvers.bug import INTEGRATORS, LinearTreeRHS
from tensorsim import Truncation
from tensorsim.parallel import Executor, get_comm
from tensorsim.ttn import TTN, Tree, product_state
from tensorsim.ttn.conservation import include_functional
from tensorsim.ttn.operator import to_ttno

TARGET = 1e-2
LADDERS = {"augmented_bug": (1e-3, 1e-4, 1e-5), "parallel_bug": (1e-4, 1e-5, 1e-6)}
RESULTS = Path(__file__).parent / "results" / "radiative_transfer.md"


@dataclass
class Run:
    """One DLRA run."""

    rtol: float
    error: float
    var_error: float
    wall: float
    max_rank: int
    stored: int


def _evolve(tree: Tree, op, vectors, weights, params: TransportParams, name, rtol, executor):
    rhs = LinearTreeRHS(to_ttno(op, tree), factor=1.0)
    y = include_functional(product_state(tree, vectors, rank=10), weights)
    h, steps = time_step(params)
    trunc = Truncation(rtol=rtol, max_rank=50, min_rank=2)
    max_rank, stored = 0, y.size
    for k in range(steps):
        y, info = INTEGRATORS[name](
            y, k * h, h, rhs=rhs, trunc=trunc, substep="rk4", conserve=weights, executor=executor
        )
        max_rank, stored = max(max_rank, max(info.ranks.values())), max(stored, y.size)
    return y, max_rank, stored


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def plane_source(quick: bool) -> tuple[str, dict]:
    """Deterministic plane source: full rank vs matrix DLRA."""
    params = TransportParams(cells=101, degree=29, t_end=1.0) if quick else TransportParams()
    start = time.perf_counter()
    reference = density(params, full_rank_solve(params)[-1])
    full_wall = time.perf_counter() - start
    full_size = int(np.prod([params.cells, params.degree + 1]))
    op = transport_operator(params)
    tree = Tree.from_nested((0, 1), op.dims)
    rows, summary = [], {}
    for name, ladder in LADDERS.items():
        tried = []
        for rtol in ladder:
            progress(f"  plane-source {name} rtol={rtol:g}")
            start = time.perf_counter()
            y, max_rank, stored = _evolve(
                tree, op, initial_moments(params), mass_weights(params), params, name, rtol, None
            )
            run = Run(
                rtol,
                _rel(density(params, y.to_dense()), reference),
                float("nan"),
                time.perf_counter() - start,
                max_rank,
                stored,
            )
            tried.append(run)
            if run.error <= TARGET:
                break
        rows.append(_row(name, tried, full_wall, full_size))
        summary[name] = tried[-1]
    header = (
        f"Full rank: RK4 on {params.cells} x {params.degree + 1} moments, {full_wall:.1f} s, "
        f"{full_size} numbers."
    )
    return header + "\n\n" + _table(rows), summary


def _uq_params(quick: bool) -> UQParams:
    if quick:
        transport = TransportParams(cells=51, degree=15, sigma_s=5.0, cfl=0.1, t_end=0.5)
        return UQParams(transport=transport, nodes_xi=8, nodes_eta=8)
    return UQParams()


def uq(quick: bool) -> tuple[str, dict]:
    """UQ slab: collocation vs tree DLRA."""
    params = _uq_params(quick)
    t = params.transport
    points = params.nodes_xi * params.nodes_eta
    start = time.perf_counter()
    ref_mean, ref_var = collocation_reference(
        params, lambda p: full_rank_solve(p)[-1], sigma_s_nodes=None if quick else 32
    )
    full_wall = time.perf_counter() - start
    if quick:
        how = f"{points} deterministic RK4 solves"
    else:
        start = time.perf_counter()
        full_rank_solve(t)
        one = time.perf_counter() - start
        how = (
            f"32 deterministic RK4 solves interpolated to the {points} points (one solve: "
            f"{one:.1f} s, so brute-force collocation would take about {one * points:.0f} s)"
        )
    full_size = t.cells * (t.degree + 1) * params.nodes_xi * params.nodes_eta
    tree, op = uq_tree(params), uq_operator(params)
    rows, summary = [], {}
    for name, ladder in LADDERS.items():
        tried = []
        for rtol in ladder:
            progress(f"  uq {name} rtol={rtol:g}")
            start = time.perf_counter()
            y, max_rank, stored = _evolve(
                tree, op, initial_vectors(params), uq_mass_weights(params), t, name, rtol, None
            )
            mean, var = density_statistics(params, y)
            run = Run(
                rtol,
                _rel(mean, ref_mean),
                _rel(var, ref_var),
                time.perf_counter() - start,
                max_rank,
                stored,
            )
            tried.append(run)
            if run.error <= TARGET and run.var_error <= 5 * TARGET:
                break
        rows.append(_row(name, tried, full_wall, full_size))
        summary[name] = tried[-1]
    header = (
        f"Full rank: {params.nodes_xi} x {params.nodes_eta} collocation on {t.cells} x "
        f"{t.degree + 1} moments by {how}, {full_wall:.1f} s; the full tensor holds "
        f"{full_size} numbers."
    )
    return header + "\n\n" + _table(rows, uq=True), summary


def _row(name: str, tried: list[Run], full_wall: float, full_size: int) -> list[str]:
    run = tried[-1]
    ladder = "<br>".join(
        f"rtol={r.rtol:g}: {r.error:.1e}"
        + (f" / var {r.var_error:.1e}" if np.isfinite(r.var_error) else "")
        + f" ({r.wall:.1f} s, rank {r.max_rank})"
        for r in tried
    )
    return [
        name,
        f"{run.rtol:g}",
        f"{run.error:.1e}" + (f" / {run.var_error:.1e}" if np.isfinite(run.var_error) else ""),
        f"{run.wall:.1f} s",
        f"{full_wall / run.wall:.2f}",
        str(run.max_rank),
        str(run.stored),
        f"{full_size / run.stored:.1f}",
        ladder,
    ]


def _table(rows: list[list[str]], uq: bool = False) -> str:
    err = "error of E[rho] / Var[rho]" if uq else "error of rho"
    header = [
        "integrator",
        "rtol",
        err,
        "wall",
        "full-rank wall / wall",
        "max rank",
        "stored numbers",
        "memory ratio (full / DLRA)",
        "ladder",
    ]
    return markdown_table(header, rows)


def scaling_worker(out: str, quick: bool, steps: int) -> None:
    """Time ``steps`` UQ steps (after one warm-up step) on the ranks of this MPI job."""
    comm = get_comm()
    params = _uq_params(quick)
    tree = uq_tree(params)
    rhs = LinearTreeRHS(to_ttno(uq_operator(params), tree), factor=1.0)
    weights = uq_mass_weights(params)
    h, _ = time_step(params.transport)
    rng = np.random.default_rng(0)
    y = product_state(tree, initial_vectors(params), rank=20)
    # a state with the ranks of a running simulation: perturb every tensor, re-orthonormalize
    y = TTN(tree, tuple(t + 1e-3 * rng.standard_normal(t.shape) for t in y.tensors))
    y = y.orthonormalize()
    executor = Executor(comm)
    trunc = Truncation(rtol=1e-14, max_rank=20, min_rank=20)
    times = []
    for k in range(steps + 1):
        comm.barrier()
        start = time.perf_counter()
        y, _ = INTEGRATORS["parallel_bug"](
            y,
            k * h,
            h,
            rhs=rhs,
            trunc=trunc,
            substep="rk4",
            conserve=weights,
            executor=executor,
            rejection="none",
        )
        comm.barrier()
        times.append(time.perf_counter() - start)
    if comm.rank == 0:
        Path(out).write_text(json.dumps({"times": times[1:], "size": comm.size}))


def scaling(quick: bool) -> str:
    """Strong scaling of the parallel BUG UQ step, 1 vs 2 ranks."""
    mpiexec = venv_mpiexec()
    rows = []
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in (1, 2):
            progress(f"  scaling on {ranks} rank(s)")
            out = Path(tmp) / f"{ranks}.json"
            cmd = [str(mpiexec), "-n", str(ranks), "-genv", "OMP_NUM_THREADS", "1"]
            cmd += [sys.executable, "-m", "benchmarks.radiative_transfer", "--scaling-worker"]
            cmd += ["--json", str(out)] + (["--quick"] if quick else [])
            subprocess.run(cmd, check=True)
            times = json.loads(out.read_text())["times"]
            mean = float(np.mean(times))
            base = base or mean
            rows.append([str(ranks), f"{mean:.3f} s", f"{base / mean:.2f}"])
    return (
        "Parallel BUG step of the UQ case at rank 20 on every edge (fixed ranks, no step "
        "rejection, after one warm-up step), mean of the timed steps, each between two "
        "barriers.\n\n" + markdown_table(["MPI ranks", "step time", "speedup"], rows)
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the cases, print the report, write it for a full run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.radiative_transfer")
    parser.add_argument("--quick", action="store_true", help="small grids")
    parser.add_argument("--output", type=Path, default=None, help="report file")
    parser.add_argument("--scaling-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=5, help="timed steps for scaling")
    args = parser.parse_args(argv)
    if args.scaling_worker:
        scaling_worker(args.json, args.quick, args.steps)
        return
    started = time.perf_counter()
    info = machine_info()
    progress("plane-source ...")
    plane_text, _ = plane_source(args.quick)
    progress("uq ...")
    uq_text, _ = uq(args.quick)
    progress("scaling ...")
    scaling_text = scaling(args.quick)
    lines = [
        "# Radiative transfer and UQ: full rank vs tree-tensor DLRA",
        "",
        "Generated by `python -m benchmarks.radiative_transfer`"
        + (" --quick" if args.quick else "")
        + ".",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        f"- benchmark wall time: {time.perf_counter() - started:.0f} s",
        "",
        f"Target: relative L2 error <= {TARGET:g} (UQ: of E[rho], and <= {5 * TARGET:g} for "
        "Var[rho]). Tolerances are relative (`Truncation(rtol=...)`), r_max = 50, "
        "initial rank 10, RK4 substeps, mass-conservative truncation.",
        "",
        "## Plane source (deterministic)",
        "",
        plane_text,
        "",
        "## UQ slab",
        "",
        uq_text,
        "",
        "## Strong scaling",
        "",
        scaling_text,
        "",
    ]
    report = "\n".join(lines)
    write_report(report, args.output or (None if args.quick else RESULTS))


if __name__ == "__main__":
    main()
