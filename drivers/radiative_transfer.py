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
nested ``((x, y), moments)`` of ``tree = "nested"`` is far less accurate from the
zero-padded initial state, see :func:`problems.radiative_transfer.build_tree`); the
``--config`` file and ``--set problem.KEY=VALUE`` then change single values. ``solver`` is
the BUG integrator (:class:`solvers.bug.BUGParams`; the parallel BUG needs a tolerance
about 10x smaller than the augmented BUG, ``solver.rtol = 1e-4``), ``time`` the time grid
(:class:`solvers.evolution.EvolutionParams`; by default the problem's CFL step and final
time) and the blow-up bound on the mass.

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

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from analysis.radiative_transfer import plots
from drivers._base import Layout, Var
from drivers._cli import Driver
from drivers._evolution import STEP_SERIES, Evolution, EvolutionOutput, Setup, mass_setup
from problems.radiative_transfer import (
    TransportParams,
    build_tree,
    check_problem,
    full_rank_reference,
    grid,
    initial_moments,
    mass_weights,
    space_names,
    time_step,
    transport_operator,
    tree_density,
)
from solvers.bug import BUGParams, StepInfo
from solvers.evolution import EvolutionParams, record_steps
from tensorsim.config import Params, param
from tensorsim.parallel import Executor
from tensorsim.ttn import TTN

__all__ = ["PRESETS", "RadiativeTransfer", "RadiativeTransferRun", "main"]

logger = logging.getLogger("drivers.radiative_transfer")

#: ``preset`` -> the ``problem`` defaults it stands for.
PRESETS = {"plane_source": TransportParams, "line_source": TransportParams.line_source}


@dataclass(frozen=True)
class RadiativeTransferRun(Params):
    """Configuration of ``python -m drivers.radiative_transfer``."""

    preset: Literal["plane_source", "line_source"] = param(
        "plane_source", "defaults of the problem table: plane_source or line_source"
    )
    problem: TransportParams = param(TransportParams(), "test case and discretization")
    tree: Literal["nested", "star"] = param(
        "star", "tree in 2-D: star (x, y, moments) or nested ((x, y), moments)"
    )
    solver: BUGParams = param(
        BUGParams(
            integrator="augmented_bug", atol=None, rtol=1e-3, max_rank=50, min_rank=2,
            initial_rank=10, substep="rk4", conserve=True,
        ),
        "BUG integrator, truncation, local solver, mass-conservative truncation",
    )  # fmt: skip
    time: EvolutionParams = param(
        EvolutionParams(max_growth=1e-2),
        "step and final time (none: the problem's) and the blow-up bound on the mass",
    )
    output: EvolutionOutput = param(
        EvolutionOutput("runs/radiative_transfer.nc"),
        "output file, cadences and the full-rank reference at every record time",
    )


def _timed(problem: TransportParams, grid_params: EvolutionParams) -> TransportParams:
    """``problem`` with the final time of ``grid_params`` where that one sets it."""
    if grid_params.t_end is None:
        return problem
    return dataclasses.replace(problem, t_end=grid_params.t_end)


class RadiativeTransfer(Evolution):
    """A transport problem in the P_N moments, against the full-rank solution."""

    config = RadiativeTransferRun
    presets = PRESETS
    preset_table = "problem"

    def build(self, cfg: RadiativeTransferRun, executor: Executor) -> Setup:
        """The operator on the tree of ``cfg.tree``, the mass functional, the time grid."""
        params = _timed(cfg.problem, cfg.time)
        check_problem(params)
        h, n_steps = cfg.time.grid(time_step(params)[0], params.t_end, table="time")
        op = transport_operator(params)
        weights = mass_weights(params)
        return mass_setup(
            cfg.solver, build_tree(op.dims, cfg.tree), op, initial_moments(params), weights,
            h=h, n_steps=n_steps, executor=executor, extra={"params": params, "iso": weights[-1]},
        )  # fmt: skip

    def layout(self, cfg: RadiativeTransferRun, setup: Setup) -> Layout:
        """Cell centres and edges; density, mass, ranks, step data, reference."""
        params = setup.extra["params"]
        space = space_names(params)
        series = [
            Var("density", space, long_name="density int psi dOmega"),
            Var("mass", long_name="mass int rho dx"),
            *STEP_SERIES,
        ]
        if cfg.output.reference:
            series += [
                Var("density_reference", space, long_name="full-rank density"),
                Var("error_density", long_name="relative L2 error of the density"),
                Var("mass_reference", long_name="full-rank mass"),
            ]
        centres = grid(params).centres
        coords: dict[str, Any] = {name: (centres, f"cell centre ({name})") for name in space}
        coords["edge"] = (np.asarray(setup.tree.edges), "tree edge (its child node)")
        attrs = {"case": params.case, "integrator": cfg.solver.integrator}
        return Layout("time", series, coords=coords, attrs=attrs)

    def prepare(self, cfg: RadiativeTransferRun, setup: Setup, first: int) -> dict[int, Any]:
        """Step -> full-rank (density, mass) at the record steps from ``first`` on."""
        if not cfg.output.reference:
            return {}
        steps = [k for k in record_steps(setup.n_steps, cfg.output.every) if k >= first]
        if not steps:
            return {}
        start = time.perf_counter()
        times = np.asarray(steps, dtype=float) * setup.h
        reference = full_rank_reference(setup.extra["params"], times)
        logger.info(
            "full-rank reference at %d times in %.1f s", len(steps), time.perf_counter() - start
        )
        return dict(zip(steps, reference, strict=True))

    def observe(
        self, cfg: RadiativeTransferRun, setup: Setup, y: TTN, step: int, info: StepInfo | None
    ) -> dict[str, Any]:
        """Density and mass, and the reference with the relative error of the density."""
        rho = tree_density(y, setup.extra["iso"])
        values: dict[str, Any] = {"density": rho, "mass": setup.monitor(y)}
        if step in setup.reference:
            rho_ref, mass_ref = setup.reference[step]
            error = np.linalg.norm(rho - rho_ref) / np.linalg.norm(rho_ref)
            values.update(density_reference=rho_ref, error_density=error, mass_reference=mass_ref)
        return values

    def describe(self, cfg: RadiativeTransferRun, n_ranks: int) -> str:
        """Case, grid, integrator and tolerances, final time."""
        p, s = _timed(cfg.problem, cfg.time), cfg.solver
        return (
            f"{p.case}, {p.cells} cells, P_{p.degree}, {cfg.tree} tree, {s.integrator} "
            f"(atol={s.atol}, rtol={s.rtol}), T={p.t_end:g} on {n_ranks} rank(s)"
        )

    plots = staticmethod(plots)


DRIVER = Driver("radiative_transfer", __doc__, RadiativeTransfer())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
