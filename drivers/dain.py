r"""DAIN: influence-guided data augmentation for tensor completion (arXiv 2108.10248).

Two commands, one configuration (``preset`` picks the data and its defaults)::

    mpirun -n 2 python -m drivers.dain sweep                     # built-in generator
    mpirun -n 2 python -m drivers.dain sweep --set preset=il2    # TensorLy's IL-2 tensor
    python -m drivers.dain sweep --set experiment.data.source=file \
        --set experiment.data.path=data/synthetic_10K.tensor
    python -m drivers.dain scaling                               # time vs observed cells
    python -m drivers.dain plot runs/dain_synthetic.nc

``sweep`` runs, for every completion model of ``experiment.models`` and every seed, the
DAIN pipeline of :func:`solvers.completion.run_pipeline`: split the observed cells by the seed
(10 % test, 20 % of the rest validation), train the model with TracIn influence, then retrain
the same initial model on the training cells plus ``ratio`` x as many new cells drawn by every
augmentation method of ``experiment.augmentations`` (``dain``: entity importance from
influence; ``uniform``; ``frequency``: entities weighted by their training cells), valued by
the trained model. The (model, seed) tasks are spread over the MPI ranks; the results do not
depend on the number of ranks. Rank 0 writes one netCDF4/HDF5 file
(``xarray.open_dataset(path, engine="h5netcdf")``), record dimension ``run`` (one per model,
augmentation and seed): test RMSE (the square root of the mean squared error) and MAE,
validation RMSE, cells trained on and timings. The summary gives the mean test errors and
the paired differences ``dain - none``, ``dain - uniform``, ``dain - frequency`` over seeds
with their standard errors (:func:`drivers._dain_report.analyse`).

``scaling`` times one DAIN run (training with influence for a fixed number of epochs,
sampling, retraining) on generated tensors with ``experiment.scaling.sizes`` observed cells
(after one untimed warm-up run on 1000 cells) and fits the exponent of time against cells.

Data (``experiment.data.source``): ``synthetic`` (:func:`problems.completion_data.
synthetic_completion`: a nonlinear function of a low-rank CP tensor plus noise, 2-5 %
observed), ``il2`` (TensorLy's IL-2 tensor, its NaN cells left unobserved), ``file`` (a
tab-separated or HDF5 tensor file, :mod:`tensorsim.io.sparse`).

References
----------
arXiv 2108.10248 (DAIN), 2002.08484 (TracIn), 1005.2197 (CP-WOPT).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drivers._cli import Command, run_command_line
from tensorsim.config import ConfigError, Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = ["COMMANDS", "PRESETS", "DainRun", "Experiment", "main", "scaling", "sweep"]

logger = logging.getLogger("drivers.dain")

MODEL_NAMES = ("dain_mlp", "costco", "cp", "tucker")
METHODS = ("none", "dain", "uniform", "frequency")


@dataclass(frozen=True)
class DataParams(Params):
    """The tensor.

    Attributes
    ----------
    source
        ``synthetic`` (generator), ``il2`` (TensorLy's IL-2) or ``file``.
    path
        The tensor file (``source = "file"``): tab-separated, or HDF5 for ``.h5``.
    shape
        Generator: full shape.
    rank
        Generator: CP rank of the latent tensor.
    density
        Generator: observed fraction.
    noise
        Generator: noise standard deviation.
    skew
        Generator: Zipf exponent of entity popularity (0: uniform).
    seed
        Generator: seed of the tensor (the runs' seeds split it), and of ``subsample``.
    subsample
        Fraction of the observed cells kept (the others are dropped before the split and
        count as unobserved): IL-2 is 96 % observed, too dense to augment.
    test, val
        Test fraction of the cells, and validation fraction of the rest.
    """

    source: Literal["synthetic", "il2", "file"] = param("synthetic", "synthetic, il2 or file")
    path: str = param("", "tensor file (source = file)")
    shape: tuple[int, ...] = param((60, 60, 60), "generator: full shape", ge=1)
    rank: int = param(3, "generator: CP rank", ge=1)
    density: float = param(0.04, "generator: observed fraction", gt=0, le=1)
    noise: float = param(0.1, "generator: noise standard deviation", ge=0)
    skew: float = param(0.0, "generator: Zipf exponent of entity popularity", ge=0)
    seed: int = param(0, "generator: seed of the tensor", ge=0)
    subsample: float = param(1.0, "fraction of the observed cells kept", gt=0, le=1)
    test: float = param(0.1, "test fraction", gt=0, lt=1)
    val: float = param(0.2, "validation fraction of the non-test cells", gt=0, lt=1)


@dataclass(frozen=True)
class ModelParams(Params):
    """The completion models and their learning rates.

    Attributes
    ----------
    embed_dim, hidden, mlp_lr
        DAIN MLP: embedding size per mode, hidden widths, Adam learning rate.
    costco_rank, costco_channels, costco_lr
        CoSTCo: embedding size, channels, learning rate.
    cp_rank, cp_lr
        CP completion: rank, learning rate.
    tucker_rank, tucker_lr
        Tucker completion: rank per mode, learning rate.
    factor_epochs, factor_patience
        Largest number of epochs and early-stopping patience of the CP and Tucker models
        (instead of ``training.epochs`` and ``training.patience``): from a small random
        start their loss has a plateau that a short patience mistakes for convergence.
    """

    embed_dim: int = param(16, "MLP: embedding size per mode", ge=1)
    hidden: tuple[int, ...] = param((256, 64), "MLP: hidden widths", ge=1)
    mlp_lr: float = param(3e-3, "MLP: learning rate", gt=0)
    costco_rank: int = param(16, "CoSTCo: embedding size", ge=1)
    costco_channels: int = param(32, "CoSTCo: channels", ge=1)
    costco_lr: float = param(3e-3, "CoSTCo: learning rate", gt=0)
    cp_rank: int = param(8, "CP: rank", ge=1)
    cp_lr: float = param(3e-2, "CP: learning rate", gt=0)
    tucker_rank: int = param(4, "Tucker: rank per mode", ge=1)
    tucker_lr: float = param(3e-2, "Tucker: learning rate", gt=0)
    factor_epochs: int = param(150, "CP and Tucker: largest number of epochs", ge=1)
    factor_patience: int = param(30, "CP and Tucker: early-stopping patience", ge=0)

    def schedule(self, name: str, training: TrainingParams) -> tuple[int, int]:
        """Largest number of epochs and patience of model ``name``."""
        if name in ("cp", "tucker"):
            return self.factor_epochs, self.factor_patience
        return training.epochs, training.patience

    def options(self, name: str) -> tuple[dict[str, Any], float]:
        """Model options and learning rate of model ``name``."""
        return {
            "dain_mlp": ({"embed_dim": self.embed_dim, "hidden": self.hidden}, self.mlp_lr),
            "costco": (
                {"rank": self.costco_rank, "channels": self.costco_channels},
                self.costco_lr,
            ),
            "cp": ({"rank": self.cp_rank}, self.cp_lr),
            "tucker": ({"ranks": self.tucker_rank}, self.tucker_lr),
        }[name]


@dataclass(frozen=True)
class TrainingParams(Params):
    """Training of every model (early stopping on validation RMSE).

    Attributes
    ----------
    epochs, batch_size, patience, weight_decay
        As :class:`solvers.completion.CompletionParams`.
    """

    epochs: int = param(50, "largest number of epochs", ge=1)
    batch_size: int = param(256, "cells per Adam step", ge=1)
    patience: int = param(10, "early-stopping patience (0: none)", ge=0)
    weight_decay: float = param(0.0, "Adam weight decay", ge=0)


@dataclass(frozen=True)
class ScalingParams(Params):
    """The ``scaling`` command.

    Attributes
    ----------
    sizes
        Observed cells of the generated tensors (3 modes, ``density`` observed).
    epochs
        Epochs of each training (no early stopping).
    density
        Observed fraction.
    model
        The completion model.
    """

    sizes: tuple[int, ...] = param((10_000, 100_000), "observed cells per tensor", ge=100)
    epochs: int = param(3, "epochs per training", ge=1)
    density: float = param(0.03, "observed fraction", gt=0, le=1)
    model: Literal["dain_mlp", "costco", "cp", "tucker"] = param("dain_mlp", "model")


@dataclass(frozen=True)
class Experiment(Params):
    """Data, models, augmentations, seeds and training.

    Attributes
    ----------
    models
        Completion models (``dain_mlp``, ``costco``, ``cp``, ``tucker``).
    augmentations
        Methods (``none`` is always run): ``dain``, ``uniform``, ``frequency``.
    seeds
        Paired seeds 0 .. seeds-1 (split, initial weights, shuffling, draws).
    ratio
        Augmented cells per training cell.
    """

    data: DataParams = param(DataParams(), "the tensor")
    model: ModelParams = param(ModelParams(), "model settings")
    training: TrainingParams = param(TrainingParams(), "training")
    models: tuple[str, ...] = param(("dain_mlp", "cp"), "completion models")
    augmentations: tuple[str, ...] = param(("dain", "uniform", "frequency"), "methods")
    seeds: int = param(5, "paired seeds", ge=1)
    ratio: float = param(0.5, "augmented cells per training cell", ge=0)
    scaling: ScalingParams = param(ScalingParams(), "the scaling command")

    def __post_init__(self) -> None:
        super().__post_init__()
        for key, values, allowed in (
            ("models", self.models, MODEL_NAMES),
            ("augmentations", self.augmentations, METHODS),
        ):
            unknown = sorted(set(values) - set(allowed))
            if unknown:
                raise ConfigError(
                    f"config key '{key}': unknown {unknown}; expected some of {list(allowed)}"
                )
        if not self.models:
            raise ConfigError("config key 'models': expected at least one model")
        if self.data.source == "file" and not self.data.path:
            raise ConfigError("config key 'data.path': required with data.source = 'file'")


def _synthetic() -> Experiment:
    return Experiment()


def _il2() -> Experiment:
    return Experiment(
        data=DataParams(source="il2", subsample=0.25),
        model=ModelParams(embed_dim=8, hidden=(64, 32), cp_rank=4, tucker_rank=3),
        training=TrainingParams(epochs=200, batch_size=64, patience=20),
        models=("dain_mlp", "cp"),
        seeds=5,
    )


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"synthetic": _synthetic, "il2": _il2}


@dataclass(frozen=True)
class OutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output file; empty: ``runs/dain_{preset}.nc`` (sweep) or ``runs/dain_scaling.nc``.
    """

    path: str = param("", "output file (empty: from the command and preset)")


@dataclass(frozen=True)
class DainRun(Params):
    """Configuration of ``python -m drivers.dain``.

    Attributes
    ----------
    preset
        ``"synthetic"`` or ``"il2"``: defaults of ``experiment``.
    experiment
        Data, models, augmentations, seeds, training.
    output
        The output file.
    """

    preset: Literal["synthetic", "il2"] = param("synthetic", "defaults of the experiment")
    experiment: Experiment = param(Experiment(), "data, models, methods, training")
    output: OutputParams = param(OutputParams(), "output file")

    def path(self, command: str) -> Path:
        """The output file of ``command``."""
        if self.output.path:
            return Path(self.output.path)
        name = "dain_scaling" if command == "scaling" else f"dain_{self.preset}"
        return Path("runs") / f"{name}.nc"


def load_data(data: DataParams) -> tuple[Any, dict[str, Any]]:
    """The observed cells of ``data`` and attributes describing them."""
    from problems.completion_data import il2_tensor, load_tensor, synthetic_completion

    if data.source == "synthetic":
        tensor = synthetic_completion(
            data.shape,
            rank=data.rank,
            density=data.density,
            noise=data.noise,
            skew=data.skew,
            seed=data.seed,
        ).tensor
        attrs = {"noise": data.noise, "latent_rank": data.rank, "skew": data.skew}
    elif data.source == "il2":
        tensor, missing = il2_tensor()
        attrs = {"missing_cells": int(missing.shape[0])}
    else:
        tensor = load_tensor(data.path)
        attrs = {"file": data.path}
    if data.subsample < 1:
        keep = np.random.default_rng([data.seed, 1]).random(tensor.nnz) < data.subsample
        tensor = tensor.subset(keep)
    return tensor, {
        "source": data.source,
        "subsample": data.subsample,
        "shape": list(tensor.shape),
        "observed_cells": tensor.nnz,
        "density": tensor.density,
        **attrs,
    }


def _training(e: Experiment, lr: float, epochs: int | None = None, patience: int | None = None):
    from solvers.completion import CompletionParams

    t = e.training
    return CompletionParams(
        epochs=t.epochs if epochs is None else epochs,
        batch_size=t.batch_size,
        lr=lr,
        weight_decay=t.weight_decay,
        patience=t.patience if patience is None else patience,
    )


#: Per-run series of the sweep file: name -> (dtype, units, long name).
RUN_SERIES = {
    "model": (str, None, "completion model"),
    "augmentation": (str, None, "augmentation method"),
    "seed": ("int64", None, "seed of split, weights, shuffling and draws"),
    "test_rmse": ("float64", "1", "test root mean squared error"),
    "test_mae": ("float64", "1", "test mean absolute error"),
    "val_rmse": ("float64", "1", "best validation root mean squared error"),
    "best_epoch": ("int64", None, "epoch of the best validation error"),
    "n_train": ("int64", None, "cells trained on (training + augmented)"),
    "n_aug": ("int64", None, "augmented cells"),
    "train_seconds": ("float64", "s", "wall time of the Adam updates"),
    "influence_seconds": ("float64", "s", "wall time of the influence passes"),
    "augment_seconds": ("float64", "s", "wall time of sampling and labelling new cells"),
    "influence_bytes": ("int64", "B", "bytes held by the influence accumulator"),
}


def sweep(cfg: DainRun, comm: Any) -> dict[str, Any]:
    """Run the pipeline for every (model, seed) over the ranks; write and analyse."""
    import torch

    from solvers.completion import run_pipeline
    from tensorsim.io.sparse import split_cells

    e = cfg.experiment
    start = time.perf_counter()
    tensor, attrs = load_data(e.data)
    tasks = [(m, s) for m in e.models for s in range(e.seeds)]
    methods = ("none", *[m for m in e.augmentations if m != "none"])

    def one(task: tuple[str, int]) -> dict[str, dict[str, Any]]:
        name, seed = task
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        split = split_cells(tensor, test=e.data.test, val=e.data.val, seed=seed)
        options, lr = e.model.options(name)
        epochs, patience = e.model.schedule(name, e.training)
        out = run_pipeline(
            name,
            split,
            methods=methods,
            ratio=e.ratio,
            seed=seed,
            params=_training(e, lr, epochs, patience),
            model_options=options,
        )
        logger.info(
            "%s seed %d: test RMSE %s (%.1f s)",
            name,
            seed,
            ", ".join(f"{m} {r['test_rmse']:.4f}" for m, r in out.items()),
            time.perf_counter() - t0,
        )
        return out

    cost = {"dain_mlp": 1.0, "costco": 2.5, "cp": 0.6, "tucker": 0.6}
    results = Executor(comm).map(one, tasks, costs=[cost[m] for m, _ in tasks])
    path = cfg.path("sweep")
    _write_sweep(path, cfg, comm, tasks, methods, results, attrs)
    summary: dict[str, Any] = {"path": str(path), "wall_time": time.perf_counter() - start}
    if comm.rank == 0:
        from drivers._dain_report import analyse
        from tensorsim.io import open_run

        summary.update(analyse(open_run(path)[0]))
    return summary


def _write_sweep(
    path: Path,
    cfg: DainRun,
    comm: Any,
    tasks: Sequence[tuple[str, int]],
    methods: Sequence[str],
    results: Sequence[dict[str, dict[str, Any]]],
    attrs: dict[str, Any],
) -> None:
    from tensorsim.io import Writer

    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    e = cfg.experiment
    attrs = {"preset": cfg.preset, "command": "sweep", "ratio": e.ratio, **attrs}
    with Writer(path, record_dim="run", comm=comm, config=config_to_toml(cfg), attrs=attrs) as out:
        for name, (dtype, units, long_name) in RUN_SERIES.items():
            out.define_series(name, dtype=dtype, units=units, long_name=long_name)
        i = 0
        for (name, seed), result in zip(tasks, results, strict=True):
            for method in methods:
                r = result[method]
                out.append(i, model=name, augmentation=method, seed=seed, **r)
                i += 1


def scaling(cfg: DainRun, comm: Any) -> dict[str, Any]:
    """Time one DAIN run (fixed epochs) per size of ``experiment.scaling.sizes``; fit."""
    import torch

    from problems.completion_data import shape_for, synthetic_completion
    from solvers.completion import run_pipeline
    from tensorsim.io.sparse import split_cells

    e = cfg.experiment
    s = e.scaling
    start = time.perf_counter()
    options, lr = e.model.options(s.model)

    def one(size: int) -> dict[str, Any]:
        torch.set_num_threads(1)
        shape = shape_for(size, s.density)
        tensor = synthetic_completion(
            shape, rank=e.data.rank, density=size / np.prod(shape), noise=e.data.noise, seed=0
        ).tensor
        split = split_cells(tensor, seed=0)
        t0 = time.perf_counter()
        out = run_pipeline(
            s.model,
            split,
            methods=("dain",),
            ratio=e.ratio,
            seed=0,
            params=_training(e, lr, epochs=s.epochs, patience=0),
            model_options=options,
        )
        total = time.perf_counter() - t0
        logger.info("%d cells (%s): %.1f s", tensor.nnz, "x".join(map(str, shape)), total)
        return {
            "cells": tensor.nnz,
            "side": shape[0],
            "seconds": total,
            "train_seconds": out["none"]["train_seconds"],
            "influence_seconds": out["none"]["influence_seconds"],
            "augment_seconds": out["dain"]["augment_seconds"],
            "retrain_seconds": out["dain"]["train_seconds"],
            "test_rmse": out["dain"]["test_rmse"],
        }

    one(1000)  # warm-up (first torch calls, allocator), not timed
    results = Executor(comm).map(one, list(s.sizes), costs=[float(n) for n in s.sizes])
    from drivers._dain_report import fit_exponent

    fits = {
        key: fit_exponent([r["cells"] for r in results], [r[key] for r in results])
        for key in ("seconds", "train_seconds", "influence_seconds", "augment_seconds")
    }
    path = cfg.path("scaling")
    from tensorsim.io import Writer

    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    attrs = {
        "preset": cfg.preset,
        "command": "scaling",
        "model": s.model,
        "epochs": s.epochs,
        "exponent": fits["seconds"],
        "train_exponent": fits["train_seconds"],
        "influence_exponent": fits["influence_seconds"],
    }
    with Writer(path, record_dim="size", comm=comm, config=config_to_toml(cfg), attrs=attrs) as w:
        for key in results[0]:
            if key != "cells":
                dtype = "int64" if key == "side" else "float64"
                w.define_series(key, dtype=dtype, units="s" if "seconds" in key else None)
        for r in results:
            w.append(r["cells"], **{k: v for k, v in r.items() if k != "cells"})
    return {
        "path": str(path),
        "rows": results,
        "exponents": fits,
        "wall_time": time.perf_counter() - start,
    }


def plot(path: str) -> list[Path]:
    """Write the plots of a ``sweep`` or ``scaling`` output file next to it."""
    from drivers._dain_report import plot as plot_file

    return plot_file(path)


def _describe(command: str) -> Any:
    def describe(cfg: DainRun, n_ranks: int) -> str:
        e = cfg.experiment
        if command == "scaling":
            s = e.scaling
            return (
                f"scaling: {s.model}, {s.epochs} epochs, sizes {list(s.sizes)} on "
                f"{n_ranks} rank(s)"
            )
        return (
            f"{cfg.preset}: data {e.data.source}, models {list(e.models)}, augmentations "
            f"{['none', *e.augmentations]}, {e.seeds} seeds, ratio {e.ratio}, on "
            f"{n_ranks} rank(s)"
        )

    return describe


def _summarize_sweep(summary: dict[str, Any]) -> str:
    from drivers._dain_report import summarize

    return f"wrote {summary['path']} in {summary['wall_time']:.1f} s\n" + summarize(summary)


def _summarize_scaling(summary: dict[str, Any]) -> str:
    lines = [f"wrote {summary['path']} in {summary['wall_time']:.1f} s"]
    for r in summary["rows"]:
        lines.append(
            f"  {r['cells']:>9} cells: {r['seconds']:.2f} s (train {r['train_seconds']:.2f}, "
            f"influence {r['influence_seconds']:.2f}, sampling {r['augment_seconds']:.2f}, "
            f"retrain {r['retrain_seconds']:.2f})"
        )
    ex = summary["exponents"]
    lines.append(
        f"  time ~ cells^{ex['seconds']:.3f} (train {ex['train_seconds']:.3f}, influence "
        f"{ex['influence_seconds']:.3f}, sampling {ex['augment_seconds']:.3f})"
    )
    return "\n".join(lines)


#: The subcommands (``plot FILE`` is the third).
COMMANDS = {
    "sweep": Command(
        run=sweep,
        describe=_describe("sweep"),
        summarize=_summarize_sweep,
        help="models x augmentations x seeds: test errors and paired differences",
    ),
    "scaling": Command(
        run=scaling,
        describe=_describe("scaling"),
        summarize=_summarize_scaling,
        help="time of one DAIN run vs observed cells",
    ),
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the command's summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=DainRun,
        prog="python -m drivers.dain",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            DainRun, args.config, args.set, PRESETS, table="experiment"
        ),
        plot=plot,
        commands=COMMANDS,
        logger=logger,
    )


if __name__ == "__main__":
    main()
