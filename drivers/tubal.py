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

- ``dynamics``: n = 10, k = 4, r* = 2, m = 254 raw Gaussian measurements, R = 100,
  alpha = 1e-7, step 1e-5, 10 000 iterations, one trial.
- ``overparam``: r* = 3, m = 285 symmetrized measurements, R in {10, 50, 100, 200, 400},
  alpha = 1e-7, 4 000 iterations, 15 trials.
- ``init_scale``: as ``overparam`` with R = 200 and alpha in {1e-2, 1e-3, ..., 1e-8}, 20
  trials.
- ``underdetermined``: r* = 1, m = 120 symmetrized measurements, fewer than the 210 degrees of
  freedom of a symmetric 10 x 10 x 4 tensor: only the low-rank bias of a small initialization
  singles out ``X*``. R = 50, alpha in {1e-6, 1e-4, 1e-2, 1}, 8 000 iterations, 5 trials.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drivers._cli import refuse_restart, run_command_line
from problems.tubal_sensing import (
    TubalSensingParams,
    initial_factor,
    make_problem,
    symmetric_dof,
)
from solvers.tubal_gd import GDMonitor, tubal_gd
from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError, Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = [
    "GUIDE_SLOPE",
    "PRESETS",
    "Experiment",
    "GDParams",
    "SweepParams",
    "TubalRun",
    "log_log_slope",
    "main",
    "plot",
    "run",
    "run_trial",
]

logger = logging.getLogger("drivers.tubal")

#: The paper's guide line for the final error against alpha: ``c alpha^(21/16)``.
GUIDE_SLOPE = 21 / 16

#: Monitored scalars stored per (setting, trial, iteration): name -> long name.
MONITORS = {
    "loss": "f(U_t) = ||A(X_t) - y||^2 / 2",
    "train_error": "||A(X_t) - y|| / ||y||",
    "test_error": "||X_t - X*||_F / ||X*||_F",
    "tube_error": "relative error of the r*-th singular tube of U_t",
    "angle_power": "sine of the largest tubal principal angle to the top-r* subspace of A*(y)",
    "angle_truth": "sine of the largest tubal principal angle to the subspace of X*",
    "tubal_rank": "number of singular tubes of U_t above rank_rtol times the largest",
}


@dataclass(frozen=True)
class GDParams(Params):
    """The factorization and gradient descent.

    Attributes
    ----------
    width
        Width ``R`` of the factor ``U`` (``n x R x k``), at least ``r*``.
    alpha
        Initialization scale: ``U_0 = alpha / sqrt(R) G``.
    step
        Step size ``mu``.
    iterations
        Number of gradient steps.
    log_every
        Record the monitors every this many iterations (and at the last).
    rank_rtol
        Relative threshold of the numerical tubal rank.
    """

    width: int = param(100, "width R of the factor U (n x R x k)", ge=1)
    alpha: float = param(1e-7, "initialization scale: U_0 = alpha / sqrt(R) G", gt=0.0)
    step: float = param(1e-5, "step size mu", gt=0.0)
    iterations: int = param(10000, "number of gradient steps", ge=0)
    log_every: int = param(10, "record the monitors every this many iterations", ge=1)
    rank_rtol: float = param(1e-2, "relative threshold of the tubal rank", gt=0.0, lt=1.0)


@dataclass(frozen=True)
class SweepParams(Params):
    """The settings and trials.

    Attributes
    ----------
    widths
        Widths ``R`` to sweep; empty: ``solver.width`` only.
    alphas
        Initialization scales to sweep; empty: ``solver.alpha`` only.
    trials
        Trials per setting, each from its own ``U_0``.
    redraw_problem
        Draw a new ground truth and new sensing tensors for every trial.
    seed
        Base seed of all draws.
    """

    widths: tuple[int, ...] = param((), "widths R to sweep (empty: solver.width)", ge=1)
    alphas: tuple[float, ...] = param((), "scales alpha to sweep (empty: solver.alpha)", gt=0.0)
    trials: int = param(1, "trials per setting", ge=1)
    redraw_problem: bool = param(False, "new ground truth and sensing tensors per trial")
    seed: int = param(0, "base seed", ge=0)


@dataclass(frozen=True)
class Experiment(Params):
    """One experiment: the problem, the solver and the sweep.

    Attributes
    ----------
    problem
        The sensing problem.
    solver
        Gradient descent (its ``width`` and ``alpha`` unless the sweep lists them).
    sweep
        Settings and trials.
    """

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


def _dynamics() -> Experiment:
    return Experiment()


def _overparam() -> Experiment:
    return Experiment(
        problem=TubalSensingParams(rank=3, m=285, symmetric=True),
        solver=GDParams(width=200, iterations=4000, log_every=20),
        sweep=SweepParams(widths=(10, 50, 100, 200, 400), trials=15),
    )


def _init_scale() -> Experiment:
    return dataclasses.replace(
        _overparam(),
        sweep=SweepParams(alphas=tuple(10.0**-e for e in range(2, 9)), trials=20),
    )


def _underdetermined() -> Experiment:
    return Experiment(
        problem=TubalSensingParams(rank=1, m=120, symmetric=True),
        solver=GDParams(width=50, iterations=8000, log_every=20),
        sweep=SweepParams(alphas=(1e-6, 1e-4, 1e-2, 1.0), trials=5),
    )


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {
    "dynamics": _dynamics,
    "overparam": _overparam,
    "init_scale": _init_scale,
    "underdetermined": _underdetermined,
}


@dataclass(frozen=True)
class TubalOutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output netCDF4/HDF5 file (its directory is created).
    """

    path: str = param("runs/tubal.nc", "output file")


@dataclass(frozen=True)
class TubalRun(Params):
    """Configuration of ``python -m drivers.tubal``.

    Attributes
    ----------
    preset
        Defaults of ``experiment``: ``"dynamics"``, ``"overparam"``, ``"init_scale"`` or
        ``"underdetermined"``.
    experiment
        Problem, solver and sweep.
    output
        The output file.
    """

    preset: Literal["dynamics", "overparam", "init_scale", "underdetermined"] = param(
        "dynamics", "defaults of the experiment table"
    )
    experiment: Experiment = param(Experiment(), "problem, solver and sweep")
    output: TubalOutputParams = param(TubalOutputParams(), "output file")


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
        u0,
        problem.matrix,
        problem.y,
        rank=p.rank,
        step=solver.step,
        iterations=solver.iterations,
        truth=problem.truth.tensor,
        log_every=solver.log_every,
        rank_rtol=solver.rank_rtol,
    )
    out: dict[str, Any] = {
        name: _series(result.history, name) for name in ("iteration", *MONITORS)
    }
    norms = np.full((len(result.history), p.n), np.nan)
    for i, monitor in enumerate(result.history):
        values = to_numpy(monitor.tube_norms)
        norms[i, : values.shape[0]] = values
    out["tube_norms"] = norms
    out["wall_time"] = time.perf_counter() - start
    logger.info(
        "setting %d (R=%d, alpha=%.0e) trial %d: test error %.2e, angle to X* %.1e, "
        "tubal rank %d, %.1f s",
        setting,
        width,
        alpha,
        trial,
        out["test_error"][-1],
        out["angle_truth"][-1],
        out["tubal_rank"][-1],
        out["wall_time"],
    )
    return out


def _series(history: Sequence[GDMonitor], name: str) -> np.ndarray:
    dtype = np.int64 if name in ("iteration", "tubal_rank") else np.float64
    return np.asarray([getattr(m, name) for m in history], dtype=dtype)


def _cost(experiment: Experiment, width: int) -> float:
    p = experiment.problem
    return experiment.solver.iterations * p.n * p.n * (p.m * p.k + (p.k // 2 + 1) * width)


def log_log_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log10 y`` against ``log10 x`` (NaN for fewer than 2 points)."""
    lx, ly = np.log10(np.asarray(x, dtype=float)), np.log10(np.asarray(y, dtype=float))
    if lx.size < 2 or np.ptp(lx) == 0:
        return math.nan
    return float(np.polyfit(lx, ly, 1)[0])


def _write(path: Path, cfg: TubalRun, comm: Any, results: list[dict[str, Any]]) -> None:
    from tensorsim.io import Writer

    experiment = cfg.experiment
    p = experiment.problem
    settings = experiment.settings()
    trials = experiment.sweep.trials
    attrs = {"preset": cfg.preset, "symmetric_dof": symmetric_dof(p.n, p.k)}
    with Writer(
        path, record_dim="setting", comm=comm, config=config_to_toml(cfg), attrs=attrs
    ) as out:
        out.set_coordinate("trial", np.arange(trials))
        out.set_coordinate(
            "iteration",
            results[0]["iteration"],
            long_name="gradient descent iteration t",
        )
        out.set_coordinate("tube", np.arange(1, p.n + 1), long_name="index of a singular tube")
        out.define_series("width", dtype="int64", long_name="width R of the factor")
        out.define_series("alpha", long_name="initialization scale")
        for name, long_name in MONITORS.items():
            dtype = "int64" if name == "tubal_rank" else "float64"
            out.define_series(name, ("trial", "iteration"), dtype=dtype, long_name=long_name)
        out.define_series(
            "tube_norms",
            ("trial", "iteration", "tube"),
            long_name="Frobenius norms of the singular tubes of U_t (NaN beyond min(n, R))",
        )
        out.define_series("wall_time", ("trial",), units="s", long_name="time of the trial")
        for s, (width, alpha) in enumerate(settings):
            mine = results[s * trials : (s + 1) * trials]
            values = {
                name: np.stack([r[name] for r in mine]) for name in (*MONITORS, "tube_norms")
            }
            wall = np.asarray([r["wall_time"] for r in mine])
            out.append(s, width=width, alpha=alpha, wall_time=wall, **values)


def run(
    cfg: TubalRun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Run every (setting, trial) pair over the ranks and write the file; return a summary."""
    refuse_restart("drivers.tubal", restart, max_steps, "experiment.solver.iterations")
    experiment = cfg.experiment
    settings = experiment.settings()
    trials = experiment.sweep.trials
    tasks = [(s, t) for s in range(len(settings)) for t in range(trials)]
    costs = [_cost(experiment, settings[s][0]) for s, _ in tasks]
    executor = Executor(comm)
    start = time.perf_counter()
    results = executor.map(lambda task: run_trial(experiment, *task), tasks, costs=costs)
    path = Path(cfg.output.path)
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, cfg, comm, results)
    final = np.asarray([r["test_error"][-1] for r in results]).reshape(len(settings), trials)
    alphas = [a for _, a in settings]
    slope = log_log_slope(alphas, final.mean(axis=1)) if len(set(alphas)) > 1 else math.nan
    return {
        "path": str(path),
        "settings": settings,
        "final_test_error": final,
        "alpha_slope": slope,
        "wall_time": time.perf_counter() - start,
        "busy_time": executor.last_timings,
    }


def _mean_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def _setting_label(ds: Any, s: int) -> str:
    return f"R={int(ds['width'][s])}, alpha={float(ds['alpha'][s]):.0e}"


def _plot_errors(ds: Any, base: Path, plt: Any) -> Path:
    it = ds["iteration"].values
    panels = [
        ("test_error", "test error ||X_t - X*|| / ||X*||"),
        ("train_error", "train error ||A(X_t) - y|| / ||y||"),
        ("tube_error", "error of the r*-th singular tube"),
        ("angle_truth", "sin angle to X* (solid), to A*(y) (dashed)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True, constrained_layout=True)
    for ax, (name, title) in zip(axes.flat, panels, strict=True):
        for s in range(ds.sizes["setting"]):
            mean, low, high = _mean_band(ds[name][s].values)
            (line,) = ax.semilogy(it, mean, label=_setting_label(ds, s))
            ax.fill_between(it, low, high, color=line.get_color(), alpha=0.2, lw=0)
            if name == "angle_truth":
                ax.semilogy(
                    it, ds["angle_power"][s].values.mean(axis=0), "--", color=line.get_color()
                )
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("iteration t")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle("mean over trials (band: min to max)")
    out = base.with_name(base.name + "_errors.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _plot_alpha(ds: Any, base: Path, plt: Any) -> Path:
    alpha = ds["alpha"].values
    fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
    log_alpha = np.log10(alpha)
    for name, marker in (("test_error", "o"), ("train_error", "s")):
        final = ds[name].isel(iteration=-1).values  # setting x trial
        mean = final.mean(axis=1)
        err = [mean - final.min(axis=1), final.max(axis=1) - mean]
        bars = ax.errorbar(alpha, mean, yerr=err, fmt=marker, capsize=3, label=f"final {name}")
        fit = np.polyfit(log_alpha, np.log10(mean), 1)
        ax.loglog(
            alpha,
            10 ** np.polyval(fit, log_alpha),
            "-",
            color=bars[0].get_color(),
            lw=1,
            label=f"least-squares fit, slope {log_log_slope(alpha, mean):.2f}",
        )
        if name == "test_error":  # the paper's guide slope, through the middle of the fit
            middle = log_alpha.mean()
            guide = np.polyval(fit, middle) + GUIDE_SLOPE * (log_alpha - middle)
            ax.loglog(alpha, 10**guide, "k:", label="slope 21/16 (the paper's guide)")
    ax.set_xlabel("initialization scale alpha")
    ax.set_ylabel("relative error at the last iteration")
    ax.set_title(f"mean over {ds.sizes['trial']} trials (bars: min to max)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    out = base.with_name(base.name + "_alpha.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _plot_rank(ds: Any, base: Path, plt: Any) -> Path:
    it = ds["iteration"].values
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    shown = sorted({0, ds.sizes["setting"] - 1})
    for s in range(ds.sizes["setting"]):
        (line,) = left.plot(
            it, ds["tubal_rank"][s].values.mean(axis=0), label=_setting_label(ds, s)
        )
        if s in shown:
            style = "-" if s == 0 else "--"
            right.semilogy(it, ds["tube_norms"][s, 0].values, style, color=line.get_color(), lw=1)
    left.set_xlabel("iteration t")
    left.set_ylabel("numerical tubal rank (mean over trials)")
    left.legend(fontsize="small")
    right.set_xlabel("iteration t")
    right.set_ylabel("norms of the singular tubes of U_t")
    right.set_title(
        "trial 0: "
        + " / ".join(f"{'solid' if s == 0 else 'dashed'} {_setting_label(ds, s)}" for s in shown),
        fontsize="small",
    )
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    out = base.with_name(base.name + "_rank.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot(path: str) -> list[Path]:
    """Write the error curves, the error-vs-alpha plot (if alpha varies) and the rank plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    outputs = [_plot_errors(ds, base, plt)]
    if np.unique(ds["alpha"].values).size > 1:
        outputs.append(_plot_alpha(ds, base, plt))
    outputs.append(_plot_rank(ds, base, plt))
    return outputs


def _describe(cfg: TubalRun, n_ranks: int) -> str:
    e = cfg.experiment
    p = e.problem
    return (
        f"{cfg.preset}: n={p.n}, k={p.k}, r*={p.rank}, m={p.m} "
        f"({'symmetrized' if p.symmetric else 'raw'} Gaussian; {symmetric_dof(p.n, p.k)} dof), "
        f"{len(e.settings())} setting(s) x {e.sweep.trials} trial(s), "
        f"{e.solver.iterations} iterations of step {e.solver.step:g} on {n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    means = summary["final_test_error"].mean(axis=1)
    finals = ", ".join(
        f"R={w} alpha={a:.0e}: {e:.2e}"
        for (w, a), e in zip(summary["settings"], means, strict=True)
    )
    slope = summary["alpha_slope"]
    if math.isfinite(slope):
        finals += f"; log-log slope in alpha {slope:.2f} (guide 21/16 = {GUIDE_SLOPE:.3f})"
    busy = ", ".join(f"{t:.1f}" for t in summary["busy_time"])
    return (
        f"final test error (mean over trials) {finals}; {summary['wall_time']:.1f} s "
        f"(busy time per rank {busy} s); wrote {summary['path']}"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=TubalRun,
        prog="python -m drivers.tubal",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            TubalRun, args.config, args.set, PRESETS, table="experiment"
        ),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=_summarize,
        logger=logger,
    )


if __name__ == "__main__":
    main()
