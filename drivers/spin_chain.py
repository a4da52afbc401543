r"""Time evolution of a quantum spin chain on a tree tensor network by a BUG integrator.

The default run is Section 5.1 of arXiv 2412.00858: the long-range Ising chain of 16 sites
on a balanced binary tree, T = 1, h = 0.01, absolute truncation tolerance 1e-8, ranks
2..40, parallel BUG, from all spins up, compared with exact diagonalization::

    mpirun -n 4 python -m drivers.spin_chain
    python -m drivers.spin_chain --set model.model=tfim --set model.sites=32 \\
        --set solver.integrator=augmented_bug --set output.path=runs/tfim.nc
    python -m drivers.spin_chain --restart runs/spin_chain.nc     # continue a stopped run
    python -m drivers.spin_chain plot runs/spin_chain.nc          # PNG plots next to the file

The independent local problems of each parallel-BUG step are spread over the MPI ranks;
rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``) with
``mz`` (time x site), ``mz_mean``, ``norm``, ``energy``, ``max_rank``, ``ranks`` (time x
edge), ``trunc_error``, ``eta``, ``rejected``, ``wall_time``, and, for up to 16 sites, the
exact ``mz_mean_exact`` and ``error_mz``. The state is checkpointed every
``output.checkpoint_every`` steps.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drivers._cli import run_command_line
from drivers._evolution import evolve, plot_ranks, record_steps, start
from problems.spin_chain import (
    MAX_EXACT_SITES,
    SpinChainParams,
    build_tree,
    exact_dynamics,
    hamiltonian,
    initial_vectors,
    magnetization_operator,
)
from solvers.bug import INTEGRATORS, LinearTreeRHS
from tensorsim import Truncation
from tensorsim._array_api import to_numpy
from tensorsim.config import (
    ConfigError,
    Params,
    config_from_args,
    config_to_toml,
    param,
)
from tensorsim.parallel import Executor
from tensorsim.ttn import TTN, local_expectations, product_state
from tensorsim.ttn.environment import down_environments
from tensorsim.ttn.operator import to_ttno

__all__ = ["OutputParams", "SolverParams", "SpinChainRun", "main", "plot"]

logger = logging.getLogger("drivers.spin_chain")


@dataclass(frozen=True)
class SolverParams(Params):
    """Time integration.

    Attributes
    ----------
    integrator
        ``"parallel_bug"``, ``"augmented_bug"`` or ``"bug"`` (fixed rank).
    h
        Step size.
    t_end
        Final time.
    atol
        Absolute truncation tolerance per edge (2-norm of the discarded values).
    max_rank, min_rank
        Rank bounds of every edge.
    initial_rank
        Rank of the zero-padded initial product state.
    substep
        Local problems by Krylov exponentials or RK4.
    rejection
        Step rejection of the parallel BUG (``"norm"``, ``"paper"``, ``"none"``).
    max_norm_growth
        Stop (blow-up) when the squared norm of the state grows beyond its initial value by
        this much, relative (the flow is unitary: only truncation changes the norm).
    """

    integrator: Literal["parallel_bug", "augmented_bug", "bug"] = param(
        "parallel_bug", "BUG integrator"
    )
    h: float = param(0.01, "step size", gt=0.0)
    t_end: float = param(1.0, "final time", ge=0.0)
    atol: float = param(1e-8, "absolute truncation tolerance per edge", gt=0.0)
    max_rank: int = param(40, "largest rank of an edge", ge=1)
    min_rank: int = param(2, "smallest rank of an edge", ge=1)
    initial_rank: int = param(2, "rank of the zero-padded initial state", ge=1)
    substep: Literal["krylov", "rk4"] = param("krylov", "local problems: Krylov or RK4")
    rejection: Literal["norm", "paper", "none"] = param(
        "norm", "parallel BUG step rejection (norm = paper rules + norm-defect test)"
    )
    max_norm_growth: float = param(
        1e-3, "stop (blow-up) when norm^2 grows beyond this, relative to its initial value", gt=0.0
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_rank < self.min_rank:
            raise ConfigError(
                f"config key 'solver.max_rank': {self.max_rank} is smaller than "
                f"solver.min_rank = {self.min_rank}"
            )


@dataclass(frozen=True)
class OutputParams(Params):
    """Output file and cadences.

    Attributes
    ----------
    path
        Output netCDF4/HDF5 file (its directory is created).
    every
        Write one record every this many steps.
    checkpoint_every
        Checkpoint the state every this many steps.
    log_every
        One progress line every this many steps.
    exact
        Compute the exact reference when ``model.sites <= 16``.
    """

    path: str = param("runs/spin_chain.nc", "output file")
    every: int = param(1, "steps between records", ge=1)
    checkpoint_every: int = param(10, "steps between checkpoints", ge=1)
    log_every: int = param(10, "steps between progress lines", ge=1)
    exact: bool = param(True, "exact reference for up to 16 sites")


@dataclass(frozen=True)
class SpinChainRun(Params):
    """Configuration of ``python -m drivers.spin_chain``.

    Attributes
    ----------
    model
        The spin chain (see :class:`problems.spin_chain.SpinChainParams`).
    solver
        Time integration.
    output
        File and cadences.
    """

    model: SpinChainParams = param(SpinChainParams(), "the spin chain")
    solver: SolverParams = param(SolverParams(), "time integration")
    output: OutputParams = param(OutputParams(), "output file and cadences")


@dataclass
class _Monitor:
    """Quantities recorded for one state."""

    mz: np.ndarray
    norm: float
    energy: float


def _observe(y: TTN, rhs: LinearTreeRHS) -> _Monitor:
    mz = to_numpy(local_expectations(y, magnetization_operator()))
    envs = down_environments(y, rhs.op)
    norm2 = y.norm() ** 2
    energy = float(np.real(to_numpy(envs[y.tree.root])[0, 0, 0])) / norm2
    return _Monitor(mz=mz, norm=math.sqrt(norm2), energy=energy)


def _exact(cfg: SpinChainRun, times: np.ndarray) -> Any:
    if not cfg.output.exact or cfg.model.sites > MAX_EXACT_SITES:
        return None
    start = time.perf_counter()
    result = exact_dynamics(cfg.model, times)
    logger.info("exact reference for %d times in %.1f s", len(times), time.perf_counter() - start)
    return result


def _writer(path: Path, cfg: SpinChainRun, comm: Any, d: int, edges: Sequence[int], exact: bool):
    from tensorsim.io import Writer

    out = Writer(
        path,
        record_dim="time",
        comm=comm,
        config=config_to_toml(cfg),
        attrs={"model": cfg.model.model, "integrator": cfg.solver.integrator},
    )
    out.set_coordinate("site", np.arange(d), long_name="site of the chain")
    out.set_coordinate("edge", np.asarray(edges), long_name="tree edge (id of its child node)")
    out.define_series("mz", ("site",), long_name="<Z_k> of the normalized state")
    out.define_series("mz_mean", long_name="mean magnetization (1/d) sum_k <Z_k>")
    out.define_series("norm", long_name="norm of the state")
    out.define_series("energy", long_name="<H> of the normalized state")
    out.define_series("max_rank", dtype="int64", long_name="largest edge rank")
    out.define_series("ranks", ("edge",), dtype="int64", long_name="rank of every edge")
    out.define_series("trunc_error", long_name="2-norm of the discarded singular values")
    out.define_series("eta", long_name="h * norm of the dropped blocks (parallel BUG)")
    out.define_series("rejected", dtype="int64", long_name="rejected attempts in the step")
    out.define_series("wall_time", units="s", long_name="wall time of the step")
    out.define_series("wall_parallel", units="s", long_name="time in the parallel part")
    out.define_series("wall_serial", units="s", long_name="time in the serial glue")
    if exact:
        out.define_series("mz_mean_exact", long_name="exact mean magnetization")
        out.define_series("error_mz", long_name="|mz_mean - mz_mean_exact|")
    return out


def _record(out: Any, t: float, mon: _Monitor, y: TTN, info: Any, wall: float, exact_mz) -> None:
    ranks = np.asarray([y.ranks()[e] for e in y.tree.edges], dtype=np.int64)
    values: dict[str, Any] = {
        "mz": mon.mz,
        "mz_mean": float(mon.mz.mean()),
        "norm": mon.norm,
        "energy": mon.energy,
        "max_rank": int(ranks.max()),
        "ranks": ranks,
        "wall_time": wall,
    }
    if info is not None:
        values.update(
            trunc_error=info.trunc_error,
            eta=info.eta,
            rejected=info.rejected,
            wall_parallel=info.wall_parallel,
            wall_serial=info.wall_serial,
        )
    if exact_mz is not None:
        values.update(mz_mean_exact=exact_mz, error_mz=abs(float(mon.mz.mean()) - exact_mz))
    out.append(t, **values)


def run(
    cfg: SpinChainRun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict:
    """Run (or continue) the evolution; return a summary (on every rank)."""
    params, solver = cfg.model, cfg.solver
    tree = build_tree(params)
    op = hamiltonian(params)
    ttno = to_ttno(op, tree)
    if not ttno.hermitian:
        raise ValueError("model: the Hamiltonian is not Hermitian; i dY/dt = H Y needs one")
    rhs = LinearTreeRHS(ttno, factor=-1j)
    step_fn = INTEGRATORS[solver.integrator]
    trunc = Truncation(atol=solver.atol, max_rank=solver.max_rank, min_rank=solver.min_rank)
    extra = {"rejection": solver.rejection} if solver.integrator == "parallel_bug" else {}
    n_steps = round(solver.t_end / solver.h)
    if abs(n_steps * solver.h - solver.t_end) > 1e-9 * max(1.0, solver.t_end):
        raise ConfigError(
            f"config key 'solver.h': t_end = {solver.t_end} is not a multiple of h = {solver.h}"
        )
    steps = record_steps(n_steps, cfg.output.every)
    exact = _exact(cfg, np.asarray(steps, dtype=float) * solver.h) if comm.rank == 0 else None
    exact_by_step = dict(zip(steps, exact.mz_mean, strict=True)) if exact is not None else {}
    executor = Executor(comm)
    begin = start(
        Path(cfg.output.path if restart is None else restart),
        comm,
        tree=tree,
        restart=restart is not None,
        initial=lambda: product_state(
            tree, initial_vectors(params), rank=solver.initial_rank, dtype=np.complex128
        ),
        new_writer=lambda p: _writer(p, cfg, comm, tree.n_sites, tree.edges, exact is not None),
    )

    def step(y: TTN, t: float) -> Any:
        return step_fn(y, t, solver.h, rhs=rhs, trunc=trunc, executor=executor, **extra)

    def record(k: int, y: TTN, info: Any, wall: float) -> None:
        mon = _observe(y, rhs)
        _record(begin.out, k * solver.h, mon, y, info, wall, exact_by_step.get(k))
        err = exact_by_step.get(k)
        if err is not None and info is not None and k % cfg.output.log_every == 0:
            logger.info(
                "step %d: error of the mean magnetization %.1e", k, abs(mon.mz.mean() - err)
            )

    return evolve(
        begin,
        comm,
        step=step,
        h=solver.h,
        n_steps=n_steps,
        mass=lambda y: y.norm() ** 2,
        record=record,
        every=cfg.output.every,
        checkpoint_every=cfg.output.checkpoint_every,
        log_every=cfg.output.log_every,
        max_steps=max_steps,
        max_mass_growth=solver.max_norm_growth,
        monitored="norm^2",
    )


def plot(path: str) -> list[Path]:
    """Write magnetization, rank and drift plots next to ``path``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    outputs = []
    has_exact = "mz_mean_exact" in ds
    fig, axes = plt.subplots(
        2 if has_exact else 1,
        1,
        figsize=(6, 6 if has_exact else 4),
        sharex=True,
        constrained_layout=True,
        squeeze=False,
    )
    ax = axes[0, 0]
    ax.plot(ds["time"], ds["mz_mean"], label=ds.attrs.get("integrator", "TTN"))
    if has_exact:
        ax.plot(ds["time"], ds["mz_mean_exact"], "k--", label="exact")
        axes[1, 0].semilogy(ds["time"][1:], ds["error_mz"][1:] + 1e-17)
        axes[1, 0].set_ylabel("|error| of mean magnetization")
    axes[-1, 0].set_xlabel("time")
    ax.set_ylabel("mean magnetization")
    ax.legend()
    outputs.append(base.with_name(base.name + "_magnetization.png"))
    fig.savefig(outputs[-1], dpi=120)
    plt.close(fig)
    outputs.append(plot_ranks(ds, base, plt))
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.semilogy(ds["time"][1:], np.abs(ds["norm"][1:] - 1.0) + 1e-17, label="|norm - 1|")
    energy = ds["energy"]
    ax.semilogy(ds["time"][1:], np.abs(energy[1:] - energy[0]) + 1e-17, label="|E - E(0)|")
    ax.set_xlabel("time")
    ax.set_ylabel("drift")
    ax.legend()
    outputs.append(base.with_name(base.name + "_drift.png"))
    fig.savefig(outputs[-1], dpi=120)
    plt.close(fig)
    return outputs


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=SpinChainRun,
        prog="python -m drivers.spin_chain",
        description=__doc__.split("\n")[0],
        load=lambda args: config_from_args(SpinChainRun, args),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=_summarize,
        logger=logger,
    )


def _describe(cfg: SpinChainRun, n_ranks: int) -> str:
    m, s = cfg.model, cfg.solver
    return (
        f"{m.model}, {m.sites} sites, {m.tree} tree, {s.integrator}, h={s.h:g}, "
        f"T={s.t_end:g} on {n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    return (
        f"{summary['steps']} steps in {summary['wall_time']:.1f} s, max rank "
        f"{summary['max_rank']}; wrote {summary['path']}"
    )


if __name__ == "__main__":
    main()
