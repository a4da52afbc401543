r"""Radiance fields: TensoRF-CP, TensoRF-VM and Strivec on a procedural scene, PSNR vs size.

Every model of the sweep is trained on the same scene, views and batches, at several ranks;
the configurations are spread over the MPI ranks::

    python -m drivers.fields                                   # rotated thin rods (default)
    mpirun -n 2 python -m drivers.fields --set output.path=runs/fields.nc
    python -m drivers.fields --set preset=tiny                 # seconds: a smoke run
    python -m drivers.fields --set 'experiment.models=["cp", "strivec"]'
    python -m drivers.fields plot runs/fields.nc               # PNGs next to the file

Scene (:mod:`problems.scenes`): soft blobs and rotated thin rods in ``[-1, 1]^3`` (a rotated
rod is high-rank for one global CP/VM tensor, nearly rank-one for a small local tensor), a smooth
colour field, pinhole views on two interleaved orbits (training and held-out), true renders with
``scene.truth_samples`` samples per ray and a white background.

Models (:mod:`tensorsim.nn.fields`, :mod:`tensorsim.nn.render`): ``cp`` (lines; density rank
``r``, appearance ``app_factor * r``), ``vm`` (plane x line per axis, ``r`` per axis) and
``strivec`` (local tri-vector tensors on a multi-scale lattice restricted to the cells of a
coarse occupancy pass, top-K inverse-distance blending), each with the same shader MLP. A run
trains with Adam (factor grids ``lr_grid``, networks ``lr_net``, cosine decay), upsampling the
factors log-spaced from the initial to the final resolution at ``training.upsample_steps``.
The coarse occupancy pass (rank 0, broadcast) is a short TensoRF-CP run thresholded on a grid.

Rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``):
record dimension ``run`` with ``model``, ``rank``, ``field_params`` (grids + basis matrices),
``shader_params``, ``test_psnr`` and ``test_psnr_fg`` (foreground pixels), ``train_seconds``,
``rays_per_second``, the curve ``test_psnr_curve`` over ``eval_step``, the held-out renders
``render`` (``view, y, x, channel``); the true images ``truth``; and in ``/state`` every trained
model (:func:`tensorsim.nn.state_to_arrays`) and the occupancy grid (:func:`load_model`).

References
----------
arXiv 2203.09517 (TensoRF), arXiv 2307.13226 (Strivec).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drivers._cli import refuse_restart, run_command_line
from problems.scenes import SceneParams
from tensorsim.config import (
    ConfigError,
    Params,
    config_from_toml,
    config_to_toml,
    load_with_preset,
    param,
)
from tensorsim.parallel import Executor

__all__ = [
    "PRESETS",
    "Experiment",
    "FieldsRun",
    "load_model",
    "main",
    "model_specs",
    "plot",
    "run",
]

logger = logging.getLogger("drivers.fields")

MODELS = ("cp", "vm", "strivec")


@dataclass(frozen=True)
class TrainingParams(Params):
    """Training shared by all models.

    Attributes
    ----------
    steps
        Adam steps.
    batch_rays
        Random training rays per step.
    n_samples
        Samples per ray (training and evaluation).
    lr_grid, lr_net
        Peak learning rates of the factor grids and of the networks (basis, shader).
    upsample_steps
        Steps before which the factors are upsampled (increasing, below ``steps``).
    eval_every
        Steps between test evaluations.
    shader_hidden, app_dim
        Shader MLP width and appearance features.
    seed
        Seed of initial values, batches and sample jitter.
    """

    steps: int = param(500, "Adam steps", ge=1)
    batch_rays: int = param(384, "rays per step", ge=1)
    n_samples: int = param(48, "samples per ray", ge=1)
    lr_grid: float = param(0.02, "learning rate of the factor grids", gt=0.0)
    lr_net: float = param(1e-3, "learning rate of basis matrices and shader", gt=0.0)
    upsample_steps: tuple[int, ...] = param((120, 240), "steps of the factor upsampling", ge=1)
    eval_every: int = param(100, "steps between test evaluations", ge=1)
    shader_hidden: int = param(64, "shader MLP width", ge=1)
    app_dim: int = param(27, "appearance features", ge=1)
    seed: int = param(0, "seed", ge=0)


@dataclass(frozen=True)
class OccupancyParams(Params):
    """The coarse occupancy pass that places Strivec's local tensors.

    Attributes
    ----------
    steps
        Steps of the short TensoRF-CP run.
    resolution
        Cells per axis of the occupancy grid.
    threshold
        Density (scene units) above which a cell is occupied (then dilated by one cell).
    """

    steps: int = param(200, "steps of the coarse CP run", ge=1)
    resolution: int = param(32, "cells per axis", ge=2)
    threshold: float = param(0.5, "occupied above this density", gt=0.0)


@dataclass(frozen=True)
class GlobalParams(Params):
    """A global TensoRF model (CP or VM).

    Attributes
    ----------
    ranks
        Density ranks of the sweep (VM: per axis).
    app_factor
        Appearance components per density component.
    resolution, initial_resolution
        Final and initial nodes per line (VM: per plane side).
    """

    ranks: tuple[int, ...] = param((8, 24, 48), "density ranks", ge=1)
    app_factor: int = param(2, "appearance components per density component", ge=1)
    resolution: int = param(64, "final nodes per line", ge=2)
    initial_resolution: int = param(32, "initial nodes per line", ge=2)


@dataclass(frozen=True)
class StrivecParams(Params):
    """Strivec's local tensors.

    Attributes
    ----------
    ranks
        Density components per local tensor (every scale) of the sweep.
    app_factor
        Appearance components per density component.
    spacings
        Lattice spacing per scale (coarse to fine).
    extent_ratio
        Half-extent of a local cube / spacing (0.5 to 1).
    resolutions, initial_resolutions
        Final and initial nodes per local line, per scale.
    top_k
        Local tensors blended per point and scale.
    weighting
        ``inverse``, ``inverse_square`` or ``uniform``.
    """

    ranks: tuple[int, ...] = param((2, 4, 8), "density components per local tensor", ge=1)
    app_factor: int = param(2, "appearance components per density component", ge=1)
    spacings: tuple[float, ...] = param((0.5, 0.25), "lattice spacing per scale", gt=0.0)
    extent_ratio: float = param(0.75, "half-extent / spacing", ge=0.5, le=1.0)
    resolutions: tuple[int, ...] = param((12, 8), "final nodes per local line", ge=2)
    initial_resolutions: tuple[int, ...] = param((6, 4), "initial nodes per local line", ge=2)
    top_k: int = param(4, "tensors blended per point", ge=1, le=8)
    weighting: Literal["inverse", "inverse_square", "uniform"] = param(
        "inverse", "aggregation weights"
    )


@dataclass(frozen=True)
class Experiment(Params):
    """Scene, training and the models of the sweep.

    Attributes
    ----------
    models
        Which of ``cp``, ``vm``, ``strivec`` to train.
    """

    models: tuple[str, ...] = param(MODELS, "models to train")
    scene: SceneParams = param(SceneParams(), "the procedural scene")
    training: TrainingParams = param(TrainingParams(), "training of every model")
    occupancy: OccupancyParams = param(OccupancyParams(), "coarse occupancy pass")
    cp: GlobalParams = param(GlobalParams(), "TensoRF-CP")
    vm: GlobalParams = param(GlobalParams(ranks=(2, 4, 8)), "TensoRF-VM")
    strivec: StrivecParams = param(StrivecParams(), "Strivec")

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.models) - set(MODELS))
        if unknown or not self.models:
            raise ConfigError(
                f"config key 'models': expected some of {list(MODELS)}, got {list(self.models)}"
            )
        up = self.training.upsample_steps
        if list(up) != sorted(set(up)) or (up and up[-1] >= self.training.steps):
            raise ConfigError(
                "config key 'training.upsample_steps': expected increasing steps below "
                f"training.steps={self.training.steps}, got {list(up)}"
            )
        s = self.strivec
        if not (len(s.spacings) == len(s.resolutions) == len(s.initial_resolutions)):
            raise ConfigError(
                "config keys 'strivec.spacings', 'strivec.resolutions', "
                "'strivec.initial_resolutions': expected one value per scale each, got "
                f"{len(s.spacings)}, {len(s.resolutions)}, {len(s.initial_resolutions)}"
            )


def _rods() -> Experiment:
    return Experiment()


def _tiny() -> Experiment:
    return Experiment(
        scene=SceneParams(image_size=8, n_train=4, n_test=2, truth_samples=48, n_rods=2),
        training=TrainingParams(
            steps=12, batch_rays=64, n_samples=16, upsample_steps=(6,), eval_every=6,
            shader_hidden=16, app_dim=8,
        ),
        occupancy=OccupancyParams(steps=4, resolution=8, threshold=1e-3),
        cp=GlobalParams(ranks=(2, 4), resolution=8, initial_resolution=4),
        vm=GlobalParams(ranks=(1,), resolution=8, initial_resolution=4),
        strivec=StrivecParams(
            ranks=(1,), spacings=(0.5,), resolutions=(4,), initial_resolutions=(3,)
        ),
    )  # fmt: skip


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"rods": _rods, "tiny": _tiny}


@dataclass(frozen=True)
class FieldsOutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output netCDF4/HDF5 file (its directory is created).
    save_models
        Store every trained model (and the occupancy grid) in the checkpoint group.
    """

    path: str = param("runs/fields.nc", "output file")
    save_models: bool = param(True, "store the trained models in /state")


@dataclass(frozen=True)
class FieldsRun(Params):
    """Configuration of ``python -m drivers.fields``.

    Attributes
    ----------
    preset
        ``"rods"`` (the experiment) or ``"tiny"`` (a smoke run): defaults of ``experiment``.
    experiment
        Scene, training, models.
    output
        The output file.
    """

    preset: Literal["rods", "tiny"] = param("rods", "defaults of the experiment table")
    experiment: Experiment = param(Experiment(), "scene, training and models")
    output: FieldsOutputParams = param(FieldsOutputParams(), "output file")


def model_specs(e: Experiment) -> list[Any]:
    """The :class:`drivers._fields_runs.ModelSpec` of every run, in sweep order."""
    from drivers._fields_runs import ModelSpec

    out = []
    for kind in e.models:
        if kind == "strivec":
            s = e.strivec
            out += [
                ModelSpec(
                    "strivec", r, s.app_factor, s.resolutions, s.initial_resolutions,
                    spacings=s.spacings, extent_ratio=s.extent_ratio, top_k=s.top_k,
                    weighting=s.weighting,
                )
                for r in s.ranks
            ]  # fmt: skip
        else:
            g = getattr(e, kind)
            out += [
                ModelSpec(kind, r, g.app_factor, (g.resolution,), (g.initial_resolution,))
                for r in g.ranks
            ]
    return out


def train_spec(e: Experiment) -> Any:
    """The :class:`drivers._fields_runs.TrainSpec` of the experiment."""
    from drivers._fields_runs import TrainSpec

    t = e.training
    return TrainSpec(
        steps=t.steps, batch_rays=t.batch_rays, n_samples=t.n_samples, lr_grid=t.lr_grid,
        lr_net=t.lr_net, upsample_steps=t.upsample_steps, eval_every=t.eval_every,
        shader_hidden=t.shader_hidden, app_dim=t.app_dim, seed=t.seed,
    )  # fmt: skip


def _cost(spec: Any, e: Experiment) -> float:
    """Relative cost of a run (rough per-step time measured on CPU)."""
    base = {"cp": 1.0, "vm": 1.6, "strivec": 4.0}[spec.kind]
    return base * (1.0 + 0.02 * spec.rank)


def _setup_torch() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # denormal floats made some CPU runs 5x slower


def _write(path: Path, cfg: FieldsRun, comm: Any, specs: list[Any], results: list[dict],
           extra: dict[str, Any]) -> None:  # fmt: skip
    from tensorsim.io import Writer

    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    attrs = {"preset": cfg.preset, **extra["attrs"]}
    with Writer(path, record_dim="run", comm=comm, config=config_to_toml(cfg), attrs=attrs) as out:
        out.set_coordinate("eval_step", results[0]["steps"], long_name="training steps done")
        truth = extra["truth"]
        for dim, size in zip(("view", "y", "x", "channel"), truth.shape, strict=True):
            out.set_dimension(dim, size)
        out.set_variable(
            "truth", ("view", "y", "x", "channel"), truth, long_name="true held-out images"
        )
        out.define_series("model", dtype=str, long_name="cp, vm or strivec")
        out.define_series("rank", dtype="int64", long_name="density rank")
        out.define_series("field_params", dtype="int64", long_name="factor grids + basis values")
        out.define_series("shader_params", dtype="int64", long_name="shader MLP values")
        out.define_series("local_tensors", dtype="int64", long_name="Strivec local tensors")
        out.define_series("test_psnr", units="dB", long_name="PSNR on the held-out views")
        out.define_series("test_psnr_fg", units="dB", long_name="PSNR on foreground pixels")
        out.define_series("train_seconds", units="s", long_name="time of the updates")
        out.define_series("rays_per_second", units="1/s", long_name="training rays per second")
        out.define_series(
            "test_psnr_curve", ("eval_step",), units="dB", long_name="held-out PSNR in training"
        )
        out.define_series(
            "render", ("view", "y", "x", "channel"), dtype="float32", long_name="held-out renders"
        )
        for i, (spec, r) in enumerate(zip(specs, results, strict=True)):
            out.append(
                i,
                model=spec.kind,
                rank=spec.rank,
                field_params=r["field_params"],
                shader_params=r["shader_params"],
                local_tensors=int(sum(r["n_tensors"])),
                test_psnr=r["test_psnr"],
                test_psnr_fg=r["test_psnr_fg"],
                train_seconds=r["train_seconds"],
                rays_per_second=r["rays_per_second"],
                test_psnr_curve=r["test_psnr_curve"],
                render=r["renders"],
            )
        if cfg.output.save_models:
            state: dict[str, Any] = {f"run{i}": r["state"] for i, r in enumerate(results)}
            layouts = {f"layout_run{i}": r["layout"] for i, r in enumerate(results)}
            if extra["occupancy"] is not None:
                state["occupancy"] = extra["occupancy"]
            out.checkpoint(state, attrs=layouts)


def run(
    cfg: FieldsRun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Render the views, run the occupancy pass, train every model over the ranks; write."""
    import torch

    from drivers._fields_runs import build_model, coarse_occupancy, train_model
    from problems.scenes import make_scene, make_views
    from tensorsim.nn.render import psnr
    from tensorsim.nn.state import state_to_arrays

    refuse_restart("drivers.fields", restart, max_steps, "experiment.training.steps")
    _setup_torch()
    start = time.perf_counter()
    e = cfg.experiment
    train = train_spec(e)
    scene = make_scene(e.scene)
    payload = None
    if comm.rank == 0:
        t0 = time.perf_counter()
        views = make_views(scene)
        truth_seconds = time.perf_counter() - t0
        occ, occ_seconds = None, 0.0
        if "strivec" in e.models:
            o = e.occupancy
            occ, occ_seconds = coarse_occupancy(
                scene.box, train, views, steps=o.steps, resolution=o.resolution,
                threshold=o.threshold,
            )  # fmt: skip
            logger.info(
                "coarse occupancy: %.1f%% of %d^3 cells in %.1f s",
                100 * float(occ.float().mean()), o.resolution, occ_seconds,
            )  # fmt: skip
        payload = (views, occ, truth_seconds, occ_seconds)
    views, occ, truth_seconds, occ_seconds = comm.bcast(payload, root=0)
    specs = model_specs(e)

    def one(spec: Any) -> dict[str, Any]:
        _setup_torch()
        model = build_model(spec, scene.box, train, occupancy=occ)
        out = train_model(model, spec, train, views)
        arrays, layout = state_to_arrays(model.state_dict())
        out["state"] = {k: v.numpy() for k, v in arrays.items()}
        out["layout"] = layout
        logger.info(
            "%s rank %d: %d field params, test PSNR %.2f dB (foreground %.2f dB), %.1f s",
            spec.kind, spec.rank, out["field_params"], out["test_psnr"], out["test_psnr_fg"],
            out["train_seconds"],
        )  # fmt: skip
        return out

    executor = Executor(comm)
    results = executor.map(one, specs, costs=[_cost(s, e) for s in specs])
    white = psnr(torch.ones_like(views.test_rgb), views.test_rgb)
    extra = {
        "truth": views.test_images.numpy().astype(np.float32),
        "occupancy": None if occ is None else occ.numpy(),
        "attrs": {
            "truth_seconds": truth_seconds,
            "occupancy_seconds": occ_seconds,
            "occupied_fraction": -1.0 if occ is None else float(occ.float().mean()),
            "white_psnr": white,
        },
    }
    path = Path(cfg.output.path)
    _write(path, cfg, comm, specs, results, extra)
    table = [
        {
            "model": s.kind,
            "rank": s.rank,
            "field_params": r["field_params"],
            "test_psnr": r["test_psnr"],
            "test_psnr_fg": r["test_psnr_fg"],
            "train_seconds": r["train_seconds"],
        }
        for s, r in zip(specs, results, strict=True)
    ]
    return {
        "path": str(path),
        "table": table,
        "findings": compare(table),
        "white_psnr": white,
        "wall_time": time.perf_counter() - start,
        "busy_time": executor.last_timings,
    }


def compare(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Where each model wins: Strivec runs that beat a VM run's PSNR with fewer parameters.

    Returns ``strivec_beats_vm``: pairs ``(strivec rank, vm rank)`` with higher Strivec test
    PSNR and fewer field parameters; ``best``: per model, the run with the best PSNR; and
    ``frontier``: the runs on the Pareto front (no run has both fewer parameters and a higher
    PSNR), in order of parameters.
    """
    beats = [
        (s["rank"], v["rank"])
        for s in table
        if s["model"] == "strivec"
        for v in table
        if v["model"] == "vm"
        and s["test_psnr"] > v["test_psnr"]
        and s["field_params"] < v["field_params"]
    ]
    best = {}
    for row in table:
        if row["model"] not in best or row["test_psnr"] > best[row["model"]]["test_psnr"]:
            best[row["model"]] = row
    ordered = sorted(table, key=lambda r: (r["field_params"], -r["test_psnr"]))
    frontier, top = [], -np.inf
    for row in ordered:
        if row["test_psnr"] > top:
            frontier.append((row["model"], row["rank"]))
            top = row["test_psnr"]
    return {"strivec_beats_vm": beats, "best": best, "frontier": frontier}


def load_model(path: str | Path, run_index: int) -> Any:
    """Rebuild the trained model of record ``run_index`` from an output file's checkpoint."""
    from drivers._fields_runs import build_model
    from problems.scenes import make_scene
    from tensorsim.io import open_run
    from tensorsim.nn.state import state_from_arrays

    ds, ckpt = open_run(path)
    if ckpt is None or f"layout_run{run_index}" not in ckpt.attrs:
        raise ValueError(f"path: {path} holds no stored model for run {run_index}")
    cfg = config_from_toml(FieldsRun, str(ds.attrs["config"]))
    e = cfg.experiment
    spec = model_specs(e)[run_index]
    occ = ckpt.arrays.get("occupancy")
    import torch

    model = build_model(
        spec,
        make_scene(e.scene).box,
        train_spec(e),
        occupancy=None if occ is None else torch.from_numpy(np.asarray(occ, dtype=bool)),
        resolution=spec.resolution,
    )
    prefix = f"run{run_index}/"
    arrays = {k[len(prefix) :]: v for k, v in ckpt.arrays.items() if k.startswith(prefix)}
    model.load_state_dict(state_from_arrays(arrays, ckpt.attrs[f"layout_run{run_index}"]))
    model.eval()
    return model


def _label(ds: Any, i: int) -> str:
    return f"{ds['model'].values[i]} r={int(ds['rank'].values[i])}"


def plot(path: str) -> list[Path]:
    """Write the PSNR-vs-parameters curve, the training curves and the renders as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    models = [str(m) for m in ds["model"].values]
    outputs = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for kind, marker in zip(MODELS, "osD", strict=True):
        idx = [i for i, m in enumerate(models) if m == kind]
        if not idx:
            continue
        idx.sort(key=lambda i: int(ds["field_params"].values[i]))
        x = ds["field_params"].values[idx]
        for ax, name in zip(axes, ("test_psnr", "test_psnr_fg"), strict=True):
            ax.plot(x, ds[name].values[idx], marker + "-", label=kind)
            for i, xi in zip(idx, x, strict=True):
                ax.annotate(f"r={int(ds['rank'].values[i])}", (xi, ds[name].values[i]),
                            fontsize=7, textcoords="offset points", xytext=(3, 3))  # fmt: skip
    for ax, title in zip(axes, ("all test pixels", "foreground pixels"), strict=True):
        ax.set(xscale="log", xlabel="field parameters (grids + basis)", ylabel="test PSNR (dB)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    out = base.with_name(base.name + "_psnr.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    outputs.append(out)
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    for i in range(ds.sizes["run"]):
        ax.plot(ds["eval_step"].values, ds["test_psnr_curve"].values[i], label=_label(ds, i))
    ax.set(xlabel="step", ylabel="test PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    out = base.with_name(base.name + "_curves.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    outputs.append(out)
    n_views = min(ds.sizes["view"], 4)
    n_runs = ds.sizes["run"]
    fig, axes = plt.subplots(n_views, n_runs + 1, figsize=(1.6 * (n_runs + 1), 1.7 * n_views),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    for v in range(n_views):
        axes[v, 0].imshow(np.clip(ds["truth"].values[v], 0, 1))
        axes[v, 0].set_title("truth" if v == 0 else "", fontsize=7)
        for i in range(n_runs):
            axes[v, i + 1].imshow(np.clip(ds["render"].values[i, v], 0, 1))
            if v == 0:
                axes[v, i + 1].set_title(
                    f"{_label(ds, i)}\n{float(ds['test_psnr'].values[i]):.1f} dB", fontsize=7
                )
    for ax in axes.flat:
        ax.set_axis_off()
    out = base.with_name(base.name + "_renders.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    outputs.append(out)
    return outputs


def _describe(cfg: FieldsRun, n_ranks: int) -> str:
    e = cfg.experiment
    s = e.scene
    return (
        f"{cfg.preset}: {s.n_blobs} blobs + {s.n_rods} rotated rods, {s.n_train} training / "
        f"{s.n_test} held-out views of {s.image_size}^2 px; {len(model_specs(e))} model(s) "
        f"({', '.join(e.models)}) x {e.training.steps} steps of {e.training.batch_rays} rays on "
        f"{n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    lines = [
        f"wrote {summary['path']} in {summary['wall_time']:.1f} s (constant white: "
        f"{summary['white_psnr']:.2f} dB)"
    ]
    for row in summary["table"]:
        lines.append(
            f"  {row['model']:<8} r={row['rank']:<3} {row['field_params']:>8} params  "
            f"test PSNR {row['test_psnr']:6.2f} dB  foreground {row['test_psnr_fg']:6.2f} dB  "
            f"{row['train_seconds']:6.1f} s"
        )
    f = summary["findings"]
    lines.append(f"  Pareto front (params ascending): {f['frontier']}")
    lines.append(f"  Strivec rank beating a VM rank with fewer params: {f['strivec_beats_vm']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=FieldsRun,
        prog="python -m drivers.fields",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            FieldsRun, args.config, args.set, PRESETS, table="experiment"
        ),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=_summarize,
        logger=logger,
    )


if __name__ == "__main__":
    main()
