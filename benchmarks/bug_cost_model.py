"""A per-step cost model of the parallel BUG over MPI ranks, checked against measured runs.

The step of :func:`solvers.bug.parallel_bug_step` is, on every rank, a sequence of
collective ``Executor.map`` calls (one per tree level: the leaf K-steps and Galerkin steps,
then the assembly) between stretches of replicated serial work (environments, augmentation,
truncation). The model of one step on ``p`` ranks is

    T(p) = G + sum over maps m of [ makespan_p(m) + X_p(m) ]

* ``G``: the replicated glue, measured on one rank (step time minus the time in tasks);
* ``makespan_p(m)``: the largest load when the map's tasks, with their times measured one by
  one on one rank, are assigned to ``p`` ranks by :func:`tensorsim.parallel.distribute` with
  the costs the integrator estimates (the assignment the executor makes);
* ``X_p(m) = alpha * ceil(log2 p) + beta * bytes * (p - 1) / p``: the all-gather of the
  pickled results (each rank receives what the others computed), with latency ``alpha`` and
  inverse bandwidth ``beta`` measured by a separate all-gather micro-benchmark on 2 ranks
  (not fitted to the step), plus unpickling at the measured local rate.

The critical path is ``G + sum_m max task time``: no rank count gets below it. Run::

    python -m benchmarks.bug_cost_model --sites 64

It records task times on one rank, measures the all-gather on 2 ranks and the step on 1 and
2 ranks (``mpiexec``, the venv's own), prints the prediction for 1..64 ranks beside the
measurements and writes ``benchmarks/results/bug_cost_model.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import markdown_table, progress, venv_mpiexec, write_report
from problems.spin_chain import SpinChainParams, build_tree, hamiltonian, initial_vectors
from solvers.bug import INTEGRATORS, LinearTreeRHS
from tensorsim import Truncation
from tensorsim.parallel import distribute
from tensorsim.ttn import product_state
from tensorsim.ttn.operator import to_ttno

RESULTS = Path(__file__).parent / "results" / "bug_cost_model.md"
RANKS = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class MapRecord:
    """One ``Executor.map`` call: per task the estimated cost, seconds and result bytes."""

    costs: list[float]
    seconds: list[float]
    nbytes: list[int]
    pickling: float = 0.0


@dataclass
class RecordingExecutor:
    """A serial executor that times every task and sizes its pickled result."""

    maps: list[MapRecord] = field(default_factory=list)

    def map(self, func: Any, tasks: list, *, costs: list | None = None) -> list:
        """``[func(t) for t in tasks]``, recording one :class:`MapRecord`."""
        costs = [1.0] * len(tasks) if costs is None else list(costs)
        out, seconds, nbytes = [], [], []
        pickling = 0.0
        for task in tasks:
            t0 = time.perf_counter()
            result = func(task)
            t1 = time.perf_counter()
            nbytes.append(len(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)))
            pickling += time.perf_counter() - t1
            seconds.append(t1 - t0)
            out.append(result)
        self.maps.append(MapRecord(costs, seconds, nbytes, pickling))
        return out


def _problem(sites: int, max_rank: int) -> tuple[Any, LinearTreeRHS, Truncation]:
    """The long-range Ising chain of ``benchmarks.bug_scaling``, warmed up 10 steps."""
    params = SpinChainParams(sites=sites)
    tree = build_tree(params)
    rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree))
    trunc = Truncation(atol=1e-8, max_rank=max_rank, min_rank=2)
    y = product_state(tree, initial_vectors(params), rank=2, dtype=np.complex128)
    for _ in range(10):
        y, _ = INTEGRATORS["parallel_bug"](y, 0.0, 0.01, rhs=rhs, trunc=trunc, rejection="none")
    return y, rhs, trunc


def record(sites: int, max_rank: int, steps: int) -> tuple[list[float], list[list[MapRecord]]]:
    """Step wall times and the maps of every step, on one rank (tasks timed one by one)."""
    y, rhs, trunc = _problem(sites, max_rank)
    walls, maps = [], []
    for k in range(steps):
        ex = RecordingExecutor()
        t0 = time.perf_counter()
        y, _ = INTEGRATORS["parallel_bug"](
            y, k * 0.01, 0.01, rhs=rhs, trunc=trunc, executor=ex, rejection="none"
        )
        walls.append(time.perf_counter() - t0)
        maps.append(ex.maps)
    return walls, maps


def unpickle_rate() -> float:
    """Seconds per byte to unpickle an array result (local, measured)."""
    blob = pickle.dumps(np.ones((64, 64, 64), dtype=np.complex128), protocol=5)
    t0 = time.perf_counter()
    for _ in range(20):
        pickle.loads(blob)
    return (time.perf_counter() - t0) / (20 * len(blob))


def predict(
    glue: float, maps: list[MapRecord], p: int, alpha: float, beta: float, unpickle: float
) -> dict[str, float]:
    """Model time of one step on ``p`` ranks and its parts."""
    compute = comm = 0.0
    for m in maps:
        assignment = distribute(m.costs, p)
        compute += max(sum(m.seconds[i] for i in a) for a in assignment)
        if p > 1:
            total = sum(m.nbytes)
            received = total * (p - 1) / p
            comm += alpha * math.ceil(math.log2(p)) + (beta + unpickle) * received
    return {"total": glue + compute + comm, "glue": glue, "compute": compute, "comm": comm}


# ------------------------------------------------------------------ measurements under MPI


def allgather_worker(out: Path) -> None:
    """On every rank: time all-gathers of pickled arrays of growing size (rank 0 writes)."""
    from tensorsim.parallel import get_comm

    comm = get_comm()
    rows = []
    for n in (1, 1 << 10, 1 << 14, 1 << 17, 1 << 20):
        blob = pickle.dumps(np.ones(n, dtype=np.complex128), protocol=5)
        comm.allgather(blob)
        comm.barrier()
        t0 = time.perf_counter()
        for _ in range(10):
            comm.allgather(blob)
        rows.append((len(blob), (time.perf_counter() - t0) / 10))
    if comm.Get_rank() == 0:
        out.write_text(json.dumps(rows))


def step_worker(sites: int, max_rank: int, steps: int, out: Path) -> None:
    """On every rank: time ``steps`` parallel-BUG steps after the warm-up (rank 0 writes)."""
    from tensorsim.parallel import Executor, get_comm

    comm = get_comm()
    executor = Executor(comm)
    y, rhs, trunc = _problem(sites, max_rank)
    walls = []
    for k in range(steps):
        comm.barrier()
        t0 = time.perf_counter()
        y, _ = INTEGRATORS["parallel_bug"](
            y, k * 0.01, 0.01, rhs=rhs, trunc=trunc, executor=executor, rejection="none"
        )
        comm.barrier()
        walls.append(time.perf_counter() - t0)
    if comm.Get_rank() == 0:
        out.write_text(json.dumps(walls))


def _run_mpi(ranks: int, args: list[str]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [str(venv_mpiexec()), "-n", str(ranks), sys.executable, "-m", __spec__.name, *args]
        subprocess.run([*cmd, "--json", str(out)], check=True)
        return json.loads(out.read_text())


def fit_allgather(rows: list[tuple[int, float]]) -> tuple[float, float]:
    """Latency (s) and seconds per byte of a 2-rank all-gather, least squares."""
    x = np.array([r[0] for r in rows], dtype=float)
    y = np.array([r[1] for r in rows])
    beta, alpha = np.polyfit(x, y, 1)
    return max(float(alpha), 0.0), max(float(beta), 0.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=64)
    parser.add_argument("--max-rank", type=int, default=24)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=["allgather", "step"], help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "allgather":
        allgather_worker(args.json)
        return
    if args.worker == "step":
        step_worker(args.sites, args.max_rank, args.steps, args.json)
        return
    if os.environ.get("OMP_NUM_THREADS") != "1":
        progress("warning: OMP_NUM_THREADS is not 1")
    size = ["--sites", str(args.sites), "--max-rank", str(args.max_rank)]
    size += ["--steps", str(args.steps)]
    walls, maps = record(args.sites, args.max_rank, args.steps)
    alpha, beta = fit_allgather(_run_mpi(2, ["--worker", "allgather"]))
    unpickle = unpickle_rate()
    measured = {p: _run_mpi(p, ["--worker", "step", *size]) for p in (1, 2)}
    per_step = []
    for wall, step_maps in zip(walls, maps, strict=True):
        tasks = sum(sum(m.seconds) + m.pickling for m in step_maps)
        per_step.append((wall - tasks, step_maps))
    rows = []
    for p in RANKS:
        parts = [predict(g, m, p, alpha, beta, unpickle) for g, m in per_step]
        rows.append((p, {k: float(np.mean([q[k] for q in parts])) for k in parts[0]}))
    critical = float(np.mean([g + sum(max(m.seconds) for m in ms) for g, ms in per_step]))
    n_tasks = sum(len(m.seconds) for m in maps[0])
    n_bytes = sum(sum(m.nbytes) for m in maps[0])
    report = render(args, rows, measured, critical, alpha, beta, unpickle, n_tasks, n_bytes, maps)
    write_report(report + "\n", args.output)


def render(args, rows, measured, critical, alpha, beta, unpickle, n_tasks, n_bytes, maps) -> str:
    """The markdown report."""
    glue = rows[0][1]["glue"]
    serial = rows[0][1]["total"]
    lines = [
        "# Cost model of the parallel BUG step against measured 1- and 2-rank runs",
        "",
        f"Command: `python -m benchmarks.bug_cost_model --sites {args.sites} --max-rank "
        f"{args.max_rank} --steps {args.steps}`; long-range Ising chain (arXiv 2412.00858, "
        f"Sec. 5.1 model), balanced binary tree, d = {args.sites}, atol 1e-8, ranks <= "
        f"{args.max_rank}, h = 0.01, rejection off, after 10 warm-up steps; "
        f"OMP_NUM_THREADS=1; {os.cpu_count()} logical CPUs (shared).",
        "",
        f"Per step: {len(maps[0])} collective maps (tree levels), {n_tasks} tasks, "
        f"{n_bytes / 1e6:.2f} MB of pickled results; replicated glue G = {glue:.3f} s of a "
        f"{serial:.3f} s step on one rank ({100 * glue / serial:.0f} %). All-gather on 2 "
        f"ranks (micro-benchmark): latency {alpha * 1e6:.0f} us, {1e-9 / beta if beta else 0:.2f} "
        f"GB/s; unpickling {1e-9 / unpickle:.2f} GB/s. Critical path (G + the longest task "
        f"of every map): {critical:.3f} s.",
        "",
    ]
    base = float(np.mean(measured[1]))
    table = []
    for p, r in rows:
        got = measured.get(p)
        cells = (
            [f"{float(np.mean(got)):.3f}", f"{base / float(np.mean(got)):.2f}x"]
            if got
            else ["–", "–"]
        )
        table.append(
            [str(p), f"{r['total']:.3f}", f"{r['glue']:.3f}", f"{r['compute']:.3f}"]
            + [f"{r['comm']:.3f}", f"{serial / r['total']:.2f}x", *cells]
        )
    header = ["ranks", "model: step (s)", "glue", "tasks (makespan)", "all-gather"]
    header += ["model speed-up", "measured step (s)", "measured speed-up"]
    lines.append(markdown_table(header, table))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
