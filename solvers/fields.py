"""Training radiance fields coarse to fine, and the coarse occupancy pass of Strivec.

:func:`train_model` fits a :class:`tensorsim.nn.render.RadianceField` (built by
:func:`tensorsim.nn.models.fields.build_model`) to the training rays of a set of views with
:func:`solvers.steps.fit`: Adam (betas 0.9, 0.99) with the factor grids at ``lr_grid`` and
the networks (basis matrices, shader) at ``lr_net``, cosine decay to 0, random batches of
rays drawn from the seed and the step only. At the steps of ``upsample_steps`` (a
:class:`~solvers.callbacks.StepHooks` hook of the :class:`~solvers.training.Trainer`) the
factors are resampled to the next resolution of
:func:`~tensorsim.nn.models.fields.resolution_schedule`: the grids become new parameters, so
the optimizer's groups get them in place of the old ones and the old grids' Adam moments are
dropped. The held-out PSNR (all pixels, and the foreground: pixels darker than 0.99 in some
channel) is evaluated every ``eval_every`` steps.

:func:`coarse_occupancy` places Strivec's local tensors: a short TensoRF-CP run (rank 8,
32-node lines) whose density (scene units) is thresholded on a grid and dilated by one cell.

The views come in as data (``train_rays``, ``train_rgb``, ``test_rays``, ``test_rgb``,
``test_images``; e.g. :func:`problems.scenes.make_views`).

References
----------
arXiv 2203.09517 (TensoRF), arXiv 2307.13226 (Strivec).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from solvers.steps import fit
from tensorsim.config import ConfigError, Params, param
from tensorsim.nn.fields import Box
from tensorsim.nn.fields.strivec import occupancy_from_density
from tensorsim.nn.models.fields import ModelSpec, build_model, resolution_schedule
from tensorsim.nn.render import RadianceField, psnr

__all__ = ["OccupancyParams", "TrainingParams", "coarse_occupancy", "train_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingParams(Params):
    """Training of a radiance field (the shader and ray sampling included).

    Attributes
    ----------
    upsample_steps
        Steps before which the factors are upsampled (increasing, below ``steps``).
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

    def __post_init__(self) -> None:
        super().__post_init__()
        up = self.upsample_steps
        if list(up) != sorted(set(up)) or (up and up[-1] >= self.steps):
            raise ConfigError(
                "config key 'upsample_steps': expected increasing steps below "
                f"steps={self.steps}, got {list(up)}"
            )

    def shading(self) -> dict[str, int]:
        """The shader and sampling settings of every model (:class:`ModelSpec` fields)."""
        return {
            "app_dim": self.app_dim,
            "shader_hidden": self.shader_hidden,
            "n_samples": self.n_samples,
        }


@dataclass(frozen=True)
class OccupancyParams(Params):
    """The coarse occupancy pass that places Strivec's local tensors.

    Attributes
    ----------
    threshold
        Density (scene units) above which a cell is occupied (then dilated by one cell).
    """

    steps: int = param(200, "steps of the coarse CP run", ge=1)
    resolution: int = param(32, "cells per axis", ge=2)
    threshold: float = param(0.5, "occupied above this density", gt=0.0)


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
    model: RadianceField, spec: ModelSpec, train: TrainingParams, views: Any
) -> dict[str, Any]:
    """Train ``model`` (of ``spec``) on ``views`` and evaluate on the held-out views.

    Returns
    -------
    dict
        ``steps`` (evaluated), ``test_psnr_curve``, the final ``test_psnr`` and
        ``test_psnr_fg`` (foreground pixels), ``train_loss``, ``renders``
        ``(n_test, H, W, 3)`` float32, ``field_params``, ``shader_params``,
        ``train_seconds``, ``rays_per_second`` and ``n_tensors`` (Strivec: local tensors per
        scale).
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

    up = train.upsample_steps
    schedule = dict(zip(up, resolution_schedule(spec, len(up)), strict=True))

    def upsample(step: int, closure: Any) -> None:
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
        before_step=upsample,
        hook_steps=set(up),
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
    box: Box, train: TrainingParams, views: Any, occupancy: OccupancyParams
) -> tuple[torch.Tensor, float]:
    """The coarse occupancy pass: a short TensoRF-CP run (rank 8, 32-node lines), thresholded.

    The run has ``occupancy.steps`` steps with the rates, shader and sampling of ``train``
    (batches seeded by ``train.seed + 99``). A cell of the ``occupancy.resolution^3`` grid is
    occupied where the trained density (scene units, ``softplus(feature + shift) *
    distance_scale``) exceeds ``occupancy.threshold``, dilated by one cell. Returns the bool
    grid and the seconds it took.
    """
    start = time.perf_counter()
    steps = occupancy.steps
    spec = ModelSpec("cp", 8, 2, (32,), (32,), **train.shading())
    model = build_model(spec, box, seed=train.seed)
    fit(
        model,
        batches=_batches(views.train_rays, views.train_rgb, train.batch_rays, train.seed + 99),
        loss=_loss,
        evaluate=lambda m: {},
        steps=steps,
        lr=train.lr_grid,
        eval_every=max(steps, 1),
        optimizer=lambda params, lr: torch.optim.Adam(
            [
                {"params": model.field.grid_parameters(), "lr": train.lr_grid},
                {
                    "params": [*model.field.network_parameters(), *model.shader.parameters()],
                    "lr": train.lr_net,
                },
            ],
            betas=(0.9, 0.99),
        ),
    )
    model.eval()
    occ = occupancy_from_density(
        lambda x: model.sigma(x) * model.distance_scale, box, occupancy.resolution,
        occupancy.threshold,
    )  # fmt: skip
    return occ, time.perf_counter() - start
