r"""SMMF against Adam, AdamW, Adafactor, CAME and SM3: accuracy/loss curves and state bytes.

::

    mpirun -n 2 python -m drivers.smmf                            # digits CNN (default)
    mpirun -n 2 python -m drivers.smmf --set preset=mlp
    mpirun -n 2 python -m drivers.smmf --set preset=transformer
    python -m drivers.smmf plot runs/smmf_cnn.nc

Every (optimizer, learning rate, seed) run of the sweep trains a fresh model (initial
weights and batches from the seed, the same for every optimizer) for ``experiment.steps``
steps, linear warm-up then cosine decay to 0, evaluating on a validation and a test set every
``experiment.eval_every`` steps; the runs are spread over the MPI ranks. Per optimizer the
learning rate with the best mean final validation metric is selected (accuracy for the digits
models, loss for the transformer); the summary and the plots report the test metrics of the
selected runs, mean over seeds.

- ``cnn``: :func:`problems.small_models.build_digits_cnn` (two 3x3 convolutions: 4-D kernels
  that SMMF square-matricizes) on scikit-learn's digits;
- ``mlp``: :func:`problems.small_models.build_digits_mlp` (64-128-64-10) on the digits;
- ``transformer``: :func:`problems.small_models.build_char_transformer` (2 layers, width 64)
  predicting the next character of Python standard-library source
  (:func:`problems.language.load_corpus`).

Optimizers and their defaults (``experiment.optim.NAME.lr``, ``.weight_decay``; every other
option is the library's default): ``torch.optim.Adam`` (lr 1e-3, no weight decay),
``torch.optim.AdamW`` (lr 1e-3, weight decay 1e-2), ``torch.optim.Adafactor`` (lr 1e-2, its
relative-step cap), ``pytorch_optimizer.CAME`` (lr 2e-4), ``pytorch_optimizer.SM3`` (lr 0.1)
and :class:`tensorsim.optim.SMMF` (lr 1e-3, weight decay 5e-4, ``decay_rate`` -0.5 for the
CNN and MLP and -0.8 for the transformer, as the paper recommends). Each runs at its default
learning rate times each of ``experiment.optim.lr_factors`` (1, 3, 10, 30, 100 for the digits
models, 3 and 10 for the transformer: these short runs want larger steps than the defaults,
which are tuned for long training). A run whose loss
turns non-finite is kept with NaN curves (``diverged``) and loses the selection.

Rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``):
record dimension ``run``, curves over ``eval_step``, per run the optimizer-state bytes
measured with :func:`tensorsim.optim.state_bytes` and predicted by formula (SMMF:
:func:`tensorsim.optim.smmf_state_bytes`; Adam/AdamW: two moments and a step counter), and
per parameter tensor (dimension ``tensor``) its size, SMMF matrix shape and SMMF/Adam bytes.

References
----------
K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
Optimization", arXiv 2412.08894 (AAAI 2025).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drivers._cli import refuse_restart, run_command_line
from drivers._smmf_report import analyse, plot, summarize
from tensorsim.config import ConfigError, Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = ["PRESETS", "Experiment", "SMMFRun", "analyse", "main", "plot", "run", "summarize"]

logger = logging.getLogger("drivers.smmf")

#: The compared optimizers (keys of ``experiment.optim``), in table order.
OPTIMIZER_NAMES = ("adam", "adamw", "adafactor", "came", "sm3", "smmf")

#: Curves stored per run over ``eval_step``: name -> long name.
CURVES = {
    "train_loss": "mean training loss since the previous evaluation (nats)",
    "val_loss": "validation cross entropy (nats)",
    "val_accuracy": "validation accuracy",
    "test_loss": "test cross entropy (nats)",
    "test_accuracy": "test accuracy",
}

#: Relative cost of a step per optimizer (for spreading runs over ranks).
_COSTS = {"adam": 1.0, "adamw": 1.0, "adafactor": 1.2, "came": 1.4, "sm3": 1.0, "smmf": 1.3}


@dataclass(frozen=True)
class OptimizerParams(Params):
    """One optimizer's default learning rate and weight decay.

    Attributes
    ----------
    lr
        The library's (or paper's) default peak learning rate; the sweep tries it times
        each of ``optim.lr_factors``.
    weight_decay
        Weight decay (decoupled for AdamW and SMMF, L2 for Adam, as each library does it).
    """

    lr: float = param(1e-3, "default peak learning rate", gt=0.0)
    weight_decay: float = param(0.0, "weight decay", ge=0.0)


@dataclass(frozen=True)
class OptimParams(Params):
    """The optimizers' defaults and the learning-rate grid.

    Attributes
    ----------
    adam, adamw, adafactor, came, sm3, smmf
        One table each (:class:`OptimizerParams`).
    lr_factors
        Each optimizer runs at its default ``lr`` times each of these factors; the factor
        with the best mean final validation metric is selected per optimizer.
    decay_rate
        SMMF's second-moment decay exponent (``b2_t = 1 - t**decay_rate``).
    """

    adam: OptimizerParams = param(OptimizerParams(), "torch.optim.Adam")
    adamw: OptimizerParams = param(OptimizerParams(weight_decay=1e-2), "torch.optim.AdamW")
    adafactor: OptimizerParams = param(OptimizerParams(lr=1e-2), "torch.optim.Adafactor")
    came: OptimizerParams = param(OptimizerParams(lr=2e-4), "pytorch_optimizer.CAME")
    sm3: OptimizerParams = param(OptimizerParams(lr=0.1), "pytorch_optimizer.SM3 (no decay)")
    smmf: OptimizerParams = param(OptimizerParams(weight_decay=5e-4), "tensorsim.optim.SMMF")
    lr_factors: tuple[float, ...] = param(
        (1.0, 3.0, 10.0, 30.0, 100.0), "learning-rate grid: factors of each default", gt=0.0
    )
    decay_rate: float = param(-0.5, "SMMF decay_rate (-0.5 CNN, -0.8 transformer)", lt=0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr_factors:
            raise ConfigError("config key 'lr_factors': expected at least one factor")
        if len(set(self.lr_factors)) != len(self.lr_factors):
            raise ConfigError(f"config key 'lr_factors': repeated factors in {self.lr_factors}")
        if self.sm3.weight_decay != 0:
            raise ConfigError(
                f"config key 'sm3.weight_decay': SM3 takes no weight decay, got "
                f"{self.sm3.weight_decay}"
            )

    def lrs(self, name: str) -> list[float]:
        """The learning rates tried for optimizer ``name``."""
        base = getattr(self, name).lr
        return [float(f"{base * f:.12g}") for f in self.lr_factors]


@dataclass(frozen=True)
class DataParams(Params):
    """Batches and evaluation sets.

    Attributes
    ----------
    batch_size
        Samples (windows) per step.
    val_fraction
        Digits: fraction of the training split held out for validation.
    seed
        Seed of the digits split (the run seeds set weights and batches).
    corpus
        Transformer: ``"python_source"`` or ``"python_docs"``.
    max_chars
        Transformer: keep the first this many characters of the corpus (0: all).
    context
        Transformer: characters per window.
    eval_windows
        Transformer: windows in each of the validation and test sets.
    """

    batch_size: int = param(64, "samples per step", ge=1)
    val_fraction: float = param(0.2, "digits: validation fraction", gt=0.0, lt=1.0)
    seed: int = param(0, "seed of the digits split", ge=0)
    corpus: Literal["python_source", "python_docs"] = param("python_source", "transformer: corpus")
    max_chars: int = param(300_000, "transformer: corpus prefix (0: all)", ge=0)
    context: int = param(32, "transformer: characters per window", ge=2)
    eval_windows: int = param(128, "transformer: windows per evaluation set", ge=1)


@dataclass(frozen=True)
class TransformerParams(Params):
    """The character transformer.

    Attributes
    ----------
    width, layers, heads
        Model width (a multiple of ``heads``), encoder layers, attention heads.
    """

    width: int = param(64, "model width", ge=1)
    layers: int = param(2, "encoder layers", ge=1)
    heads: int = param(4, "attention heads", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width % self.heads:
            raise ConfigError(
                f"config key 'width': expected a multiple of heads={self.heads}, got {self.width}"
            )


@dataclass(frozen=True)
class Experiment(Params):
    """Model, data, schedule, optimizers.

    Attributes
    ----------
    model
        ``"cnn"``, ``"mlp"`` (digits) or ``"transformer"`` (characters).
    optimizers
        Optimizers compared (keys of ``optim``).
    steps, warmup
        Optimizer steps; linear warm-up steps before the cosine decay.
    eval_every
        Steps between evaluations.
    seeds
        Seeds per (optimizer, learning rate): 0, 1, ...
    """

    model: Literal["cnn", "mlp", "transformer"] = param("cnn", "the model")
    optimizers: tuple[str, ...] = param(
        OPTIMIZER_NAMES, "optimizers compared", choices=OPTIMIZER_NAMES
    )
    steps: int = param(600, "optimizer steps", ge=1)
    warmup: int = param(30, "warm-up steps", ge=0)
    eval_every: int = param(50, "steps between evaluations", ge=1)
    seeds: int = param(2, "seeds per setting", ge=1)
    data: DataParams = param(DataParams(), "batches and evaluation sets")
    transformer: TransformerParams = param(TransformerParams(), "the transformer")
    optim: OptimParams = param(OptimParams(), "learning-rate grids and weight decays")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.optimizers:
            raise ConfigError("config key 'optimizers': expected at least one optimizer")
        if len(set(self.optimizers)) != len(self.optimizers):
            raise ConfigError(f"config key 'optimizers': repeated names in {self.optimizers}")
        if self.warmup > self.steps:
            raise ConfigError(
                f"config key 'warmup': expected at most steps={self.steps}, got {self.warmup}"
            )

    def settings(self) -> list[tuple[str, float, int]]:
        """The ``(optimizer, lr, seed)`` runs."""
        out = []
        for name in self.optimizers:
            for lr in self.optim.lrs(name):
                out += [(name, lr, seed) for seed in range(self.seeds)]
        return out


def _cnn() -> Experiment:
    return Experiment()


def _mlp() -> Experiment:
    return Experiment(model="mlp")


def _transformer() -> Experiment:
    return Experiment(
        model="transformer",
        steps=800,
        warmup=40,
        eval_every=80,
        data=DataParams(batch_size=32),
        optim=OptimParams(lr_factors=(3.0, 10.0), decay_rate=-0.8),
    )


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"cnn": _cnn, "mlp": _mlp, "transformer": _transformer}


@dataclass(frozen=True)
class SMMFOutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output file; empty: ``runs/smmf_{preset}.nc``.
    """

    path: str = param("", "output file (empty: runs/smmf_{preset}.nc)")


@dataclass(frozen=True)
class SMMFRun(Params):
    """Configuration of ``python -m drivers.smmf``.

    Attributes
    ----------
    preset
        ``"cnn"``, ``"mlp"`` or ``"transformer"``: defaults of ``experiment``.
    experiment
        Model, data, schedule and optimizers.
    output
        The output file.
    """

    preset: Literal["cnn", "mlp", "transformer"] = param("cnn", "defaults of the experiment table")
    experiment: Experiment = param(Experiment(), "model, data, schedule, optimizers")
    output: SMMFOutputParams = param(SMMFOutputParams(), "output file")

    @property
    def path(self) -> Path:
        """The output file."""
        return (
            Path(self.output.path) if self.output.path else Path("runs") / f"smmf_{self.preset}.nc"
        )


def _task(e: Experiment) -> Any:
    from drivers._smmf_runs import char_task, digits_task

    d = e.data
    if e.model == "transformer":
        return char_task(
            corpus=d.corpus,
            max_chars=d.max_chars or None,
            context=d.context,
            batch_size=d.batch_size,
            eval_windows=d.eval_windows,
            width=e.transformer.width,
            layers=e.transformer.layers,
            heads=e.transformer.heads,
        )
    return digits_task(
        e.model, batch_size=d.batch_size, val_fraction=d.val_fraction, data_seed=d.seed
    )


def _write(
    cfg: SMMFRun,
    comm: Any,
    labels: Sequence[tuple[str, float, int]],
    results: list[dict[str, Any]],
    tensors: dict[str, Any],
) -> None:
    from tensorsim.io import Writer

    path = cfg.path
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    attrs = {
        "preset": cfg.preset,
        "model": cfg.experiment.model,
        "parameters": int(results[0]["parameters"]),
    }
    with Writer(path, record_dim="run", comm=comm, config=config_to_toml(cfg), attrs=attrs) as out:
        out.set_coordinate("eval_step", results[0]["steps"], long_name="optimizer steps done")
        out.set_coordinate("tensor", tensors["names"], long_name="parameter tensor")
        for name, long_name in (
            ("size", "entries of the tensor"),
            ("rows", "rows n of SMMF's n x m matricization"),
            ("cols", "columns m of SMMF's n x m matricization"),
        ):
            out.set_variable(f"tensor_{name}", ("tensor",), tensors[name], long_name=long_name)
        out.set_variable(
            "tensor_smmf_bytes",
            ("tensor",),
            tensors["smmf_bytes"],
            units="B",
            long_name="SMMF state bytes by formula (smmf_state_bytes)",
        )
        out.set_variable(
            "tensor_adam_bytes",
            ("tensor",),
            tensors["adam_bytes"],
            units="B",
            long_name="Adam state bytes by formula (two moments + step counter)",
        )
        out.define_series("optimizer", dtype=str, long_name="optimizer")
        out.define_series("lr", long_name="peak learning rate")
        out.define_series("seed", dtype="int64", long_name="seed of initial weights and batches")
        out.define_series(
            "state_bytes", dtype="int64", units="B", long_name="optimizer state bytes, measured"
        )
        out.define_series(
            "formula_bytes",
            units="B",
            long_name="optimizer state bytes by formula (SMMF, Adam, AdamW; NaN: none)",
        )
        out.define_series("step_seconds", units="s", long_name="mean wall time of one update")
        out.define_series(
            "diverged", dtype="int8", long_name="1: training loss turned non-finite (NaN curves)"
        )
        for name, long_name in CURVES.items():
            out.define_series(name, ("eval_step",), long_name=long_name)
        for i, ((name, lr, seed), r) in enumerate(zip(labels, results, strict=True)):
            out.append(
                i,
                optimizer=name,
                lr=lr,
                seed=seed,
                state_bytes=r["state_bytes"],
                formula_bytes=r["formula_bytes"],
                step_seconds=r["step_seconds"],
                diverged=int(r["diverged"]),
                **{k: r[k] for k in CURVES},
            )


def run(
    cfg: SMMFRun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Run every (optimizer, lr, seed) over the ranks, write the file; return the analysis."""
    from drivers._smmf_runs import tensor_table, train_run

    refuse_restart("drivers.smmf", restart, max_steps, "experiment.steps")
    e = cfg.experiment
    start = time.perf_counter()
    task = _task(e)
    labels = e.settings()

    def one(label: tuple[str, float, int]) -> dict[str, Any]:
        name, lr, seed = label
        t0 = time.perf_counter()
        opt = getattr(e.optim, name)
        out = train_run(
            task,
            name,
            lr,
            seed,
            steps=e.steps,
            warmup=e.warmup,
            eval_every=e.eval_every,
            weight_decay=opt.weight_decay,
            decay_rate=e.optim.decay_rate,
        )
        logger.info(
            "%s lr %.0e seed %d: validation loss %.4f, accuracy %.4f; state %d B; %.1f s",
            name,
            lr,
            seed,
            out["val_loss"][-1],
            out["val_accuracy"][-1],
            out["state_bytes"],
            time.perf_counter() - t0,
        )
        return out

    executor = Executor(comm)
    results = executor.map(one, labels, costs=[_COSTS[name] for name, *_ in labels])
    _write(cfg, comm, labels, results, tensor_table(task.build(0)))
    summary: dict[str, Any] = {"path": str(cfg.path), "wall_time": time.perf_counter() - start}
    if comm.rank == 0:
        from tensorsim.io import open_run

        summary.update(analyse(open_run(cfg.path)[0]))
    return summary


def _describe(cfg: SMMFRun, n_ranks: int) -> str:
    e = cfg.experiment
    return (
        f"{cfg.preset}: {e.model}, {len(e.settings())} runs (optimizer x lr x seed) of "
        f"{e.steps} steps on {n_ranks} rank(s)"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=SMMFRun,
        prog="python -m drivers.smmf",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            SMMFRun, args.config, args.set, PRESETS, table="experiment"
        ),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=summarize,
        logger=logger,
    )


if __name__ == "__main__":
    main()
