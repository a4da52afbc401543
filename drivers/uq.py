r"""Radiative transfer with uncertain cross sections: collocation in a tree tensor network.

The unknown ``u(space..., moment, xi_i, eta_j)`` lives on the tree of arXiv 2412.00858,
``root -> {(space, moments), (xi, eta)}`` (:mod:`problems.uq`), stepped by a rank-adaptive
BUG integrator with mass-conservative truncation. The default is the paper's Sec. 5.2:
plane source, 201 cells x 100 moments x 100 x 100 Gauss points, ``sigma_s = 5 + 4 xi + eta``,
T = 2, augmented BUG, rtol 1e-4, ranks 2..50 (the parallel BUG needs about 10x smaller
``rtol``: 1e-5). That is a large run; a quick one is::

    python -m drivers.uq --set problem.transport.cells=51 --set problem.transport.degree=15 \\
        --set problem.nodes_xi=8 --set problem.nodes_eta=8 --set problem.transport.t_end=0.5 \\
        --set output.reference=true
    mpirun -n 4 python -m drivers.uq --set preset=section_5_3      # Sec. 5.3 (2-D)
    python -m drivers.uq --restart runs/uq.nc                      # continue a stopped run
    python -m drivers.uq plot runs/uq.nc                           # PNG plots

The top-level key ``preset`` picks the defaults of the ``problem`` table:
``"section_5_2"`` (:class:`problems.uq.UQParams`) or ``"section_5_3"``
(:meth:`problems.uq.UQParams.section_5_3`: line source, ``sigma_s = 1 + xi``,
``sigma_a = 1 + eta``, 100 x 100 cells, P_31, T = 1); the ``--config`` file and
``--set problem.KEY=VALUE`` then change single values.

The independent local problems of each step are spread over the MPI ranks; rank 0 writes
one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``) with the
coordinates ``x`` (and ``y``), the series ``density_mean`` and ``density_var`` (time x
space: expected value and variance of the density over the parameters, from the tree),
``mass`` (expected mass), ``max_rank``, ``ranks`` (time x edge), ``trunc_error``, ``eta``,
``rejected``, ``wall_time``. With ``output.reference = true`` (off by default) the
full-rank collocation reference is computed at the end: ``output.reference_nodes`` (32)
full-rank solves at Chebyshev points in ``sigma_s``, interpolated to all collocation points
(:func:`problems.uq.interpolated_density`; ``0``, or a grid of at most that many points,
solves at every point), spread over the MPI ranks. The finished run then holds the static
(non-time) variables ``density_mean_reference``, ``density_var_reference`` (space) and the
scalars ``error_mean``, ``error_var`` (relative L2 errors at the final time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drivers._cli import run_command_line
from drivers._evolution import (
    OutputParams,
    SolverParams,
    evolve,
    plot_ranks,
    start,
)
from problems.radiative_transfer import full_rank_solve, grid, time_step
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
from tensorsim.config import (
    ConfigError,
    Params,
    config_to_toml,
    load_with_preset,
    param,
)
from tensorsim.parallel import Executor
from tensorsim.ttn import TTN, inner, product_state
from tensorsim.ttn.conservation import functional_network, include_functional
from tensorsim.ttn.operator import to_ttno

__all__ = ["PRESETS", "UQOutputParams", "UQRun", "UQSolverParams", "main", "plot", "run"]

logger = logging.getLogger("drivers.uq")

#: ``preset`` -> the ``problem`` defaults it stands for.
PRESETS = {"section_5_2": UQParams, "section_5_3": UQParams.section_5_3}


@dataclass(frozen=True)
class UQSolverParams(SolverParams):
    """Time integration (see :class:`drivers._evolution.SolverParams`).

    Attributes
    ----------
    rtol
        Truncation tolerance relative to the norm: 1e-4 for the augmented BUG, about 1e-5
        for the parallel BUG.
    """

    rtol: float = param(1e-4, "truncation tolerance relative to the norm", gt=0.0)


@dataclass(frozen=True)
class UQOutputParams(OutputParams):
    """Output file, cadences and reference (see :class:`drivers._evolution.OutputParams`).

    Attributes
    ----------
    path
        Output netCDF4/HDF5 file (its directory is created).
    reference
        Full-rank collocation reference of the final mean and variance (solves spread over
        the MPI ranks).
    reference_nodes
        Full-rank solves of the reference: Chebyshev points in ``sigma_s`` of
        :func:`problems.uq.interpolated_density`; ``0``, or not fewer than the collocation
        points, solves at every collocation point.
    """

    path: str = param("runs/uq.nc", "output file")
    reference: bool = param(False, "full-rank collocation reference at the final time")
    reference_nodes: int = param(
        32, "full-rank solves of the reference (Chebyshev in sigma_s); 0: one per point", ge=0
    )


@dataclass(frozen=True)
class UQRun(Params):
    """Configuration of ``python -m drivers.uq``.

    Attributes
    ----------
    preset
        Defaults of ``problem``: ``"section_5_2"`` or ``"section_5_3"``.
    problem
        The uncertain problem and its collocation grid.
    solver
        Time integration.
    output
        File, cadences and reference.
    """

    preset: Literal["section_5_2", "section_5_3"] = param(
        "section_5_2", "defaults of the problem table: section_5_2 or section_5_3"
    )
    problem: UQParams = param(UQParams(), "uncertain problem and collocation grid")
    solver: UQSolverParams = param(UQSolverParams(), "time integration")
    output: UQOutputParams = param(UQOutputParams(), "output file, cadences and reference")


def _space_dims(params: UQParams) -> tuple[str, ...]:
    return ("x",) if grid(params.transport).dim == 1 else ("x", "y")


def _writer(path: Path, cfg: UQRun, comm: Any, edges: Sequence[int]) -> Any:
    from tensorsim.io import Writer

    params = cfg.problem
    space = _space_dims(params)
    out = Writer(
        path,
        record_dim="time",
        comm=comm,
        config=config_to_toml(cfg),
        attrs={"case": params.transport.case, "integrator": cfg.solver.integrator},
    )
    for name in space:
        out.set_coordinate(name, grid(params.transport).centres, long_name=f"cell centre ({name})")
    out.set_coordinate("edge", np.asarray(edges), long_name="tree edge (its child node)")
    out.define_series("density_mean", space, long_name="expected density E[rho]")
    out.define_series("density_var", space, long_name="variance of the density Var[rho]")
    out.define_series("mass", long_name="expected mass E[int rho dx]")
    out.define_series("max_rank", dtype="int64", long_name="largest edge rank")
    out.define_series("ranks", ("edge",), dtype="int64", long_name="rank of every edge")
    out.define_series("trunc_error", long_name="2-norm of the discarded singular values")
    out.define_series("eta", long_name="h * norm of the dropped blocks (parallel BUG)")
    out.define_series("rejected", dtype="int64", long_name="rejected attempts in the step")
    out.define_series("wall_time", units="s", long_name="wall time of the step")
    return out


def _relative(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


def run(
    cfg: UQRun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Run (or continue) the evolution; return a summary (on every rank)."""
    params, solver, output = cfg.problem, cfg.solver, cfg.output
    try:
        grid(params.transport)
    except ValueError as exc:
        raise ConfigError(f"config key 'problem.transport': {exc}") from exc
    h, n_steps = time_step(params.transport)
    tree = uq_tree(params)
    rhs = LinearTreeRHS(to_ttno(uq_operator(params), tree), factor=1.0)
    weights = uq_mass_weights(params)
    conserve = weights if solver.conserve else None
    trunc = Truncation(rtol=solver.rtol, max_rank=solver.max_rank, min_rank=solver.min_rank)
    executor = Executor(comm)

    def initial() -> TTN:
        y = product_state(tree, initial_vectors(params), rank=solver.initial_rank)
        if conserve is None:
            return y
        return include_functional(y, weights)

    begin = start(
        Path(output.path if restart is None else restart),
        comm,
        tree=tree,
        restart=restart is not None,
        initial=initial,
        new_writer=lambda p: _writer(p, cfg, comm, tree.edges),
    )
    w = functional_network(begin.y, weights)

    def expected_mass(y: TTN) -> float:
        return float(inner(w, y))

    def record(k: int, y: TTN, info: Any, wall: float) -> None:
        ranks = np.asarray([y.ranks()[e] for e in tree.edges], dtype=np.int64)
        mean, var = density_statistics(params, y)
        values: dict[str, Any] = {
            "density_mean": mean,
            "density_var": var,
            "mass": expected_mass(y),
            "max_rank": int(ranks.max()),
            "ranks": ranks,
            "wall_time": wall,
        }
        if info is not None:
            values.update(trunc_error=info.trunc_error, eta=info.eta, rejected=info.rejected)
        begin.out.append(k * h, **values)

    def step(y: TTN, t: float) -> Any:
        return INTEGRATORS[solver.integrator](
            y,
            t,
            h,
            rhs=rhs,
            trunc=trunc,
            executor=executor,
            substep="rk4",
            conserve=conserve,
        )

    def reference(y: TTN) -> None:
        if not output.reference:
            return
        clock = time.perf_counter()
        points = params.nodes_xi * params.nodes_eta
        nodes = output.reference_nodes if 0 < output.reference_nodes < points else None
        ref_mean, ref_var = collocation_reference(
            params,
            lambda point: full_rank_solve(point)[-1],
            executor.map,
            sigma_s_nodes=nodes,
        )
        mean, var = density_statistics(params, y)
        err_mean, err_var = _relative(mean, ref_mean), _relative(var, ref_var)
        logger.info(
            "collocation reference (%d points, %d solves) in %.1f s: relative error of the "
            "mean %.2e, of the variance %.2e",
            points,
            nodes or points,
            time.perf_counter() - clock,
            err_mean,
            err_var,
        )
        out, space = begin.out, _space_dims(params)
        out.set_variable(
            "density_mean_reference", space, ref_mean, long_name="full-rank E[rho] at t_end"
        )
        out.set_variable(
            "density_var_reference", space, ref_var, long_name="full-rank Var[rho] at t_end"
        )
        out.set_variable("error_mean", (), err_mean, long_name="relative L2 error of E[rho]")
        out.set_variable("error_var", (), err_var, long_name="relative L2 error of Var[rho]")

    return evolve(
        begin,
        comm,
        step=step,
        h=h,
        n_steps=n_steps,
        mass=expected_mass,
        record=record,
        every=output.every,
        checkpoint_every=output.checkpoint_every,
        log_every=output.log_every,
        max_steps=max_steps,
        max_mass_growth=solver.max_mass_growth,
        on_finish=reference,
    )


def plot(path: str) -> list[Path]:
    """Write mean/variance and rank plots next to ``path``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    outputs = []
    last = ds.isel(time=-1)
    t_last = float(last["time"])
    pairs = [("density_mean", "mean"), ("density_var", "variance")]
    if "y" not in ds.dims:
        fig, axes = plt.subplots(2, 1, figsize=(6, 6), sharex=True, constrained_layout=True)
        for ax, (name, label) in zip(axes, pairs, strict=True):
            ax.plot(ds["x"], last[name], label=ds.attrs.get("integrator", "TTN"))
            if f"{name}_reference" in ds:
                ax.plot(ds["x"], ds[f"{name}_reference"], "k--", label="collocation")
            ax.set_ylabel(f"{label} of the density")
            ax.legend()
        axes[0].set_title(f"t = {t_last:.3g}")
        axes[-1].set_xlabel("x")
    else:
        extent = (float(ds["x"][0]), float(ds["x"][-1]), float(ds["y"][0]), float(ds["y"][-1]))
        has_ref = "density_mean_reference" in ds
        fig, axes = plt.subplots(
            2, 2 if has_ref else 1, figsize=(10 if has_ref else 5.5, 8), constrained_layout=True
        )
        axes = np.asarray(axes).reshape(2, -1)
        for row, (name, label) in enumerate(pairs):
            maps = [(last[name].values, f"{label}, t = {t_last:.3g}")]
            if has_ref:
                maps.append((ds[f"{name}_reference"].values, f"{label}, collocation"))
            vmax = max(float(np.max(m)) for m, _ in maps)
            for ax, (values, title) in zip(axes[row], maps, strict=True):
                image = ax.imshow(values.T, origin="lower", extent=extent, vmin=0.0, vmax=vmax)
                ax.set_title(title)
                ax.set_xlabel("x")
                ax.set_ylabel("y")
            fig.colorbar(image, ax=axes[row].tolist())
    outputs.append(base.with_name(base.name + "_statistics.png"))
    fig.savefig(outputs[-1], dpi=120)
    plt.close(fig)
    outputs.append(plot_ranks(ds, base, plt))
    return outputs


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=UQRun,
        prog="python -m drivers.uq",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(UQRun, args.config, args.set, PRESETS),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=_summarize,
        logger=logger,
    )


def _describe(cfg: UQRun, n_ranks: int) -> str:
    t, s = cfg.problem.transport, cfg.solver
    return (
        f"{t.case}, {t.cells} cells, P_{t.degree}, {cfg.problem.nodes_xi} x "
        f"{cfg.problem.nodes_eta} collocation points, {s.integrator}, rtol={s.rtol:g}, "
        f"T={t.t_end:g} on {n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    return (
        f"{summary['steps']} steps in {summary['wall_time']:.1f} s, max rank "
        f"{summary['max_rank']}, mass change {summary['mass_change']:+.1e}; "
        f"wrote {summary['path']}"
    )


if __name__ == "__main__":
    main()
