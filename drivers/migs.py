r"""Multi-identity Gaussian splatting (MIGS): CP / Tucker factorized vs per-identity Gaussians.

One command and the plots::

    mpirun -n 2 python -m drivers.migs sweep                         # few views (default)
    mpirun -n 2 python -m drivers.migs sweep --set preset=many_views
    python -m drivers.migs plot runs/migs_few_views.nc

``sweep`` makes a :mod:`problems.gaussian_identities` problem (identities = shared body
template + CP-rank-3 identity offsets, articulated limb poses, each identity seen in
``train_views`` (pose, view) pairs), then trains, spread over the MPI ranks, the
per-identity model (one free Gaussian set per identity) and the MIGS tensor
(:class:`tensorsim.nn.gaussians.MultiIdentityGaussians`) in CP form at every rank of
``experiment.cp_ranks`` and in Tucker form at ``experiment.tucker_ranks``; each run reports
test PSNR on unseen poses and views, parameter counts and training time, and fits the unseen
identity from one image by optimising only its row (the per-identity model: its whole
Gaussian set) with every shared factor frozen.

- ``few_views``: 12 identities, 1 (pose, view) pair each (the setting where sharing
  across identities should matter, as in MIGS's monocular protocol);
- ``many_views``: the same with 8 pairs each (the control: per-identity fits are then
  well determined).

Rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``):
record dimension ``run``, the test-PSNR curve over ``eval_step``, PSNR per identity, renders
of identity 0 and of the unseen identity at test poses (``panel``) and the ground truth; the
``/state`` group holds every model's final parameters (:mod:`tensorsim.nn.state` arrays).
``plot`` writes the renders and the PSNR-vs-parameters chart as PNG.

References
----------
arXiv 2407.07284 (MIGS), arXiv 2308.04079 (3D Gaussian Splatting).
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
from problems.gaussian_identities import GaussianIdentitiesParams
from tensorsim.config import ConfigError, Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = ["COMMANDS", "PRESETS", "Experiment", "MIGSRun", "analyse", "main", "plot", "sweep"]

logger = logging.getLogger("drivers.migs")


@dataclass(frozen=True)
class TrainingParams(Params):
    """Adam with per-block learning rates and cosine decay.

    Attributes
    ----------
    steps
        Optimizer steps per model.
    batch
        Training images per step.
    lr_xyz, lr_scaling, lr_rotation, lr_color, lr_opacity
        Peak learning rate of each parameter block (3DGS's rates x 4 by default, opacity
        x 4 and colour x 40: a few hundred steps here against 3DGS's 30k).
    lr_factors
        Peak learning rate of the identity and per-Gaussian factors and the Tucker core
        (MIGS gives them the position rate; with so few steps they need more).
    eval_every
        Steps between test-PSNR evaluations.
    unseen_steps, unseen_lr
        Adam steps and rate for the unseen identity's row.
    seed
        Seed of the models' random parts and of the batches.
    """

    steps: int = param(500, "optimizer steps per model", ge=1)
    batch: int = param(8, "training images per step", ge=1)
    lr_xyz: float = param(6.4e-3, "position block", gt=0.0)
    lr_scaling: float = param(2e-2, "log-scale block", gt=0.0)
    lr_rotation: float = param(4e-3, "quaternion block", gt=0.0)
    lr_color: float = param(1e-1, "colour block", gt=0.0)
    lr_opacity: float = param(2e-1, "opacity block", gt=0.0)
    lr_factors: float = param(5e-2, "identity and Gaussian factors, Tucker core", gt=0.0)
    eval_every: int = param(100, "steps between evaluations", ge=1)
    unseen_steps: int = param(300, "Adam steps for the unseen identity", ge=0)
    unseen_lr: float = param(5e-3, "rate for the unseen identity", gt=0.0)
    seed: int = param(0, "seed", ge=0)

    def lrs(self) -> dict[str, float]:
        """Block name -> peak learning rate."""
        names = ("xyz", "scaling", "rotation", "color", "opacity")
        out = {k: float(getattr(self, f"lr_{k}")) for k in names}
        return out | {k: float(self.lr_factors) for k in ("identity", "gaussian", "core")}


@dataclass(frozen=True)
class Experiment(Params):
    """Problem, models and training.

    Attributes
    ----------
    problem
        The multi-identity problem.
    per_identity
        Train the per-identity baseline.
    cp_ranks
        CP ranks of the MIGS tensor.
    tucker_ranks
        Tucker ranks ``(R_id, R_g, R_p)``; empty: no Tucker model.
    training
        The optimizer settings (the same for every model).
    panels
        Test images rendered into the file for the plots (indices into the test set).
    """

    problem: GaussianIdentitiesParams = param(GaussianIdentitiesParams(), "the problem")
    per_identity: bool = param(True, "train the per-identity baseline")
    cp_ranks: tuple[int, ...] = param((4, 8, 16), "CP ranks", ge=1)
    tucker_ranks: tuple[int, ...] = param((4, 12, 10), "Tucker ranks (3 values or none)", ge=1)
    training: TrainingParams = param(TrainingParams(), "training")
    panels: tuple[int, ...] = param((0, 1, 2, 3), "test images rendered for the plots", ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.tucker_ranks) not in (0, 3):
            raise ConfigError(
                "config key 'tucker_ranks': expected 3 ranks (identity, Gaussian, parameter) "
                f"or none, got {list(self.tucker_ranks)}"
            )
        n_test = self.problem.test_poses * self.problem.test_views
        bad = [k for k in self.panels if k >= n_test]
        if bad or not self.panels:
            raise ConfigError(
                f"config key 'panels': expected 1 or more indices below {n_test} (test "
                f"images), got {list(self.panels)}"
            )
        if not (self.per_identity or self.cp_ranks or self.tucker_ranks):
            raise ConfigError("config key 'cp_ranks': expected at least one model to train")

    def models(self) -> list[tuple[str, tuple[int, ...]]]:
        """The ``(form, rank)`` runs in order."""
        out: list[tuple[str, tuple[int, ...]]] = [("dense", ())] if self.per_identity else []
        out += [("cp", (r,)) for r in self.cp_ranks]
        if self.tucker_ranks:
            out.append(("tucker", tuple(self.tucker_ranks)))
        return out


def _few_views() -> Experiment:
    return Experiment()


def _many_views() -> Experiment:
    return Experiment(problem=GaussianIdentitiesParams(train_views=8))


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"few_views": _few_views, "many_views": _many_views}


@dataclass(frozen=True)
class OutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output file; empty: ``runs/migs_{preset}.nc``.
    """

    path: str = param("", "output file (empty: runs/migs_{preset}.nc)")


@dataclass(frozen=True)
class MIGSRun(Params):
    """Configuration of ``python -m drivers.migs``.

    Attributes
    ----------
    preset
        ``"few_views"`` or ``"many_views"``: defaults of ``experiment``.
    experiment
        Problem, models, training.
    output
        The output file.
    """

    preset: Literal["few_views", "many_views"] = param("few_views", "experiment defaults")
    experiment: Experiment = param(Experiment(), "problem, models, training")
    output: OutputParams = param(OutputParams(), "output file")

    def path(self) -> Path:
        """The output file."""
        return (
            Path(self.output.path)
            if self.output.path
            else Path("runs") / (f"migs_{self.preset}.nc")
        )


def _write(
    path: Path, cfg: MIGSRun, comm: Any, data: Any, labels: list[str], results: list[dict]
) -> None:
    from tensorsim.io import Writer

    e = cfg.experiment
    p = e.problem
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    attrs = {
        "preset": cfg.preset,
        "command": "sweep",
        "n_identities": p.n_identities,
        "n_gaussians": p.n_gaussians,
        "n_train_images": int(data.problem.train.shape[0]),
        "n_test_images_per_identity": int(data.problem.test.shape[0]),
    }
    truth = np.stack([data.test[i, k].numpy() for i in (0, data.problem.unseen) for k in e.panels])
    with Writer(path, record_dim="run", comm=comm, config=config_to_toml(cfg), attrs=attrs) as out:
        out.set_coordinate("eval_step", results[0]["eval_steps"], long_name="optimizer steps")
        out.set_coordinate("identity", np.arange(p.n_identities), long_name="training identity")
        out.set_dimension("panel", truth.shape[0])
        out.set_dimension("y", p.image_size)
        out.set_dimension("x", p.image_size)
        out.set_dimension("channel", 3)
        out.set_variable(
            "truth",
            ("panel", "y", "x", "channel"),
            truth,
            long_name="ground truth of the panels: identity 0, then the unseen identity",
        )
        out.define_series("model", dtype=str, long_name="per_identity, cp_rR or tucker_rAxBxC")
        out.define_series("form", dtype=str, long_name="dense (per identity), cp or tucker")
        out.define_series("params", dtype="int64", long_name="stored parameters")
        out.define_series(
            "params_per_identity", dtype="int64", long_name="parameters one more identity adds"
        )
        out.define_series("test_psnr", units="dB", long_name="mean test PSNR, unseen poses")
        out.define_series(
            "test_psnr_identity", ("identity",), units="dB", long_name="test PSNR per identity"
        )
        out.define_series("train_psnr", units="dB", long_name="mean PSNR on training images")
        out.define_series(
            "unseen_psnr", units="dB", long_name="test PSNR of the unseen identity (row fit)"
        )
        out.define_series(
            "unseen_train_psnr", units="dB", long_name="unseen identity: PSNR on its one image"
        )
        out.define_series("train_seconds", units="s", long_name="training time (updates)")
        out.define_series("unseen_seconds", units="s", long_name="unseen identity fit time")
        out.define_series("eval_test_psnr", ("eval_step",), units="dB", long_name="mean test PSNR")
        out.define_series(
            "renders", ("panel", "y", "x", "channel"), dtype="float32", long_name="renders"
        )
        keys = (
            "params", "params_per_identity", "test_psnr", "test_psnr_identity", "train_psnr",
            "unseen_psnr", "unseen_train_psnr", "train_seconds", "unseen_seconds",
            "eval_test_psnr", "renders",
        )  # fmt: skip
        for i, (label, r) in enumerate(zip(labels, results, strict=True)):
            form = "dense" if label == "per_identity" else label.split("_")[0]
            out.append(i, model=label, form=form, **{k: r[k] for k in keys})
        state = {f"run{i}": r["state"][0] for i, r in enumerate(results)}
        out.checkpoint(
            {"models": state},
            attrs={f"layout_run{i}": r["state"][1] for i, r in enumerate(results)},
        )


def sweep(cfg: MIGSRun, comm: Any) -> dict[str, Any]:
    """Train every model of the experiment, spread over the ranks; write and analyse."""
    from drivers._migs_runs import make_data, model_label, train_run
    from problems.gaussian_identities import make_problem

    e = cfg.experiment
    t = e.training
    start = time.perf_counter()
    data = make_data(make_problem(e.problem))
    runs = e.models()
    labels = [model_label(form, rank) for form, rank in runs]

    def one(run: tuple[str, tuple[int, ...]]) -> dict[str, Any]:
        form, rank = run
        out = train_run(
            data,
            form,
            rank,
            steps=t.steps,
            batch=t.batch,
            lrs=t.lrs(),
            eval_every=t.eval_every,
            unseen_steps=t.unseen_steps,
            unseen_lr=t.unseen_lr,
            panels=e.panels,
            seed=t.seed,
        )
        logger.info(
            "%s: %d parameters, test PSNR %.2f dB (train %.2f dB), unseen identity %.2f dB, "
            "%.1f s",
            model_label(form, rank),
            out["params"],
            out["test_psnr"],
            out["train_psnr"],
            out["unseen_psnr"],
            out["train_seconds"],
        )
        return out

    results = Executor(comm).map(one, runs, costs=[1.0] * len(runs))
    path = cfg.path()
    _write(path, cfg, comm, data, labels, results)
    summary: dict[str, Any] = {"path": str(path), "wall_time": time.perf_counter() - start}
    if comm.rank == 0:
        from tensorsim.io import open_run

        summary.update(analyse(open_run(path)[0]))
    return summary


def analyse(ds: Any) -> dict[str, Any]:
    """Per model: parameters, PSNRs, time; and which factorized models beat per-identity.

    Returns
    -------
    dict
        ``table``: model -> numbers; ``beats_per_identity``: the factorized models with
        higher test PSNR than the per-identity model at no more parameters (empty without a
        per-identity run).
    """
    table = {}
    for i in range(ds.sizes["run"]):
        table[str(ds["model"].values[i])] = {
            k: float(ds[k].values[i])
            for k in (
                "params", "params_per_identity", "test_psnr", "train_psnr", "unseen_psnr",
                "unseen_train_psnr", "train_seconds",
            )
        }  # fmt: skip
    ref = table.get("per_identity")
    beats = []
    if ref is not None:
        beats = [
            m
            for m, v in table.items()
            if m != "per_identity"
            and v["test_psnr"] > ref["test_psnr"]
            and v["params"] <= ref["params"]
        ]
    return {"table": table, "beats_per_identity": beats}


def plot(path: str) -> list[Path]:
    """Write the renders (``*_renders.png``) and PSNR-vs-parameters (``*_psnr.png``) plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    models = [str(m) for m in ds["model"].values]
    truth = np.clip(ds["truth"].values, 0, 1)
    renders = np.clip(ds["renders"].values, 0, 1)
    n_panel = truth.shape[0]
    fig, axes = plt.subplots(
        1 + len(models), n_panel, figsize=(1.3 * n_panel, 1.4 * (1 + len(models))), squeeze=False
    )
    for j in range(n_panel):
        axes[0, j].imshow(truth[j])
        for i in range(len(models)):
            axes[i + 1, j].imshow(renders[i, j])
    for i, name in enumerate(["truth", *models]):
        axes[i, 0].set_ylabel(name, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    half = n_panel // 2
    axes[0, 0].set_title("identity 0, unseen poses", fontsize=7, loc="left")
    axes[0, half].set_title("unseen identity (row fit)", fontsize=7, loc="left")
    fig.tight_layout()
    out = [base.with_name(base.name + "_renders.png")]
    fig.savefig(out[0], dpi=130)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, m in enumerate(models):
        n = ds["params"].values[i]
        axes[0].scatter(n, ds["test_psnr"].values[i], label=m)
        axes[0].scatter(n, ds["unseen_psnr"].values[i], marker="x", color=f"C{i}")
        axes[1].plot(ds["eval_step"].values, ds["eval_test_psnr"].values[i], label=m)
    axes[0].set(
        xscale="log",
        xlabel="stored parameters",
        ylabel="test PSNR (dB); x: unseen identity",
        title=f"MIGS vs per-identity ({ds.attrs['preset']})",
    )
    axes[1].set(xlabel="step", ylabel="mean test PSNR (dB)", title="unseen poses and views")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out.append(base.with_name(base.name + "_psnr.png"))
    fig.savefig(out[1], dpi=120)
    plt.close(fig)
    return out


def _describe(cfg: MIGSRun, n_ranks: int) -> str:
    e = cfg.experiment
    p = e.problem
    return (
        f"{cfg.preset}: {p.n_identities} identities x {p.n_gaussians} Gaussians, "
        f"{p.train_views} (pose, view) pairs each; {len(e.models())} models of "
        f"{e.training.steps} steps on {n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    lines = [f"wrote {summary['path']} in {summary['wall_time']:.1f} s"]
    for m, v in summary.get("table", {}).items():
        lines.append(
            f"  {m:<18} {int(v['params']):>7} params  test PSNR {v['test_psnr']:6.2f} dB  "
            f"train {v['train_psnr']:6.2f} dB  unseen identity {v['unseen_psnr']:6.2f} dB  "
            f"{v['train_seconds']:.0f} s"
        )
    if "beats_per_identity" in summary:
        lines.append(
            "  beat per-identity at no more parameters: "
            + (", ".join(summary["beats_per_identity"]) or "none")
        )
    return "\n".join(lines)


#: The subcommands (``plot FILE`` is the second).
COMMANDS = {
    "sweep": Command(
        run=sweep,
        describe=_describe,
        summarize=_summarize,
        help="train per-identity, CP and Tucker MIGS models; test on unseen poses",
    )
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=MIGSRun,
        prog="python -m drivers.migs",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            MIGSRun, args.config, args.set, PRESETS, table="experiment"
        ),
        plot=plot,
        commands=COMMANDS,
        logger=logger,
    )


if __name__ == "__main__":
    main()
