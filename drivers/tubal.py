r"""Tubal tensor factorization by gradient descent: the experiments of arXiv 2410.16247.

Gradient descent on ``U * U^T`` (``U`` of shape ``n x R x k``) from the small initialization
``U_0 = (alpha / sqrt(R)) G`` fits the Gaussian measurements of a low-tubal-rank symmetric
PSD tensor (:mod:`problems.tubal_sensing`, :mod:`solvers.tubal_gd`). The top-level key
``preset`` picks one of the paper's experiments (the defaults of the ``experiment`` table)::

    python -m drivers.tubal                                     # dynamics (Fig. 2)
    mpirun -n 4 python -m drivers.tubal --set preset=overparam  # sweep over R (Fig. 3)
    mpirun -n 4 python -m drivers.tubal --set preset=init_scale # sweep over alpha (Fig. 4)
    mpirun -n 4 python -m drivers.tubal --set preset=underdetermined
    python -m drivers.tubal --set preset=init_scale --set experiment.sweep.trials=3 \\
        --set experiment.sweep.redraw_problem=true --set output.path=runs/alpha.nc
    python -m drivers.tubal plot runs/tubal.nc                  # PNG plots next to the file

``underdetermined`` has fewer measurements (m = 120) than the 210 degrees of freedom of a
symmetric 10 x 10 x 4 tensor: only the low-rank bias of a small initialization singles out
``X*``.

A setting is one (R, alpha) pair (``experiment.sweep.widths`` x ``experiment.sweep.alphas``;
an empty list means the ``experiment.solver`` value). Every trial draws its own ``U_0``
(seeded by ``(seed, trial)``, so the settings of one trial share ``G``); the ground truth and
the sensing tensors are drawn once (seed ``(seed,)``), or per trial with
``experiment.sweep.redraw_problem = true``. The (setting, trial) pairs are spread over the
MPI ranks; the result does not depend on the number of ranks. Rank 0 writes one
netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``) with dimensions
``(setting, trial, iteration)`` (and ``tube``): ``width`` and ``alpha`` per setting, the
monitors ``loss``, ``train_error``, ``test_error``, ``tube_error``, ``angle_power``,
``angle_truth``, ``tubal_rank``, ``tube_norms`` (see :class:`solvers.tubal_gd.GDMonitor`)
and ``wall_time`` per trial.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from analysis.tubal import GUIDE_SLOPE, log_log_slope, plots
from drivers._base import Layout, OutputParams, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems.tubal_sensing import (
    TubalSensingParams,
    initial_factor,
    make_problem,
    symmetric_dof,
)
from solvers.tubal_gd import MONITORS, GDParams, tubal_gd
from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError, Params, param

__all__ = [
    "PRESETS",
    "Experiment",
    "SweepParams",
    "TubalRun",
    "TubalSweep",
    "main",
    "run_trial",
]

logger = logging.getLogger("drivers.tubal")


@dataclass(frozen=True)
class SweepParams(Params):
    """The settings and trials."""

    widths: tuple[int, ...] = param((), "widths R to sweep (empty: solver.width)", ge=1)
    alphas: tuple[float, ...] = param((), "scales alpha to sweep (empty: solver.alpha)", gt=0.0)
    trials: int = param(1, "trials per setting", ge=1)
    redraw_problem: bool = param(False, "new ground truth and sensing tensors per trial")
    seed: int = param(0, "base seed", ge=0)


@dataclass(frozen=True)
class Experiment(Params):
    """One experiment: the problem, the solver and the sweep."""

    problem: TubalSensingParams = param(TubalSensingParams(), "the sensing problem")
    solver: GDParams = param(GDParams(), "factorization and gradient descent")
    sweep: SweepParams = param(SweepParams(), "settings and trials")

    def __post_init__(self) -> None:
        super().__post_init__()
        widths = self.sweep.widths or (self.solver.width,)
        if min(widths) < self.problem.rank:
            key = "sweep.widths" if self.sweep.widths else "solver.width"
            raise ConfigError(
                f"config key {key!r}: the width R must be at least the tubal rank "
                f"r* = {self.problem.rank}, got {min(widths)}"
            )

    def settings(self) -> list[tuple[int, float]]:
        """The ``(width, alpha)`` pairs, widths outermost."""
        widths = self.sweep.widths or (self.solver.width,)
        alphas = self.sweep.alphas or (self.solver.alpha,)
        return list(itertools.product(widths, alphas))


def _overparam() -> Experiment:
    return Experiment(
        problem=TubalSensingParams(rank=3, m=285, symmetric=True),
        solver=GDParams(width=200, iterations=4000, log_every=20),
        sweep=SweepParams(widths=(10, 50, 100, 200, 400), trials=15),
    )


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {
    "dynamics": Experiment,
    "overparam": _overparam,
    "init_scale": lambda: dataclasses.replace(
        _overparam(),
        sweep=SweepParams(alphas=tuple(10.0**-e for e in range(2, 9)), trials=20),
    ),
    "underdetermined": lambda: Experiment(
        problem=TubalSensingParams(rank=1, m=120, symmetric=True),
        solver=GDParams(width=50, iterations=8000, log_every=20),
        sweep=SweepParams(alphas=(1e-6, 1e-4, 1e-2, 1.0), trials=5),
    ),
}


@dataclass(frozen=True)
class TubalRun(Params):
    """Configuration of ``python -m drivers.tubal``."""

    preset: Literal["dynamics", "overparam", "init_scale", "underdetermined"] = param(
        "dynamics", "defaults of the experiment table"
    )
    experiment: Experiment = param(Experiment(), "problem, solver and sweep")
    output: OutputParams = param(OutputParams("runs/tubal.nc"), "output file")


def run_trial(experiment: Experiment, setting: int, trial: int) -> dict[str, Any]:
    """Run one (setting, trial) pair; return its monitors as NumPy arrays.

    Parameters
    ----------
    experiment
        The experiment.
    setting
        Index into :meth:`Experiment.settings`.
    trial
        Trial number.

    Returns
    -------
    dict
        ``iteration`` (the logged iterations) and one array over them per name of
        :data:`MONITORS`, ``tube_norms`` (iterations x n, NaN-padded beyond ``min(n, R)``)
        and ``wall_time``.
    """
    p, solver, sweep = experiment.problem, experiment.solver, experiment.sweep
    width, alpha = experiment.settings()[setting]
    start = time.perf_counter()
    seed = [sweep.seed, 0, trial] if sweep.redraw_problem else [sweep.seed, 0]
    problem = make_problem(p, np.random.default_rng(seed))
    u0 = initial_factor(
        p.n, width, p.k, alpha=alpha, rng=np.random.default_rng([sweep.seed, 1, trial])
    )
    result = tubal_gd(
        u0, problem.matrix, problem.y, rank=p.rank, step=solver.step,
        iterations=solver.iterations, truth=problem.truth.tensor,
        log_every=solver.log_every, rank_rtol=solver.rank_rtol,
    )  # fmt: skip
    out: dict[str, Any] = {}
    for name in ("iteration", *MONITORS):
        dtype = np.int64 if name in ("iteration", "tubal_rank") else np.float64
        out[name] = np.asarray([getattr(m, name) for m in result.history], dtype=dtype)
    norms = np.full((len(result.history), p.n), np.nan)
    for i, monitor in enumerate(result.history):
        values = to_numpy(monitor.tube_norms)
        norms[i, : values.shape[0]] = values
    out["tube_norms"] = norms
    out["wall_time"] = time.perf_counter() - start
    logger.info(
        "setting %d (R=%d, alpha=%.0e) trial %d: test error %.2e, angle to X* %.1e, "
        "tubal rank %d, %.1f s",
        *(setting, width, alpha, trial, out["test_error"][-1], out["angle_truth"][-1]),
        *(out["tubal_rank"][-1], out["wall_time"]),
    )
    return out


class TubalSweep(Sweep):
    """The (setting, trial) pairs of one experiment; one record per setting."""

    config = TubalRun
    presets = PRESETS
    length_key = "experiment.solver.iterations"

    def cases(self, run: SweepRun) -> list[tuple[int, int]]:
        """Every (setting, trial) pair."""
        e = run.cfg.experiment
        return [(s, t) for s in range(len(e.settings())) for t in range(e.sweep.trials)]

    def cost(self, run: SweepRun, case: tuple[int, int]) -> float:
        """Flops of the iterations: sensing map and its adjoint, plus the t-products."""
        e = run.cfg.experiment
        p, width = e.problem, e.settings()[case[0]][0]
        return e.solver.iterations * p.n * p.n * (p.m * p.k + (p.k // 2 + 1) * width)

    def run_case(self, run: SweepRun, case: tuple[int, int]) -> dict[str, Any]:
        """One trial of one setting (:func:`run_trial`)."""
        return run_trial(run.cfg.experiment, *case)

    def layout(self, run: SweepRun) -> Layout:
        """Dimensions (setting, trial, iteration, tube); the monitors per trial."""
        cfg = run.cfg
        p = cfg.experiment.problem
        series = [
            Var("width", dtype="int64", long_name="width R of the factor"),
            Var("alpha", long_name="initialization scale"),
            *(
                Var(name, ("trial", "iteration"), "int64" if name == "tubal_rank" else "float64",
                    long_name=long_name)
                for name, long_name in MONITORS.items()
            ),
            Var("tube_norms", ("trial", "iteration", "tube"),
                long_name="Frobenius norms of the singular tubes of U_t (NaN beyond min(n, R))"),
            Var("wall_time", ("trial",), units="s", long_name="time of the trial"),
        ]  # fmt: skip
        return Layout(
            "setting",
            series,
            coords={
                "trial": np.arange(cfg.experiment.sweep.trials),
                "iteration": (run.results[0]["iteration"], "gradient descent iteration t"),
                "tube": (np.arange(1, p.n + 1), "index of a singular tube"),
            },
            attrs={"preset": cfg.preset, "symmetric_dof": symmetric_dof(p.n, p.k)},
        )

    def records(self, run: SweepRun) -> list[dict]:
        """One record per setting: its trials stacked."""
        trials = run.cfg.experiment.sweep.trials
        out = []
        for s, (width, alpha) in enumerate(run.cfg.experiment.settings()):
            mine = run.results[s * trials : (s + 1) * trials]
            record = {
                name: np.stack([r[name] for r in mine]) for name in (*MONITORS, "tube_norms")
            }
            record.update(
                width=width, alpha=alpha, wall_time=np.asarray([r["wall_time"] for r in mine])
            )
            out.append(record)
        return out

    def finish(self, run: SweepRun) -> dict:
        """Final test errors (setting x trial) and their log-log slope in alpha."""
        settings = run.cfg.experiment.settings()
        final = np.asarray([r["test_error"][-1] for r in run.results]).reshape(len(settings), -1)
        alphas = [a for _, a in settings]
        slope = log_log_slope(alphas, final.mean(axis=1)) if len(set(alphas)) > 1 else math.nan
        return {"settings": settings, "final_test_error": final, "alpha_slope": slope}

    def describe(self, cfg: TubalRun, n_ranks: int) -> str:
        """Problem, settings and trials."""
        e = cfg.experiment
        p = e.problem
        return (
            f"{cfg.preset}: n={p.n}, k={p.k}, r*={p.rank}, m={p.m} "
            f"({'symmetrized' if p.symmetric else 'raw'} Gaussian; "
            f"{symmetric_dof(p.n, p.k)} dof), {len(e.settings())} setting(s) x "
            f"{e.sweep.trials} trial(s), {e.solver.iterations} iterations of step "
            f"{e.solver.step:g} on {n_ranks} rank(s)"
        )

    def report(self, summary: Mapping[str, Any]) -> str:
        """Final test error per setting and the slope in alpha."""
        means = summary["final_test_error"].mean(axis=1)
        finals = ", ".join(
            f"R={w} alpha={a:.0e}: {e:.2e}"
            for (w, a), e in zip(summary["settings"], means, strict=True)
        )
        slope = summary["alpha_slope"]
        if math.isfinite(slope):
            finals += f"; log-log slope in alpha {slope:.2f} (guide 21/16 = {GUIDE_SLOPE:.3f})"
        return f"final test error (mean over trials) {finals}"

    plots = staticmethod(plots)


DRIVER = Driver("tubal", __doc__, TubalSweep())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
