r"""Navier-Stokes neural operators (arXiv 2310.00120, 2010.08895): data, training, evaluation.

``generate`` draws Gaussian-random-field initial vorticities ``w0`` and solves the forced 2-D
vorticity equation on the unit torus to ``w(T)`` (:mod:`problems.navier_stokes`), spreading
the samples over the MPI ranks; rank 0 writes one netCDF4/HDF5 file of the pairs at every
stored resolution. ``train`` fits an FNO, TFNO or MG-TFNO (:mod:`solvers.tfno`) to the pairs,
data parallel over the MPI ranks, and writes a run file (per-epoch losses, final test errors
at the training and the finest stored resolution, checkpoint); ``evaluate`` tests a trained
run at every stored resolution; ``plot`` draws a dataset, a run or an evaluation::

    python -m drivers.navier_stokes generate                       # 1200 samples, 128 -> 64, 128
    mpirun -n 4 python -m drivers.navier_stokes generate --set data.samples=2000 \\
        --set data.viscosity=1e-4 --set data.path=runs/ns_1e-4.nc
    python -m drivers.navier_stokes generate --set preset=tiny     # 8 samples at 32: seconds
    python -m drivers.navier_stokes generate --help                # every option with its default
    python -m drivers.navier_stokes plot runs/navier_stokes.nc     # some input/output pairs
    mpirun -n 2 python -m drivers.navier_stokes train --set preset=tfno_tucker
    python -m drivers.navier_stokes train --restart runs/navier_stokes_tfno_tucker.nc
    python -m drivers.navier_stokes evaluate --set preset=tfno_tucker --set evaluate.plot=true
    python -m drivers.navier_stokes plot runs/navier_stokes_tfno_tucker.nc  # losses, predictions

For ``generate``, the top-level key ``preset`` picks the defaults of the ``data`` table
(:class:`problems.navier_stokes.DatasetParams`): ``"full"`` (nu = 1e-3, T = 10, dt = 0.02,
solved at 128 x 128, stored at 64 and 128, 1200 samples) or ``"tiny"`` (8 samples solved at
32 x 32 to T = 1, stored at 16 and 32, for tests). The ``generate`` table says how the data
are computed (batch size, array backend, device) and does not change them beyond round-off.

Samples are solved in batches of ``generate.batch`` consecutive indices; the batches are
spread over the ranks (:class:`tensorsim.parallel.Executor`) and sample ``s`` is seeded by
``(data.seed, s)``, so the file does not depend on the number of ranks. The file (layout in
:mod:`problems.navier_stokes`; read it with :func:`problems.navier_stokes.load_dataset` or
``xarray.open_dataset(path, engine="h5netcdf")``) is written under a temporary name and
renamed when complete, so ``data.path`` holds either the previous file or a finished one.

``train`` and ``evaluate`` need torch and have their own configuration,
:class:`drivers._navier_stokes_learning.LearningRun`, in which ``preset`` picks the defaults
of the ``model`` table (``fno``, ``tfno_tucker``, ``tfno_cp``, ``tfno_tt``, ``mg_tfno``) and
``data`` names the dataset and its split; that module documents them and the files.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from drivers._cli import Command, run_command_line
from problems.navier_stokes import (
    FORCING_FORMULA,
    SCHEME,
    DatasetParams,
    load_dataset,
    solve_samples,
    subsample,
    time_steps,
    variable_names,
)
from tensorsim._array_api import array_namespace, default_namespace, to_numpy
from tensorsim.config import Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = [
    "COMMANDS",
    "LEARNING",
    "PRESETS",
    "GenerateParams",
    "NavierStokesRun",
    "evaluate",
    "generate",
    "main",
    "plot",
    "train",
]

logger = logging.getLogger("drivers.navier_stokes")


def _tiny() -> DatasetParams:
    return DatasetParams(
        resolution=32,
        t_end=1.0,
        dt=0.05,
        samples=8,
        resolutions=(16, 32),
        path="runs/navier_stokes_tiny.nc",
    )


#: ``preset`` -> the ``data`` defaults it stands for.
PRESETS = {"full": DatasetParams, "tiny": _tiny}


@dataclass(frozen=True)
class GenerateParams(Params):
    """How ``generate`` computes the data (the data do not depend on it beyond round-off).

    Attributes
    ----------
    batch
        Samples solved together: one task of the executor, so also the unit of work spread
        over the MPI ranks.
    backend
        Array library of the solver: ``"numpy"``, ``"torch"`` or ``"cupy"`` (a GPU).
    device
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); numpy and cupy ignore it (cupy
        uses its current device).
    """

    batch: int = param(8, "samples solved together (one task of the MPI executor)", ge=1)
    backend: Literal["numpy", "torch", "cupy"] = param("numpy", "array library of the solver")
    device: str = param("cpu", "torch device (cpu, cuda, cuda:1); ignored by numpy and cupy")


@dataclass(frozen=True)
class NavierStokesRun(Params):
    """Configuration of ``python -m drivers.navier_stokes generate``.

    Attributes
    ----------
    preset
        Defaults of ``data``: ``"full"`` or ``"tiny"``.
    data
        The dataset: problem, samples, stored resolutions and file.
    generate
        How ``generate`` computes it.
    """

    preset: Literal["full", "tiny"] = param("full", "defaults of the data table: full or tiny")
    data: DatasetParams = param(
        DatasetParams(), "the dataset: problem, samples, resolutions, file"
    )
    generate: GenerateParams = param(GenerateParams(), "how generate computes the data")


def _namespace(opts: GenerateParams) -> tuple[ModuleType, Any]:
    """The array namespace and device of the chosen backend."""
    if opts.backend == "numpy":
        return default_namespace(), None
    if opts.backend == "torch":
        import torch

        dev = torch.device(opts.device)
        return array_namespace(torch.zeros(1, device=dev)), dev
    import cupy

    return array_namespace(cupy.zeros(1)), None


def _solve_batch(
    data: DatasetParams, indices: Sequence[int], xp: ModuleType, dev: Any
) -> dict[str, Any]:
    """Solve one batch; return its stored fields (float32 NumPy) and statistics."""
    start = time.perf_counter()
    w0, solution = solve_samples(data, indices, seed=data.seed, xp=xp, device=dev)
    fields = {}
    for n in data.resolutions:
        name_in, name_out, _, _ = variable_names(n)
        fields[name_in] = to_numpy(xp.astype(subsample(w0, n), xp.float32))
        fields[name_out] = to_numpy(xp.astype(subsample(solution.w, n), xp.float32))
    seconds = time.perf_counter() - start
    logger.info(
        "samples %d-%d of %d: %.3f s per sample, largest CFL number %.3f",
        indices[0],
        indices[-1],
        data.samples,
        seconds / len(indices),
        solution.max_cfl,
    )
    return {"indices": list(indices), "fields": fields, "max_cfl": solution.max_cfl}


def _attrs(data: DatasetParams, largest_cfl: float) -> dict[str, Any]:
    steps, dt = time_steps(data.t_end, data.dt)
    return {
        "viscosity": data.viscosity,
        "t_end": data.t_end,
        "dt": dt,
        "steps": steps,
        "forcing": FORCING_FORMULA,
        "forcing_amplitude": data.forcing,
        "solver_resolution": data.resolution,
        "resolutions": list(data.resolutions),
        "seed": data.seed,
        "alpha": data.alpha,
        "tau": data.tau,
        "scheme": SCHEME,
        "largest_cfl": largest_cfl,
    }


def _write(path: Path, cfg: NavierStokesRun, comm: Any, results: list[dict[str, Any]]) -> None:
    """Write the dataset under a temporary name on rank 0 and rename it to ``path``."""
    from tensorsim.io import Writer

    data = cfg.data
    largest = max(r["max_cfl"] for r in results)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    try:
        with Writer(
            partial,
            record_dim="sample",
            comm=comm,
            config=config_to_toml(cfg),
            attrs=_attrs(data, largest),
        ) as out:
            for n in data.resolutions:
                name_in, name_out, x, y = variable_names(n)
                grid = np.arange(n) / n
                out.set_coordinate(x, grid, long_name=f"grid point x on {n} x {n}")
                out.set_coordinate(y, grid, long_name=f"grid point y on {n} x {n}")
                out.define_series(
                    name_in, (x, y), dtype="float32", long_name="initial vorticity w0"
                )
                out.define_series(
                    name_out, (x, y), dtype="float32", long_name=f"vorticity w(T = {data.t_end:g})"
                )
            for result in results:
                for k, index in enumerate(result["indices"]):
                    out.append(index, **{name: v[k] for name, v in result["fields"].items()})
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def generate(cfg: NavierStokesRun, comm: Any) -> dict[str, Any]:
    """Solve every sample over the ranks and write the dataset; return a summary."""
    data, opts = cfg.data, cfg.generate
    xp, dev = _namespace(opts)
    starts = range(0, data.samples, opts.batch)
    batches = [tuple(range(s, min(s + opts.batch, data.samples))) for s in starts]
    executor = Executor(comm)
    start = time.perf_counter()
    results = executor.map(
        lambda b: _solve_batch(data, b, xp, dev), batches, costs=[len(b) for b in batches]
    )
    path = Path(data.path)
    if comm.rank == 0:
        _write(path, cfg, comm, results)
    busy = list(executor.last_timings)
    steps, dt = time_steps(data.t_end, data.dt)
    return {
        "path": str(path),
        "samples": data.samples,
        "steps": steps,
        "dt": dt,
        "largest_cfl": max(r["max_cfl"] for r in results),
        "wall_time": time.perf_counter() - start,
        "busy_time": busy,
        "seconds_per_sample": sum(busy) / data.samples,
    }


def plot(path: str) -> list[Path]:
    """Plot a dataset, a run file of ``train`` or an evaluation file, by what it holds.

    A run file gives its loss curves and predictions on test samples, an evaluation file
    the same for its run on its dataset (:func:`drivers._navier_stokes_learning.plot_run`),
    a dataset its first samples.
    """
    import xarray

    with xarray.open_dataset(path, engine="h5netcdf") as ds:
        names, attrs = set(ds.variables), dict(ds.attrs)
    if "train_loss" in names or ("test_l2" in names and "run" in attrs):
        from drivers._navier_stokes_learning import plot_run

        if "train_loss" in names:
            return plot_run(path)
        return plot_run(attrs["run"], attrs["dataset"], stem=Path(path).with_suffix(""))
    return _plot_dataset(path)


def _plot_dataset(path: str) -> list[Path]:
    """Plot the first (up to) four samples: ``w0`` and ``w(T)``, finest and coarsest stored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fine = load_dataset(path, samples=slice(0, 4))
    coarsest = min(fine.resolutions)
    columns = [
        (fine.inputs, f"w0 ({fine.grid.size}^2)"),
        (fine.outputs, f"w(T = {float(fine.attrs['t_end']):g}) ({fine.grid.size}^2)"),
    ]
    if coarsest != fine.grid.size:
        coarse = load_dataset(path, coarsest, samples=slice(0, 4))
        columns.append((coarse.outputs, f"w(T) subsampled ({coarsest}^2)"))
    rows = fine.inputs.shape[0]
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(3.2 * len(columns), 3.0 * rows), squeeze=False
    )
    for row in range(rows):
        for col, (values, title) in enumerate(columns):
            half = 0.5 / values.shape[-1]  # pixels centred on the grid points i / n
            extent = (-half, 1.0 - half, -half, 1.0 - half)
            ax = axes[row, col]
            field = values[row]
            limit = float(np.max(np.abs(field))) or 1.0
            image = ax.imshow(
                field.T, origin="lower", extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit
            )
            fig.colorbar(image, ax=ax, shrink=0.8)
            ax.set_title(f"sample {int(fine.samples[row])}: {title}", fontsize="small")
            ax.set_xlabel("x")
            ax.set_ylabel("y")
    fig.suptitle(
        f"nu = {float(fine.attrs['viscosity']):g}, solved at "
        f"{int(fine.attrs['solver_resolution'])}^2, dt = {float(fine.attrs['dt']):g}"
    )
    fig.tight_layout()
    out = Path(path).with_suffix("")
    out = out.with_name(out.name + "_samples.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [out]


def _describe_generate(cfg: NavierStokesRun, n_ranks: int) -> str:
    d, g = cfg.data, cfg.generate
    steps, dt = time_steps(d.t_end, d.dt)
    return (
        f"{d.samples} samples: nu={d.viscosity:g}, T={d.t_end:g}, dt={dt:g} ({steps} steps), "
        f"forcing amplitude {d.forcing:g}, solved at {d.resolution}^2, stored at "
        f"{', '.join(map(str, d.resolutions))}, seed {d.seed}; {g.backend}, batches of "
        f"{g.batch} on {n_ranks} rank(s)"
    )


def _summarize_generate(summary: dict[str, Any]) -> str:
    busy = ", ".join(f"{t:.1f}" for t in summary["busy_time"])
    return (
        f"{summary['samples']} samples in {summary['wall_time']:.1f} s "
        f"({summary['seconds_per_sample']:.3f} s per sample; busy time per rank {busy} s), "
        f"largest CFL number {summary['largest_cfl']:.3f}; wrote {summary['path']}"
    )


def train(
    cfg: Any, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Train a neural operator (:func:`drivers._navier_stokes_learning.train`)."""
    from drivers._navier_stokes_learning import train as run

    return run(cfg, comm, restart=restart, max_steps=max_steps)


def evaluate(cfg: Any, comm: Any) -> dict[str, Any]:
    """Test a trained run (:func:`drivers._navier_stokes_learning.evaluate`)."""
    from drivers._navier_stokes_learning import evaluate as run

    return run(cfg, comm)


def _describe_train(cfg: Any, n_ranks: int) -> str:
    m, d, t = cfg.model, cfg.data, cfg.train
    weights = "dense" if m.factorization == "dense" else f"{m.factorization} rank {m.rank:g}"
    multigrid = f", {m.mg_levels} multi-grid level(s)" if m.mg_levels else ""
    return (
        f"{cfg.preset}: modes {list(m.n_modes)}, width {m.hidden_channels}, {m.n_layers} "
        f"layers, {weights} spectral weights{multigrid}; inputs w0{', f' * d.forcing}; "
        f"{d.path}: first {d.n_train} samples to train, last {d.n_test} to test; "
        f"{t.epochs} epochs, batch {t.batch_size}, "
        f"lr {t.lr:g}, {t.loss} loss; {n_ranks} rank(s) on {cfg.device}"
    )


def _errors(final: dict[int, dict[str, float]]) -> str:
    return ", ".join(f"{e['l2']:.4e} ({e['h1']:.4e}) at {n}^2" for n, e in final.items())


def _summarize_train(summary: dict[str, Any]) -> str:
    if not summary["finished"]:
        return (
            f"stopped after epoch {summary['last_epoch']} ({summary['epochs']} run here, "
            f"{summary['wall_time']:.1f} s); continue with --restart {summary['path']}"
        )
    return (
        f"{summary['epochs']} epochs in {summary['wall_time']:.1f} s, "
        f"{summary['parameters']} parameters; test relative L2 (H1): "
        f"{_errors(summary['final'])}; wrote {summary['path']}"
    )


def _describe_evaluate(cfg: Any, n_ranks: int) -> str:
    run = cfg.evaluate.run or f"the {cfg.preset} run of {cfg.data.path}"
    dataset = cfg.evaluate.dataset or "its dataset"
    return f"evaluate {run} on {dataset}; {n_ranks} rank(s) on {cfg.device}"


def _summarize_evaluate(summary: dict[str, Any]) -> str:
    return (
        f"{summary['run']} after {summary['epoch']} epochs: test relative L2 (H1) "
        f"{_errors(summary['errors'])}; wrote {summary['path']}"
    )


#: The subcommands (``plot FILE`` is the fourth).
COMMANDS = {
    "generate": Command(
        run=generate,
        describe=_describe_generate,
        summarize=_summarize_generate,
        help="solve the samples over the MPI ranks and write the dataset file",
    ),
    "train": Command(
        run=train,
        describe=_describe_train,
        summarize=_summarize_train,
        help="train FNO / TFNO / MG-TFNO on a dataset (data parallel over the ranks)",
        restart=True,
    ),
    "evaluate": Command(
        run=evaluate,
        describe=_describe_evaluate,
        summarize=_summarize_evaluate,
        help="test a trained run at every stored resolution of a dataset",
    ),
}

#: The subcommands that need torch; their configuration is
#: :class:`drivers._navier_stokes_learning.LearningRun`.
LEARNING = frozenset({"train", "evaluate"})


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the summary of the command (None for ``plot``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options: dict[str, Any] = {
        "prog": "python -m drivers.navier_stokes",
        "description": __doc__.split("\n")[0],
        "plot": plot,
        "commands": COMMANDS,
        "logger": logger,
    }
    if argv[:1] and argv[0] in LEARNING:
        from drivers._navier_stokes_learning import MODEL_PRESETS, LearningRun

        return run_command_line(
            argv,
            config_cls=LearningRun,
            load=lambda args: load_with_preset(
                LearningRun, args.config, args.set, MODEL_PRESETS, table="model"
            ),
            **options,
        )
    return run_command_line(
        argv,
        config_cls=NavierStokesRun,
        load=lambda args: load_with_preset(
            NavierStokesRun, args.config, args.set, PRESETS, table="data"
        ),
        **options,
    )


if __name__ == "__main__":
    main()
