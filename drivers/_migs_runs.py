"""The runs of ``drivers.migs``: the data on torch, one model's training, the unseen identity.

:class:`Data` renders the ground truth of a
:class:`problems.gaussian_identities.GaussianIdentities` once (training images, test images of
every identity, the unseen identity's image) and keeps the cameras. :func:`train_run` trains
one :class:`tensorsim.nn.gaussians.MultiIdentityGaussians` (per-identity, CP or Tucker) with
:func:`solvers.steps.fit` (Adam with per-block learning rates, cosine decay), evaluates test
PSNR on the unseen poses, then fits the unseen identity from its single image with
:func:`tensorsim.nn.gaussians.fit_identity` (only its row; all shared factors frozen) and
returns numbers, curves, renders and the final state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from problems.gaussian_identities import (
    GaussianIdentities,
    camera,
    initial_params,
    psnr,
    render,
)
from solvers.steps import fit
from tensorsim.nn.gaussians import MultiIdentityGaussians, fit_identity
from tensorsim.nn.state import state_to_arrays

__all__ = ["Data", "make_data", "model_label", "train_run"]

logger = logging.getLogger("drivers.migs")


@dataclass
class Data:
    """Ground-truth renders of a problem (float64 torch tensors).

    Attributes
    ----------
    problem
        The problem.
    cameras
        One :class:`tensorsim.nn.splat.Camera` per view.
    train
        Training images (n_train, H, W, 3), rows of ``problem.train``.
    test
        Test images (n_identities + 1, n_test, H, W, 3) (the last identity is the unseen one).
    unseen_train
        The unseen identity's one observed image (H, W, 3).
    """

    problem: GaussianIdentities
    cameras: list[Any]
    train: torch.Tensor
    test: torch.Tensor
    unseen_train: torch.Tensor

    def image(self, params: torch.Tensor, pose: int, view: int) -> torch.Tensor:
        """Render raw parameters (N_g, 14) in ``pose`` from ``view``."""
        return render(self.problem, params, int(pose), int(view), cam=self.cameras[int(view)])

    def test_psnr(self, params: torch.Tensor, identity: int) -> float:
        """Mean PSNR over the test images of ``identity``."""
        values = [
            psnr(self.image(params, pose, view).numpy(), self.test[identity, k].numpy())
            for k, (pose, view) in enumerate(self.problem.test)
        ]
        return float(np.mean(values))


def make_data(problem: GaussianIdentities) -> Data:
    """Render every ground-truth image of ``problem``."""
    cams = [camera(problem, v) for v in range(problem.views.shape[0])]
    truth = torch.as_tensor(problem.truth)
    with torch.no_grad():
        data = Data(problem, cams, torch.empty(0), torch.empty(0), torch.empty(0))
        train = torch.stack([data.image(truth[i], p, v) for i, p, v in problem.train])
        test = torch.stack(
            [
                torch.stack([data.image(truth[i], p, v) for p, v in problem.test])
                for i in range(truth.shape[0])
            ]
        )
        unseen = data.image(truth[problem.unseen], *problem.unseen_train)
    data.train, data.test, data.unseen_train = train, test, unseen
    return data


def model_label(form: str, rank: Sequence[int]) -> str:
    """``"per_identity"``, ``"cp_r8"`` or ``"tucker_r4x12x10"``."""
    if form == "dense":
        return "per_identity"
    return f"{form}_r{'x'.join(str(r) for r in rank)}"


def _build(data: Data, form: str, rank: Sequence[int], seed: int) -> MultiIdentityGaussians:
    p = data.problem.params
    init = torch.as_tensor(initial_params(data.problem, np.random.default_rng([seed, 1])))
    r: Any = None if form == "dense" else (rank[0] if form == "cp" else tuple(rank))
    return MultiIdentityGaussians(
        p.n_identities,
        p.n_gaussians,
        form=form,
        rank=r,
        init=init,
        generator=torch.Generator().manual_seed(seed),
    )


def train_run(
    data: Data,
    form: str,
    rank: Sequence[int],
    *,
    steps: int,
    batch: int,
    lrs: Mapping[str, float],
    eval_every: int,
    unseen_steps: int,
    unseen_lr: float,
    panels: Sequence[int],
    seed: int,
) -> dict[str, Any]:
    """Train one model on the training images; evaluate; fit the unseen identity's row.

    Parameters
    ----------
    data
        From :func:`make_data`.
    form, rank
        ``"dense"`` (per-identity; ``rank`` ignored), ``"cp"`` (``(R,)``) or ``"tucker"``
        (``(R_id, R_g, R_p)``).
    steps, batch
        Adam steps; training images per step (drawn from the seed and step only).
    lrs
        Peak learning rate per parameter block (cosine decay to 0).
    eval_every
        Steps between test evaluations.
    unseen_steps, unseen_lr
        Adam steps and rate of the unseen identity's fit.
    panels
        Test images (indices into ``problem.test``) rendered for the plots.
    seed
        Seed of the model's random part and of the batches.

    Returns
    -------
    dict
        ``params``, ``params_per_identity``, ``test_psnr`` (mean), ``test_psnr_identity``,
        ``train_psnr``, ``unseen_psnr``, ``unseen_train_psnr``, curve ``eval_test_psnr`` over
        ``steps`` (``eval_steps``), ``train_seconds``, ``unseen_seconds``, ``renders``
        (identity 0 and the unseen identity at ``panels``) and ``state`` (arrays, layout).
    """
    problem = data.problem
    n_i = problem.params.n_identities
    model = _build(data, form, rank, seed)
    n_train = problem.train.shape[0]
    b = min(batch, n_train)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.random.default_rng([seed, step]).choice(n_train, b, replace=False)
        return torch.as_tensor(idx), data.train[idx]

    def loss(m: MultiIdentityGaussians, bt: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        idx, targets = bt
        total = torch.zeros((), dtype=torch.float64)
        for k, target in zip(idx.tolist(), targets, strict=True):
            i, pose, view = problem.train[k]
            total = total + torch.mean(
                (data.image(m.identity_tensor(int(i)), pose, view) - target) ** 2
            )
        return total / len(idx)

    def evaluate(m: MultiIdentityGaussians) -> dict[str, float]:
        return {
            "test_psnr": float(
                np.mean([data.test_psnr(m.identity_tensor(i), i) for i in range(n_i)])
            )
        }

    def optimizer(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.param_groups({k: v * lr for k, v in lrs.items()}), eps=1e-15)

    result = fit(
        model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        steps=steps,
        lr=1.0,
        eval_every=eval_every,
        optimizer=optimizer,
    )
    with torch.no_grad():
        per_id = [data.test_psnr(model.identity_tensor(i), i) for i in range(n_i)]
        train_psnr = float(
            np.mean(
                [
                    psnr(
                        data.image(model.identity_tensor(int(i)), p, v).numpy(),
                        data.train[k].numpy(),
                    )
                    for k, (i, p, v) in enumerate(problem.train)
                ]
            )
        )

    pose, view = problem.unseen_train

    def unseen_loss(x: torch.Tensor) -> torch.Tensor:
        return torch.mean((data.image(x, pose, view) - data.unseen_train) ** 2)

    start = time.perf_counter()
    row, _ = fit_identity(model, unseen_loss, steps=unseen_steps, lr=unseen_lr)
    unseen_seconds = time.perf_counter() - start
    with torch.no_grad():
        x_new = model.identity_tensor(row=row)
        unseen_psnr = data.test_psnr(x_new, problem.unseen)
        unseen_train_psnr = psnr(data.image(x_new, pose, view).numpy(), data.unseen_train.numpy())
        renders = np.stack(
            [
                data.image(x, *problem.test[k]).numpy()
                for x in (model.identity_tensor(0), x_new)
                for k in panels
            ]
        )
    arrays, layout = state_to_arrays(model.state_dict())
    return {
        "params": model.count(),
        "params_per_identity": model.count(per_identity=True),
        "test_psnr": float(np.mean(per_id)),
        "test_psnr_identity": np.asarray(per_id),
        "train_psnr": train_psnr,
        "unseen_psnr": unseen_psnr,
        "unseen_train_psnr": unseen_train_psnr,
        "eval_steps": np.asarray(result.steps),
        "eval_test_psnr": np.asarray(result.evals["test_psnr"]),
        "train_seconds": result.seconds,
        "unseen_seconds": unseen_seconds,
        "renders": renders,
        "state": ({k: v.numpy() for k, v in arrays.items()}, layout),
    }
