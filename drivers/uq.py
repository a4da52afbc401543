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
``--set problem.KEY=VALUE`` then change single values. ``solver`` is the BUG integrator
(:class:`solvers.bug.BUGParams`), ``time`` the time grid (by default the CFL step and final
time of ``problem.transport``) and the blow-up bound on the expected mass.

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

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from analysis.uq import plots
from drivers._base import Layout, Var
from drivers._cli import Driver
from drivers._evolution import STEP_SERIES, Evolution, EvolutionOutput, Setup, mass_setup
from problems.radiative_transfer import check_problem, grid, space_names, time_step
from problems.uq import (
    UQParams,
    density_statistics,
    initial_vectors,
    reference_statistics,
    uq_mass_weights,
    uq_operator,
    uq_tree,
)
from solvers.bug import BUGParams, StepInfo
from solvers.evolution import EvolutionParams
from tensorsim.config import Params, param
from tensorsim.parallel import Executor
from tensorsim.ttn import TTN

if TYPE_CHECKING:
    from tensorsim.io import Writer

__all__ = ["PRESETS", "UQ", "UQOutput", "UQRun", "main"]

logger = logging.getLogger("drivers.uq")

#: ``preset`` -> the ``problem`` defaults it stands for.
PRESETS = {"section_5_2": UQParams, "section_5_3": UQParams.section_5_3}


@dataclass(frozen=True)
class UQOutput(EvolutionOutput):
    """Output file, cadences and the final-time collocation reference."""

    path: str = param("runs/uq.nc", "output file")
    reference: bool = param(False, "full-rank collocation reference at the final time")
    reference_nodes: int = param(
        32, "full-rank solves of the reference (Chebyshev in sigma_s); 0: one per point", ge=0
    )


@dataclass(frozen=True)
class UQRun(Params):
    """Configuration of ``python -m drivers.uq``."""

    preset: Literal["section_5_2", "section_5_3"] = param(
        "section_5_2", "defaults of the problem table: section_5_2 or section_5_3"
    )
    problem: UQParams = param(UQParams(), "uncertain problem and collocation grid")
    solver: BUGParams = param(
        BUGParams(
            integrator="augmented_bug", atol=None, rtol=1e-4, max_rank=50, min_rank=2,
            initial_rank=10, substep="rk4", conserve=True,
        ),
        "BUG integrator, truncation, local solver, mass-conservative truncation",
    )  # fmt: skip
    time: EvolutionParams = param(
        EvolutionParams(max_growth=1e-2),
        "step and final time (none: the problem's) and the blow-up bound on the mass",
    )
    output: UQOutput = param(UQOutput(), "output file, cadences and reference")


def _timed(params: UQParams, grid_params: EvolutionParams) -> UQParams:
    """``params`` with the final time of ``grid_params`` where that one sets it."""
    if grid_params.t_end is None:
        return params
    transport = dataclasses.replace(params.transport, t_end=grid_params.t_end)
    return dataclasses.replace(params, transport=transport)


def _relative(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


class UQ(Evolution):
    """The collocated uncertain problem; its statistics against full-rank collocation."""

    config = UQRun
    presets = PRESETS
    preset_table = "problem"

    def build(self, cfg: UQRun, executor: Executor) -> Setup:
        """The operator on :func:`problems.uq.uq_tree`, the expected-mass functional."""
        params = _timed(cfg.problem, cfg.time)
        check_problem(params.transport, "problem.transport")
        h0, _ = time_step(params.transport)
        h, n_steps = cfg.time.grid(h0, params.transport.t_end, table="time")
        return mass_setup(
            cfg.solver, uq_tree(params), uq_operator(params), initial_vectors(params),
            uq_mass_weights(params), h=h, n_steps=n_steps, executor=executor,
            extra={"params": params, "map": executor.map},
        )  # fmt: skip

    def layout(self, cfg: UQRun, setup: Setup) -> Layout:
        """Cell centres and edges; mean and variance of the density, mass, step data."""
        params = setup.extra["params"]
        space = space_names(params.transport)
        series = [
            Var("density_mean", space, long_name="expected density E[rho]"),
            Var("density_var", space, long_name="variance of the density Var[rho]"),
            Var("mass", long_name="expected mass E[int rho dx]"),
            *STEP_SERIES,
        ]
        centres = grid(params.transport).centres
        coords: dict[str, Any] = {name: (centres, f"cell centre ({name})") for name in space}
        coords["edge"] = (np.asarray(setup.tree.edges), "tree edge (its child node)")
        attrs = {"case": params.transport.case, "integrator": cfg.solver.integrator}
        return Layout("time", series, coords=coords, attrs=attrs)

    def observe(
        self, cfg: UQRun, setup: Setup, y: TTN, step: int, info: StepInfo | None
    ) -> dict[str, Any]:
        """Mean and variance of the density over the parameters, the expected mass."""
        mean, var = density_statistics(setup.extra["params"], y)
        return {"density_mean": mean, "density_var": var, "mass": setup.monitor(y)}

    def finish(self, cfg: UQRun, setup: Setup, y: TTN, out: Writer) -> None:
        """The collocation reference and the errors at the final time (all ranks)."""
        if not cfg.output.reference:
            return
        params = setup.extra["params"]
        clock = time.perf_counter()
        nodes = cfg.output.reference_nodes
        ref_mean, ref_var = reference_statistics(params, nodes, setup.extra["map"])
        mean, var = density_statistics(params, y)
        err_mean, err_var = _relative(mean, ref_mean), _relative(var, ref_var)
        points = params.nodes_xi * params.nodes_eta
        logger.info(
            "collocation reference (%d points, %d solves) in %.1f s: relative error of the "
            "mean %.2e, of the variance %.2e",
            points,
            nodes if 0 < nodes < points else points,
            time.perf_counter() - clock,
            err_mean,
            err_var,
        )
        space = space_names(params.transport)
        out.set_variable(
            "density_mean_reference", space, ref_mean, long_name="full-rank E[rho] at t_end"
        )
        out.set_variable(
            "density_var_reference", space, ref_var, long_name="full-rank Var[rho] at t_end"
        )
        out.set_variable("error_mean", (), err_mean, long_name="relative L2 error of E[rho]")
        out.set_variable("error_var", (), err_var, long_name="relative L2 error of Var[rho]")

    def describe(self, cfg: UQRun, n_ranks: int) -> str:
        """Case, grid, collocation points, integrator and tolerances, final time."""
        p, s = _timed(cfg.problem, cfg.time), cfg.solver
        t = p.transport
        return (
            f"{t.case}, {t.cells} cells, P_{t.degree}, {p.nodes_xi} x {p.nodes_eta} "
            f"collocation points, {s.integrator} (atol={s.atol}, rtol={s.rtol}), "
            f"T={t.t_end:g} on {n_ranks} rank(s)"
        )

    plots = staticmethod(plots)


DRIVER = Driver("uq", __doc__, UQ())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
