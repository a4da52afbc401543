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
``experiment.cp_ranks`` and in Tucker form at ``experiment.tucker_ranks``
(:func:`solvers.migs.train_run`); each run reports test PSNR on unseen poses and views,
parameter counts and training time, and fits the unseen identity from one image by
optimising only its row (the per-identity model: its whole Gaussian set) with every shared
factor frozen.

- ``few_views``: 12 identities, 1 (pose, view) pair each (the setting where sharing
  across identities should matter, as in MIGS's monocular protocol);
- ``many_views``: the same with 8 pairs each (the control: per-identity fits are then
  well determined).

Rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``):
record dimension ``run``, the test-PSNR curve over ``eval_step``, PSNR per identity, renders
of identity 0 and of the unseen identity at test poses (``panel``) and the ground truth; the
``/state`` group holds every model's final parameters (:mod:`tensorsim.nn.state` arrays).
``plot`` writes the renders and the PSNR-vs-parameters chart as PNG (:mod:`analysis.migs`).

References
----------
arXiv 2407.07284 (MIGS), arXiv 2308.04079 (3D Gaussian Splatting).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from analysis.migs import analyse, plots, table_lines
from drivers._base import Layout, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems.gaussian_identities import GaussianIdentitiesParams
from solvers.migs import TrainingParams, model_label
from tensorsim.config import ConfigError, Params, param
from tensorsim.parallel import Executor

__all__ = ["PRESETS", "Experiment", "MIGSRun", "MIGSSweep", "main"]

logger = logging.getLogger("drivers.migs")


@dataclass(frozen=True)
class Experiment(Params):
    """Problem, models and training.

    Attributes
    ----------
    panels
        Test images rendered into the file for the plots (indices into the test set).
    """

    problem: GaussianIdentitiesParams = param(GaussianIdentitiesParams(), "the problem")
    per_identity: bool = param(True, "train the per-identity baseline")
    cp_ranks: tuple[int, ...] = param((4, 8, 16), "CP ranks", ge=1)
    tucker_ranks: tuple[int, ...] = param((4, 12, 10), "Tucker ranks (3 values or none)", ge=1)
    training: TrainingParams = param(TrainingParams(), "training (the same for every model)")
    panels: tuple[int, ...] = param((0, 1, 2, 3), "test images rendered for the plots", ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        p, t = self.problem, self.training
        if len(self.tucker_ranks) not in (0, 3):
            raise ConfigError(
                "config key 'tucker_ranks': expected 3 ranks (identity, Gaussian, parameter) "
                f"or none, got {list(self.tucker_ranks)}"
            )
        n_test = p.test_poses * p.test_views
        bad = [k for k in self.panels if k >= n_test]
        if bad or not self.panels:
            raise ConfigError(
                f"config key 'panels': expected 1 or more indices below {n_test} (test "
                f"images), got {list(self.panels)}"
            )
        if not (self.per_identity or self.cp_ranks or self.tucker_ranks):
            raise ConfigError("config key 'cp_ranks': expected at least one model to train")
        if t.batch > p.n_identities * p.train_views:
            raise ConfigError(
                f"config key 'training.batch': expected at most the {p.n_identities} x "
                f"{p.train_views} training images, got {t.batch}"
            )
        unused = [("lr_factors", not (self.cp_ranks or self.tucker_ranks), "CP or Tucker")]
        unused.append(("unseen_lr", t.unseen_steps == 0, "training.unseen_steps > 0"))
        for key, idle, needs in unused:
            if idle and getattr(t, key) != getattr(TrainingParams(), key):
                raise ConfigError(f"config key 'training.{key}': applies only with {needs}")

    def models(self) -> list[tuple[str, tuple[int, ...]]]:
        """The ``(form, rank)`` runs in order."""
        out: list[tuple[str, tuple[int, ...]]] = [("dense", ())] if self.per_identity else []
        out += [("cp", (r,)) for r in self.cp_ranks]
        if self.tucker_ranks:
            out.append(("tucker", tuple(self.tucker_ranks)))
        return out


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {
    "few_views": Experiment,
    "many_views": lambda: Experiment(problem=GaussianIdentitiesParams(train_views=8)),
}


@dataclass(frozen=True)
class OutputParams(Params):
    """The output file."""

    path: str = param("", "output file (empty: runs/migs_{preset}.nc)")


@dataclass(frozen=True)
class MIGSRun(Params):
    """Configuration of ``python -m drivers.migs``."""

    preset: Literal["few_views", "many_views"] = param("few_views", "experiment defaults")
    experiment: Experiment = param(Experiment(), "problem, models, training")
    output: OutputParams = param(OutputParams(), "output file")


class MIGSSweep(Sweep):
    """Every model of the experiment on the same problem; one record per model."""

    config = MIGSRun
    presets = PRESETS
    length_key = "experiment.training.steps"
    help = "train per-identity, CP and Tucker MIGS models; test on unseen poses"

    def prepare(self, cfg: MIGSRun, executor: Executor) -> Any:
        """The problem and its ground-truth images (the same on every rank)."""
        from problems.gaussian_identities import make_data, make_problem

        return make_data(make_problem(cfg.experiment.problem))

    def cases(self, run: SweepRun) -> list[tuple[str, tuple[int, ...]]]:
        """The ``(form, rank)`` of every model."""
        return run.cfg.experiment.models()

    def run_case(self, run: SweepRun, case: tuple[str, tuple[int, ...]]) -> dict[str, Any]:
        """Train one model (:func:`solvers.migs.train_run`)."""
        from solvers.migs import train_run

        e = run.cfg.experiment
        out = train_run(run.data, *case, e.training, panels=e.panels)
        logger.info(
            "%s: %d parameters, test PSNR %.2f dB (train %.2f dB), unseen identity %.2f dB, "
            "%.1f s",
            model_label(*case), out["params"], out["test_psnr"], out["train_psnr"],
            out["unseen_psnr"], out["train_seconds"],
        )  # fmt: skip
        return out

    def output_path(self, cfg: MIGSRun) -> Path:
        """``output.path``, or ``runs/migs_{preset}.nc`` when it is empty."""
        return Path(cfg.output.path or f"runs/migs_{cfg.preset}.nc")

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``run``; identities, panels and the ground truth of the panels."""
        p, panels, data = run.cfg.experiment.problem, run.cfg.experiment.panels, run.data
        truth = np.stack(
            [data.test[i, k].numpy() for i in (0, data.problem.unseen) for k in panels]
        )
        image = ("panel", "y", "x", "channel")
        series = [
            Var("model", dtype=str, long_name="per_identity, cp_rR or tucker_rAxBxC"),
            Var("form", dtype=str, long_name="dense (per identity), cp or tucker"),
            Var("params", dtype="int64", long_name="stored parameters"),
            Var("params_per_identity", (), "int64", None, "parameters one more identity adds"),
            Var("test_psnr", units="dB", long_name="mean test PSNR, unseen poses"),
            Var("test_psnr_identity", ("identity",), "float64", "dB", "test PSNR per identity"),
            Var("train_psnr", units="dB", long_name="mean PSNR on training images"),
            Var("unseen_psnr", (), "float64", "dB", "test PSNR of the unseen identity (row fit)"),
            Var("unseen_train_psnr", (), "float64", "dB",
                "unseen identity: PSNR on its one image"),
            Var("train_seconds", units="s", long_name="training time (updates)"),
            Var("unseen_seconds", units="s", long_name="unseen identity fit time"),
            Var("eval_test_psnr", ("eval_step",), units="dB", long_name="mean test PSNR"),
            Var("renders", image, "float32", long_name="renders"),
        ]  # fmt: skip
        attrs = {
            "preset": run.cfg.preset, "command": "sweep", "n_identities": p.n_identities,
            "n_gaussians": p.n_gaussians, "n_train_images": int(data.problem.train.shape[0]),
            "n_test_images_per_identity": int(data.problem.test.shape[0]),
        }  # fmt: skip
        long_name = "ground truth of the panels: identity 0, then the unseen identity"
        return Layout(
            "run", series, attrs=attrs,
            coords={"eval_step": (run.results[0]["eval_steps"], "optimizer steps"),
                    "identity": (np.arange(p.n_identities), "training identity")},
            dims=dict(zip(image, (truth.shape[0], p.image_size, p.image_size, 3), strict=True)),
            variables=[(Var("truth", image, long_name=long_name), truth)],
        )  # fmt: skip

    def records(self, run: SweepRun) -> list[dict[str, Any]]:
        """The model's label and form, and its numbers, curve and renders."""
        return [
            {"model": model_label(form, rank), "form": form, **result}
            for (form, rank), result in zip(run.cases, run.results, strict=True)
        ]

    def state(self, run: SweepRun) -> tuple[dict, dict]:
        """Every model's final parameters."""
        state = {f"run{i}": r["state"][0] for i, r in enumerate(run.results)}
        layouts = {f"layout_run{i}": r["state"][1] for i, r in enumerate(run.results)}
        return {"models": state}, layouts

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """The analysis of the file (rank 0)."""
        if run.comm.rank != 0:
            return {}
        from tensorsim.io import open_run

        return analyse(open_run(run.path)[0])

    def describe(self, cfg: MIGSRun, n_ranks: int) -> str:
        """Identities, Gaussians, views, models and steps."""
        e, p = cfg.experiment, cfg.experiment.problem
        return (
            f"{cfg.preset}: {p.n_identities} identities x {p.n_gaussians} Gaussians, "
            f"{p.train_views} (pose, view) pairs each; {len(e.models())} models of "
            f"{e.training.steps} steps on {n_ranks} rank(s)"
        )

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """The file, then parameters and PSNRs per model and the winners (rank 0)."""
        head = f"wrote {summary['path']} in {summary['wall_time']:.1f} s"
        return "\n".join([head, *table_lines(summary)])

    plots = staticmethod(plots)


DRIVER = Driver("migs", __doc__, {"sweep": MIGSSweep()})
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
