r"""Radiance fields: TensoRF-CP, TensoRF-VM and Strivec on a procedural scene, PSNR vs size.

Every model is trained on the same views and batches; the models go over the MPI ranks::

    python -m drivers.fields                                   # rotated thin rods (default)
    mpirun -n 2 python -m drivers.fields --set output.path=runs/fields.nc
    python -m drivers.fields --set preset=tiny                 # seconds: a smoke run
    python -m drivers.fields --set 'experiment.models=["cp", "strivec"]'
    python -m drivers.fields plot runs/fields.nc               # PNGs next to the file

Scene (:mod:`problems.scenes`): soft blobs and rotated thin rods in ``[-1, 1]^3`` (high-rank
for one global CP/VM tensor, nearly rank-one for a small local tensor), views on two
interleaved orbits (training, held-out), true renders on a white background. Models
(:mod:`tensorsim.nn.models.fields`): ``cp``, ``vm`` and ``strivec`` (local tensors on the
cells of a coarse occupancy pass, :func:`solvers.fields.coarse_occupancy`, run on rank 0),
one per rank of their table, each trained coarse to fine by
:func:`solvers.fields.train_model`. The tables of a family not in ``experiment.models``
(``occupancy`` without Strivec) keep the preset's values.

Rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``):
record dimension ``run`` with ``model``, ``rank``, ``field_params`` (grids + basis matrices),
``shader_params``, ``test_psnr`` and ``test_psnr_fg`` (foreground pixels), ``train_seconds``,
``rays_per_second``, the curve ``test_psnr_curve`` over ``eval_step``, the held-out renders
``render`` (``view, y, x, channel``); the true images ``truth``; and in ``/state`` every
trained model (:func:`tensorsim.nn.state_to_arrays`) and the occupancy grid
(:func:`analysis.fields.load_model` rebuilds a model).

References
----------
arXiv 2203.09517 (TensoRF), arXiv 2307.13226 (Strivec).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from analysis.fields import compare, plots, table_lines
from drivers._base import Layout, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems.scenes import SceneParams
from solvers.fields import OccupancyParams, TrainingParams
from tensorsim.config import ConfigError, Params, param
from tensorsim.nn.models.fields import MODELS, StrivecParams, TensoRFParams, model_specs
from tensorsim.parallel import Executor

__all__ = ["PRESETS", "Experiment", "Fields", "FieldsRun", "main"]

logger = logging.getLogger("drivers.fields")


@dataclass(frozen=True)
class Experiment(Params):
    """Scene, training and the models of the sweep."""

    models: tuple[str, ...] = param(MODELS, "models to train", choices=MODELS)
    scene: SceneParams = param(SceneParams(), "the procedural scene")
    training: TrainingParams = param(TrainingParams(), "training of every model")
    occupancy: OccupancyParams = param(OccupancyParams(), "coarse occupancy pass (strivec)")
    cp: TensoRFParams = param(TensoRFParams(), "TensoRF-CP")
    vm: TensoRFParams = param(TensoRFParams(ranks=(2, 4, 8)), "TensoRF-VM")
    strivec: StrivecParams = param(StrivecParams(), "Strivec")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.models or len(set(self.models)) != len(self.models):
            raise ConfigError(
                f"config key 'models': expected distinct values of {list(MODELS)}, got "
                f"{list(self.models)}"
            )

    def specs(self) -> list[Any]:
        """The :class:`~tensorsim.nn.models.fields.ModelSpec` of every run, in sweep order."""
        tables = {kind: getattr(self, kind) for kind in self.models}
        return model_specs(self.models, tables, **self.training.shading())


def _tiny() -> Experiment:
    return Experiment(
        scene=SceneParams(image_size=8, n_train=4, n_test=2, truth_samples=48, n_rods=2),
        training=TrainingParams(
            steps=12, batch_rays=64, n_samples=16, upsample_steps=(6,), eval_every=6,
            shader_hidden=16, app_dim=8,
        ),
        occupancy=OccupancyParams(steps=4, resolution=8, threshold=1e-3),
        cp=TensoRFParams(ranks=(2, 4), resolution=8, initial_resolution=4),
        vm=TensoRFParams(ranks=(1,), resolution=8, initial_resolution=4),
        strivec=StrivecParams(
            ranks=(1,), spacings=(0.5,), resolutions=(4,), initial_resolutions=(3,)
        ),
    )  # fmt: skip


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"rods": Experiment, "tiny": _tiny}


@dataclass(frozen=True)
class FieldsOutputParams(Params):
    """The output file."""

    path: str = param("runs/fields.nc", "output file")
    save_models: bool = param(True, "store the trained models in /state")


@dataclass(frozen=True)
class FieldsRun(Params):
    """Configuration of ``python -m drivers.fields``."""

    preset: Literal["rods", "tiny"] = param("rods", "defaults of the experiment table")
    experiment: Experiment = param(Experiment(), "scene, training and models")
    output: FieldsOutputParams = param(FieldsOutputParams(), "output file")


def _setup_torch() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # denormal floats made some CPU runs 5x slower


class Fields(Sweep):
    """Every model of the experiment on the same views; one record per model."""

    config = FieldsRun
    presets = PRESETS
    length_key = "experiment.training.steps"

    def unused(self, cfg: FieldsRun) -> dict[str, str]:
        """The tables of model families (and the occupancy of Strivec) that do not run."""
        models = cfg.experiment.models
        return {
            table: f"applies only when experiment.models includes {kind!r}, got {list(models)}"
            for table, kind in (("occupancy", "strivec"), *((m, m) for m in MODELS))
            if kind not in models
        }

    def prepare(self, cfg: FieldsRun, executor: Executor) -> dict[str, Any]:
        """The scene, the views and the coarse occupancy grid."""
        import torch

        from problems.scenes import make_scene, make_views
        from solvers.fields import coarse_occupancy
        from tensorsim.nn.render import psnr

        _setup_torch()
        e, comm = cfg.experiment, executor.comm
        scene = make_scene(e.scene)
        payload = None  # views and occupancy: rank 0, broadcast
        if comm.rank == 0:
            t0 = time.perf_counter()
            views = make_views(scene)
            truth_seconds = time.perf_counter() - t0
            occ, occ_seconds = None, 0.0
            if "strivec" in e.models:
                occ, occ_seconds = coarse_occupancy(scene.box, e.training, views, e.occupancy)
                logger.info(
                    "coarse occupancy: %.1f%% of %d^3 cells in %.1f s",
                    100 * float(occ.float().mean()), e.occupancy.resolution, occ_seconds,
                )  # fmt: skip
            payload = (views, occ, truth_seconds, occ_seconds)
        views, occ, truth_seconds, occ_seconds = comm.bcast(payload, root=0)
        return {"scene": scene, "views": views, "occupancy": occ, "truth_seconds": truth_seconds,
                "occupancy_seconds": occ_seconds,
                "white_psnr": psnr(torch.ones_like(views.test_rgb), views.test_rgb)}  # fmt: skip

    def cases(self, run: SweepRun) -> list[Any]:
        """The model of every run."""
        return run.cfg.experiment.specs()

    def cost(self, run: SweepRun, case: Any) -> float:
        """Relative cost of a run (rough per-step time measured on CPU)."""
        return {"cp": 1.0, "vm": 1.6, "strivec": 4.0}[case.kind] * (1.0 + 0.02 * case.rank)

    def run_case(self, run: SweepRun, case: Any) -> dict[str, Any]:
        """Build and train one model (:func:`solvers.fields.train_model`); its state."""
        from solvers.fields import train_model
        from tensorsim.nn.models.fields import build_model
        from tensorsim.nn.state import state_to_arrays

        _setup_torch()
        d, t = run.data, run.cfg.experiment.training
        model = build_model(case, d["scene"].box, seed=t.seed, occupancy=d["occupancy"])
        out = train_model(model, case, t, d["views"])
        arrays, out["layout"] = state_to_arrays(model.state_dict())
        out["state"] = {k: v.numpy() for k, v in arrays.items()}
        logger.info(
            "%s rank %d: %d field params, test PSNR %.2f dB (foreground %.2f dB), %.1f s",
            case.kind, case.rank, out["field_params"], out["test_psnr"], out["test_psnr_fg"],
            out["train_seconds"],
        )  # fmt: skip
        return out

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``run``; the evaluated steps and the true held-out images."""
        views, occ = run.data["views"], run.data["occupancy"]
        truth = views.test_images.numpy().astype(np.float32)
        image = ("view", "y", "x", "channel")
        series = [
            Var("model", dtype=str, long_name="cp, vm or strivec"),
            Var("rank", dtype="int64", long_name="density rank"),
            Var("field_params", dtype="int64", long_name="factor grids + basis values"),
            Var("shader_params", dtype="int64", long_name="shader MLP values"),
            Var("local_tensors", dtype="int64", long_name="Strivec local tensors"),
            Var("test_psnr", units="dB", long_name="PSNR on the held-out views"),
            Var("test_psnr_fg", units="dB", long_name="PSNR on foreground pixels"),
            Var("train_seconds", units="s", long_name="time of the updates"),
            Var("rays_per_second", units="1/s", long_name="training rays per second"),
            Var("test_psnr_curve", ("eval_step",), units="dB",
                long_name="held-out PSNR in training"),
            Var("render", image, "float32", long_name="held-out renders"),
        ]  # fmt: skip
        attrs = {k: run.data[k] for k in ("truth_seconds", "occupancy_seconds", "white_psnr")}
        attrs["occupied_fraction"] = -1.0 if occ is None else float(occ.float().mean())
        return Layout(
            "run", series, attrs={"preset": run.cfg.preset, **attrs},
            coords={"eval_step": (run.results[0]["steps"], "training steps done")},
            dims=dict(zip(image, truth.shape, strict=True)),
            variables=[(Var("truth", image, long_name="true held-out images"), truth)],
        )  # fmt: skip

    def records(self, run: SweepRun) -> list[dict[str, Any]]:
        """The numbers, curve and renders of every run."""
        keys = ("field_params", "shader_params", "test_psnr", "test_psnr_fg", "train_seconds",
                "rays_per_second", "test_psnr_curve")  # fmt: skip
        return [
            {"model": s.kind, "rank": s.rank, "local_tensors": int(sum(r["n_tensors"])),
             "render": r["renders"], **{k: r[k] for k in keys}}
            for s, r in zip(run.cases, run.results, strict=True)
        ]  # fmt: skip

    def state(self, run: SweepRun) -> tuple[dict, dict] | None:
        """The trained models (and the occupancy grid) when ``output.save_models``."""
        if not run.cfg.output.save_models:
            return None
        state = {f"run{i}": r["state"] for i, r in enumerate(run.results)}
        if run.data["occupancy"] is not None:
            state["occupancy"] = run.data["occupancy"].numpy()
        return state, {f"layout_run{i}": r["layout"] for i, r in enumerate(run.results)}

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """The table of the runs, the comparison, the white-image PSNR."""
        keys = ("field_params", "test_psnr", "test_psnr_fg", "train_seconds")
        table = [
            {"model": s.kind, "rank": s.rank, **{k: r[k] for k in keys}}
            for s, r in zip(run.cases, run.results, strict=True)
        ]
        return {"table": table, "findings": compare(table), "white_psnr": run.data["white_psnr"]}

    def describe(self, cfg: FieldsRun, n_ranks: int) -> str:
        """Scene, views, models and steps."""
        e, s = cfg.experiment, cfg.experiment.scene
        return (
            f"{cfg.preset}: {s.n_blobs} blobs + {s.n_rods} rotated rods, {s.n_train} training / "
            f"{s.n_test} held-out views of {s.image_size}^2 px; {len(e.specs())} model(s) "
            f"({', '.join(e.models)}) x {e.training.steps} steps of {e.training.batch_rays} "
            f"rays on {n_ranks} rank(s)"
        )

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """The file, then parameters and PSNRs per run, the Pareto front, Strivec's wins."""
        return "\n".join([
            f"wrote {summary['path']} in {summary['wall_time']:.1f} s (constant white: "
            f"{summary['white_psnr']:.2f} dB)",
            *table_lines(summary["table"], summary["findings"]),
        ])  # fmt: skip

    plots = staticmethod(plots)


DRIVER = Driver("fields", __doc__, Fields())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
