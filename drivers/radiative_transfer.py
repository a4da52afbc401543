r"""Radiative transfer (P_N moments, finite volumes) by a rank-adaptive BUG integrator.

The default run is the deterministic plane source of arXiv 2412.00858, Sec. 5.2: slab,
201 cells, P_99 (100 moments), sigma_s = 1, T = 2, h = 0.1 dx, as the matrix DLRA (a tree
of two leaves, space and moments), augmented BUG with rtol 1e-3, ranks 2..50, mass-conservative
truncation, compared with the full-rank RK4 solution at every record::

    mpirun -n 2 python -m drivers.radiative_transfer
    python -m drivers.radiative_transfer --set preset=line_source       # Sec. 5.3, 2-D
    python -m drivers.radiative_transfer --set solver.integrator=parallel_bug \\
        --set solver.rtol=1e-4 --set output.path=runs/plane_parallel.nc
    python -m drivers.radiative_transfer --restart runs/radiative_transfer.nc  # continue
    python -m drivers.radiative_transfer plot runs/radiative_transfer.nc       # PNG plots

``preset`` (``"plane_source"`` or ``"line_source"``) picks the defaults of the ``problem``
table (:class:`problems.radiative_transfer.TransportParams` and its ``line_source``
preset: 100 x 100 cells, P_31, CFL 0.5, T = 1, on the star tree ``(x, y, moments)``; the
nested ``((x, y), moments)`` of ``solver.tree = "nested"`` is far less accurate from the
zero-padded initial state); the ``--config`` file and ``--set problem.KEY=VALUE`` then
change single values. The parallel BUG needs a tolerance about 10x smaller than the
augmented BUG (``solver.rtol = 1e-4``).

The independent local problems of each step are spread over the MPI ranks; rank 0 writes
one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``) with the
coordinates ``x`` (and ``y``) and the series ``density`` (time x x [x y]), ``mass``,
``max_rank``, ``ranks`` (time x edge), ``trunc_error``, ``eta``, ``rejected``,
``wall_time``, and with ``output.reference``: ``density_reference``, ``error_density``
(relative L2 error of the density) and ``mass_reference``. The reference runs on rank 0
before the time loop; its moments are kept for at most 256 MiB of record times at once
(more record times cost repeated solves from t = 0). The state is checkpointed every
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
from drivers._evolution import (
    OutputParams,
    SolverParams,
    evolve,
    plot_ranks,
    record_steps,
    start,
)
from problems.radiative_transfer import (
    TransportParams,
    density,
    full_rank_solve,
    grid,
    initial_moments,
    mass,
    mass_weights,
    site_dims,
    time_step,
    transport_operator,
)
from solvers.bug import INTEGRATORS, LinearTreeRHS
from tensorsim import Truncation
from tensorsim._array_api import to_numpy
from tensorsim.config import (
    ConfigError,
    Params,
    config_to_toml,
    load_with_preset,
    param,
)
from tensorsim.parallel import Executor
from tensorsim.ttn import TTN, Tree, inner, product_state, subtree_tensor
from tensorsim.ttn.conservation import functional_network, include_functional
from tensorsim.ttn.operator import to_ttno

__all__ = [
    "PRESETS",
    "RTOutputParams",
    "RTSolverParams",
    "RadiativeTransferRun",
    "build_tree",
    "check_problem",
    "main",
    "plot",
    "run",
    "tree_density",
]

logger = logging.getLogger("drivers.radiative_transfer")

#: ``preset`` -> the ``problem`` defaults it stands for.
PRESETS = {"plane_source": TransportParams, "line_source": TransportParams.line_source}

#: Largest memory for the full-rank reference moments kept at once.
_REFERENCE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class RTSolverParams(SolverParams):
    """Time integration (see :class:`drivers._evolution.SolverParams`) and the tree.

    Attributes
    ----------
    tree
        ``"nested"``: ``(x, moments)`` in the slab, ``((x, y), moments)`` in the plane;
        ``"star"``: one root over all sites (Tucker; the same as ``"nested"`` in the slab).
        From the zero-padded product state, the augmented BUG on the nested plane tree is
        far less accurate than on the star (line source, 100 x 100 cells, P_31: relative
        density error 2.7e-2 after one step and 0.27 after four, against 2.5e-5 and 6.8e-5):
        the ``(x, y)`` update sees the moments only through their old basis, where the
        transport term has no component. The star is the default.
    """

    tree: Literal["nested", "star"] = param(
        "star", "tree: star (x, y, moments) or nested ((x, y), moments) in 2-D"
    )


@dataclass(frozen=True)
class RTOutputParams(OutputParams):
    """Output file, cadences and reference (see :class:`drivers._evolution.OutputParams`).

    Attributes
    ----------
    path
        Output netCDF4/HDF5 file (its directory is created).
    reference
        Full-rank RK4 solution at every record time (``density_reference`` and errors).
    """

    path: str = param("runs/radiative_transfer.nc", "output file")
    reference: bool = param(True, "full-rank reference at every record time")


@dataclass(frozen=True)
class RadiativeTransferRun(Params):
    """Configuration of ``python -m drivers.radiative_transfer``.

    Attributes
    ----------
    preset
        Defaults of ``problem``: ``"plane_source"`` (Sec. 5.2) or ``"line_source"``
        (Sec. 5.3).
    problem
        The test case and its discretization.
    solver
        Time integration.
    output
        File, cadences and reference.
    """

    preset: Literal["plane_source", "line_source"] = param(
        "plane_source", "defaults of the problem table: plane_source or line_source"
    )
    problem: TransportParams = param(TransportParams(), "test case and discretization")
    solver: RTSolverParams = param(RTSolverParams(), "time integration and tree")
    output: RTOutputParams = param(RTOutputParams(), "output file, cadences and reference")


def check_problem(params: TransportParams, key: str = "problem") -> None:
    """Raise :class:`ConfigError` naming ``key`` if the discretization is refused (CFL)."""
    try:
        grid(params)
    except ValueError as exc:
        raise ConfigError(f"config key {key!r}: {exc}") from exc


def build_tree(dims: Sequence[int], shape: Literal["nested", "star"] = "star") -> Tree:
    """The tree of the moments.

    ``(x, moments)`` in the slab (matrix DLRA); in the plane ``((x, y), moments)``
    (``shape = "nested"``) or the star ``(x, y, moments)`` (``shape = "star"``).
    """
    if len(dims) == 2:
        return Tree.from_nested((0, 1), dims)
    return Tree.from_nested(((0, 1), 2) if shape == "nested" else (0, 1, 2), dims)


def tree_density(y: TTN, iso: np.ndarray) -> np.ndarray:
    """Density from the tree: the moment site (the last one) summed against ``iso``."""
    moment_site = y.tree.n_sites - 1
    rho, sites = subtree_tensor(y, y.tree.root, {moment_site: iso})
    return np.transpose(to_numpy(rho)[..., 0], np.argsort(sites))


def _reference(
    params: TransportParams, steps: list[int], h: float
) -> dict[int, tuple[np.ndarray, float]]:
    """Step -> (density, mass) of the full-rank solution, in chunks of bounded memory."""
    if not steps:
        return {}
    begin = time.perf_counter()
    chunk = max(1, _REFERENCE_BYTES // (8 * math.prod(site_dims(params))))
    out: dict[int, tuple[np.ndarray, float]] = {}
    for i in range(0, len(steps), chunk):
        part = steps[i : i + chunk]
        moments = full_rank_solve(params, np.asarray(part, dtype=float) * h)
        for k, u in zip(part, moments, strict=True):
            out[k] = (density(params, u), mass(params, u))
    logger.info(
        "full-rank reference at %d times in %.1f s", len(steps), time.perf_counter() - begin
    )
    return out


def _writer(path: Path, cfg: RadiativeTransferRun, comm: Any, tree: Tree) -> Any:
    from tensorsim.io import Writer

    params = cfg.problem
    g = grid(params)
    space = ("x",) if g.dim == 1 else ("x", "y")
    out = Writer(
        path,
        record_dim="time",
        comm=comm,
        config=config_to_toml(cfg),
        attrs={"case": params.case, "integrator": cfg.solver.integrator},
    )
    for name in space:
        out.set_coordinate(name, g.centres, long_name=f"cell centre ({name})")
    out.set_coordinate("edge", np.asarray(tree.edges), long_name="tree edge (its child node)")
    out.define_series("density", space, long_name="density int psi dOmega")
    out.define_series("mass", long_name="mass int rho dx")
    out.define_series("max_rank", dtype="int64", long_name="largest edge rank")
    out.define_series("ranks", ("edge",), dtype="int64", long_name="rank of every edge")
    out.define_series("trunc_error", long_name="2-norm of the discarded singular values")
    out.define_series("eta", long_name="h * norm of the dropped blocks (parallel BUG)")
    out.define_series("rejected", dtype="int64", long_name="rejected attempts in the step")
    out.define_series("wall_time", units="s", long_name="wall time of the step")
    if cfg.output.reference:
        out.define_series("density_reference", space, long_name="full-rank density")
        out.define_series("error_density", long_name="relative L2 error of the density")
        out.define_series("mass_reference", long_name="full-rank mass")
    return out


def run(
    cfg: RadiativeTransferRun,
    comm: Any,
    *,
    restart: Path | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Run (or continue) the evolution; return a summary (on every rank)."""
    params, solver, output = cfg.problem, cfg.solver, cfg.output
    check_problem(params)
    h, n_steps = time_step(params)
    op = transport_operator(params)
    tree = build_tree(op.dims, solver.tree)
    rhs = LinearTreeRHS(to_ttno(op, tree), factor=1.0)
    weights = mass_weights(params)
    conserve = weights if solver.conserve else None
    trunc = Truncation(rtol=solver.rtol, max_rank=solver.max_rank, min_rank=solver.min_rank)
    executor = Executor(comm)

    def initial() -> TTN:
        y = product_state(tree, initial_moments(params), rank=solver.initial_rank)
        if conserve is None:
            return y
        return include_functional(y, weights)

    path = Path(output.path if restart is None else restart)
    begin = start(
        path,
        comm,
        tree=tree,
        restart=restart is not None,
        initial=initial,
        new_writer=lambda p: _writer(p, cfg, comm, tree),
    )
    todo = [k for k in record_steps(n_steps, output.every) if restart is None or k > begin.step]
    reference = _reference(params, todo, h) if output.reference and comm.rank == 0 else {}
    w = functional_network(begin.y, weights)
    iso = weights[-1]

    def observe_mass(y: TTN) -> float:
        return float(inner(w, y))

    def record(k: int, y: TTN, info: Any, wall: float) -> None:
        ranks = np.asarray([y.ranks()[e] for e in tree.edges], dtype=np.int64)
        rho = tree_density(y, iso)
        values: dict[str, Any] = {
            "density": rho,
            "mass": observe_mass(y),
            "max_rank": int(ranks.max()),
            "ranks": ranks,
            "wall_time": wall,
        }
        if info is not None:
            values.update(trunc_error=info.trunc_error, eta=info.eta, rejected=info.rejected)
        if k in reference:
            rho_ref, mass_ref = reference[k]
            error = np.linalg.norm(rho - rho_ref) / np.linalg.norm(rho_ref)
            values.update(density_reference=rho_ref, error_density=error, mass_reference=mass_ref)
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

    return evolve(
        begin,
        comm,
        step=step,
        h=h,
        n_steps=n_steps,
        mass=observe_mass,
        record=record,
        every=output.every,
        checkpoint_every=output.checkpoint_every,
        log_every=output.log_every,
        max_steps=max_steps,
        max_mass_growth=solver.max_mass_growth,
    )


def plot(path: str) -> list[Path]:
    """Write density, rank and mass plots next to ``path``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    outputs = []
    has_ref = "density_reference" in ds
    last = ds.isel(time=-1)
    t_last = float(last["time"])
    if "y" not in ds.dims:
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        ax.plot(ds["x"], last["density"], label=ds.attrs.get("integrator", "TTN"))
        if has_ref:
            ax.plot(ds["x"], last["density_reference"], "k--", label="full rank")
        ax.set_xlabel("x")
        ax.set_ylabel(f"density at t = {t_last:.3g}")
        ax.legend()
    else:
        names = ["density", "density_reference"] if has_ref else ["density"]
        fig, axes = plt.subplots(
            1, len(names), figsize=(5 * len(names), 4.2), constrained_layout=True, squeeze=False
        )
        extent = (
            float(ds["x"][0]),
            float(ds["x"][-1]),
            float(ds["y"][0]),
            float(ds["y"][-1]),
        )
        vmax = max(float(last[name].max()) for name in names)
        for ax, name in zip(axes[0], names, strict=True):
            image = ax.imshow(
                last[name].values.T, origin="lower", extent=extent, vmin=0.0, vmax=vmax
            )
            ax.set_title(f"{name}, t = {t_last:.3g}")
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        fig.colorbar(image, ax=axes[0].tolist())
    outputs.append(base.with_name(base.name + "_density.png"))
    fig.savefig(outputs[-1], dpi=120)
    plt.close(fig)
    outputs.append(plot_ranks(ds, base, plt))
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    m0 = float(ds["mass"][0])
    drift = np.abs(ds["mass"] - m0) / abs(m0) + 1e-17
    ax.semilogy(ds["time"], drift, label="|mass - mass(0)| / mass(0)")
    if has_ref:
        drift = np.abs(ds["mass_reference"] - m0) / abs(m0) + 1e-17
        ax.semilogy(ds["time"], drift, "k--", label="the same, full rank")
        ax.semilogy(ds["time"], ds["error_density"] + 1e-17, label="relative error of the density")
    ax.set_xlabel("time")
    ax.set_ylabel("relative change / error")
    ax.legend()
    outputs.append(base.with_name(base.name + "_mass.png"))
    fig.savefig(outputs[-1], dpi=120)
    plt.close(fig)
    return outputs


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=RadiativeTransferRun,
        prog="python -m drivers.radiative_transfer",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(RadiativeTransferRun, args.config, args.set, PRESETS),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=_summarize,
        logger=logger,
    )


def _describe(cfg: RadiativeTransferRun, n_ranks: int) -> str:
    p, s = cfg.problem, cfg.solver
    return (
        f"{p.case}, {p.cells} cells, P_{p.degree}, {s.integrator}, rtol={s.rtol:g}, "
        f"T={p.t_end:g} on {n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    return (
        f"{summary['steps']} steps in {summary['wall_time']:.1f} s, max rank "
        f"{summary['max_rank']}, mass change {summary['mass_change']:+.1e}; "
        f"wrote {summary['path']}"
    )


if __name__ == "__main__":
    main()
