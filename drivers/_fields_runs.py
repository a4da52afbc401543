"""The runs of ``drivers.fields``: build a radiance-field model, train it, evaluate it.

:func:`build_model` makes a TensoRF-CP, TensoRF-VM or Strivec :class:`RadianceField` from a
:class:`ModelSpec`; :func:`coarse_occupancy` is the coarse occupancy pass that places Strivec's
local tensors (a short TensoRF-CP run, thresholded on a grid); :func:`train_model` trains with
:func:`solvers.steps.fit` (Adam, factor grids and networks at their own learning rates, cosine
decay), upsampling the factors at the scheduled steps (Adam moments of the resampled grids
reset), and returns the test PSNR curve, the final renders, the parameter counts and times.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from solvers.steps import fit
from tensorsim.nn.fields import Box, CPField, LocalCPField, LocalScale, VMField
from tensorsim.nn.fields.strivec import occupancy_from_density
from tensorsim.nn.render import RadianceField, Shader, psnr

__all__ = [
    "ModelSpec",
    "TrainSpec",
    "build_model",
    "coarse_occupancy",
    "resolution_schedule",
    "train_model",
]

logger = logging.getLogger("drivers.fields")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the sweep.

    Attributes
    ----------
    kind
        ``"cp"``, ``"vm"`` or ``"strivec"``.
    rank
        Density components (per axis for VM, per local tensor and scale for Strivec); the
        appearance has ``app_factor * rank``.
    app_factor
        Appearance components per density component.
    resolution, initial_resolution
        Final and initial nodes per line (per scale for Strivec).
    spacings, extent_ratio, top_k, weighting
        Strivec: lattice spacings per scale, half-extent / spacing, blended tensors, weights.
    """

    kind: Literal["cp", "vm", "strivec"]
    rank: int
    app_factor: int
    resolution: tuple[int, ...]
    initial_resolution: tuple[int, ...]
    spacings: tuple[float, ...] = ()
    extent_ratio: float = 0.75
    top_k: int = 4
    weighting: str = "inverse"


@dataclass(frozen=True)
class TrainSpec:
    """Training and evaluation settings shared by the models (see ``drivers.fields``)."""

    steps: int
    batch_rays: int
    n_samples: int
    lr_grid: float
    lr_net: float
    upsample_steps: tuple[int, ...]
    eval_every: int
    shader_hidden: int
    app_dim: int
    seed: int


def build_model(
    spec: ModelSpec,
    box: Box,
    train: TrainSpec,
    *,
    occupancy: torch.Tensor | None = None,
    resolution: tuple[int, ...] | None = None,
) -> RadianceField:
    """A fresh model (seeded by ``train.seed``) at ``resolution`` (default: the initial one)."""
    g = torch.Generator().manual_seed(train.seed)
    res = spec.initial_resolution if resolution is None else resolution
    kw = {"app_dim": train.app_dim, "generator": g}
    if spec.kind == "cp":
        field: Any = CPField(
            box, density_rank=spec.rank, app_rank=spec.app_factor * spec.rank,
            resolution=res[0], **kw,
        )  # fmt: skip
    elif spec.kind == "vm":
        field = VMField(
            box, density_rank=spec.rank, app_rank=spec.app_factor * spec.rank,
            resolution=res[0], **kw,
        )  # fmt: skip
    elif spec.kind == "strivec":
        if occupancy is None:
            raise ValueError("occupancy: Strivec needs the coarse occupancy grid")
        scales = [
            LocalScale(h, spec.extent_ratio * h, r, spec.rank, spec.app_factor * spec.rank)
            for h, r in zip(spec.spacings, res, strict=True)
        ]
        field = LocalCPField(
            box, scales, occupancy, top_k=spec.top_k, weighting=spec.weighting, **kw
        )
    else:
        raise ValueError(f"kind: expected 'cp', 'vm' or 'strivec', got {spec.kind!r}")
    shader = Shader(train.app_dim, hidden=train.shader_hidden, generator=g)
    # camera rays through the image corners may miss the box: background
    return RadianceField(
        field, shader, n_samples=train.n_samples, seed=train.seed, allow_miss=True
    )


def resolution_schedule(spec: ModelSpec, n_upsamples: int) -> list[tuple[int, ...]]:
    """Resolutions after each upsampling: log-spaced from the initial to the final one."""
    out = []
    for k in range(1, n_upsamples + 1):
        f = k / n_upsamples
        out.append(
            tuple(
                round(math.exp((1 - f) * math.log(a) + f * math.log(b)))
                for a, b in zip(spec.initial_resolution, spec.resolution, strict=True)
            )
        )
    return out


def _batches(rays: torch.Tensor, rgb: torch.Tensor, size: int, seed: int):
    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(
            np.random.default_rng([seed, step]).integers(0, rays.shape[0], size)
        )
        return rays[idx], rgb[idx]

    return batch


def _loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.mean((model(batch[0]) - batch[1]) ** 2)


def train_model(
    model: RadianceField,
    spec: ModelSpec,
    train: TrainSpec,
    views: Any,
) -> dict[str, Any]:
    """Train ``model`` on ``views`` and evaluate on the held-out views.

    Returns the evaluated steps, the test PSNR curve, final PSNR on all and on foreground
    pixels, the renders ``(n_test, H, W, 3)``, parameter counts and the training seconds.
    """
    grid_ids = {id(p) for p in model.field.grid_parameters()}
    holder: dict[str, torch.optim.Optimizer] = {}

    def optimizer(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        groups = [
            {"params": [p for p in params if id(p) in grid_ids], "lr": train.lr_grid},
            {"params": [p for p in params if id(p) not in grid_ids], "lr": train.lr_net},
        ]
        holder["opt"] = torch.optim.Adam(groups, betas=(0.9, 0.99))
        return holder["opt"]

    schedule = dict(
        zip(
            train.upsample_steps,
            resolution_schedule(spec, len(train.upsample_steps)),
            strict=True,
        )
    )

    def before(step: int, closure: Any) -> None:
        res = schedule[step]
        old = model.field.grid_parameters()
        model.field.upsample(res if spec.kind == "strivec" else res[0])
        swap = dict(zip(map(id, old), model.field.grid_parameters(), strict=True))
        opt = holder["opt"]
        for p in old:
            opt.state.pop(p, None)
        for group in opt.param_groups:
            group["params"] = [swap.get(id(p), p) for p in group["params"]]

    fg = views.test_rgb.min(dim=1).values < 0.99

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        pred = m.render(views.test_rays)
        return {
            "test_psnr": psnr(pred, views.test_rgb),
            "test_psnr_fg": psnr(pred[fg], views.test_rgb[fg]),
        }

    result = fit(
        model,
        batches=_batches(views.train_rays, views.train_rgb, train.batch_rays, train.seed),
        loss=_loss,
        evaluate=evaluate,
        steps=train.steps,
        lr=train.lr_grid,
        eval_every=train.eval_every,
        before_step=before,
        hook_steps=set(train.upsample_steps),
        optimizer=optimizer,
    )
    model.eval()
    renders = model.render(views.test_rays).reshape(views.test_images.shape)
    counts = model.n_parameters()
    return {
        "steps": np.asarray(result.steps),
        "test_psnr_curve": np.asarray(result.evals["test_psnr"]),
        "test_psnr": result.evals["test_psnr"][-1],
        "test_psnr_fg": result.evals["test_psnr_fg"][-1],
        "train_loss": np.asarray(result.train_loss),
        "renders": renders.numpy().astype(np.float32),
        "field_params": counts["field"],
        "shader_params": counts["shader"],
        "train_seconds": result.seconds,
        "rays_per_second": train.steps * train.batch_rays / max(result.seconds, 1e-9),
        "n_tensors": list(getattr(model.field, "n_tensors", ())),
    }


def coarse_occupancy(
    box: Box,
    train: TrainSpec,
    views: Any,
    *,
    steps: int,
    resolution: int,
    threshold: float,
) -> tuple[torch.Tensor, float]:
    """The coarse occupancy pass: a short TensoRF-CP run (rank 8, 32-node lines), thresholded.

    A cell of the ``resolution^3`` grid is occupied where the trained density (scene units,
    ``softplus(feature + shift) * distance_scale``) exceeds ``threshold``, dilated by one
    cell. Returns the bool grid and the seconds it took.
    """
    start = time.perf_counter()
    spec = ModelSpec("cp", 8, 2, (32,), (32,))
    short = dataclasses.replace(train, steps=steps, upsample_steps=(), eval_every=max(steps, 1))
    model = build_model(spec, box, short)
    fit(
        model,
        batches=_batches(views.train_rays, views.train_rgb, short.batch_rays, short.seed + 99),
        loss=_loss,
        evaluate=lambda m: {},
        steps=steps,
        lr=short.lr_grid,
        eval_every=max(steps, 1),
        optimizer=lambda params, lr: torch.optim.Adam(
            [
                {"params": model.field.grid_parameters(), "lr": short.lr_grid},
                {
                    "params": [*model.field.network_parameters(), *model.shader.parameters()],
                    "lr": short.lr_net,
                },
            ],
            betas=(0.9, 0.99),
        ),
    )
    model.eval()
    occ = occupancy_from_density(
        lambda x: model.sigma(x) * model.distance_scale, box, resolution, threshold
    )
    return occ, time.perf_counter() - start
