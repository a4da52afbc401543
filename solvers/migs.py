"""Training multi-identity Gaussians (MIGS): one model, its test PSNR, an unseen identity.

:func:`train_run` trains one :class:`tensorsim.nn.gaussians.MultiIdentityGaussians` (the
per-identity baseline, CP or Tucker form) on the training images of a multi-identity problem
with :func:`solvers.steps.fit` (Adam with a peak learning rate per parameter block,
:class:`TrainingParams`, cosine decay to 0; batches of images drawn from the seed and the
step only), evaluates the mean test PSNR on unseen poses and views every ``eval_every`` steps,
then adds the unseen identity from its one image with :func:`solvers.gaussians.fit_identity`
(only its row, every shared factor frozen) and returns numbers, curves, renders and the final
state.

The problem comes in as data: a :class:`problems.gaussian_identities.Data` (or any object
with its attributes): ``problem`` (``params.n_identities``, ``params.n_gaussians``, the rows
``train`` (identity, pose, view), ``test`` (pose, view), ``unseen`` and ``unseen_train``),
the images ``train``, and the methods ``image(params, pose, view)``,
``test_psnr(params, identity)``, ``train_psnr(identity_params)``,
``unseen_train_psnr(params)`` and ``initial_params(rng)``.

References
----------
A. Chatziagapi, G. G. Chrysos, D. Samaras, "MIGS: Multi-Identity Gaussian Splatting via Tensor
Decomposition", arXiv 2407.07284 (ECCV 2024); B. Kerbl et al., "3D Gaussian Splatting for
Real-Time Radiance Field Rendering", arXiv 2308.04079 (the per-block learning rates).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from solvers.gaussians import fit_identity
from solvers.steps import fit
from tensorsim.config import Params, param
from tensorsim.nn.gaussians import MultiIdentityGaussians
from tensorsim.nn.state import state_to_arrays

__all__ = ["TrainingParams", "build_model", "model_label", "train_run"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingParams(Params):
    """Adam with per-block learning rates and cosine decay, and the unseen identity's fit.

    Attributes
    ----------
    lr_xyz, lr_scaling, lr_rotation, lr_color, lr_opacity
        Peak learning rate of each parameter block (3DGS's rates x 4 by default, opacity
        x 4 and colour x 40: a few hundred steps here against 3DGS's 30k).
    lr_factors
        Peak learning rate of the identity and per-Gaussian factors and the Tucker core
        (MIGS gives them the position rate; with so few steps they need more). Unused by
        the per-identity model.
    unseen_steps, unseen_lr
        Adam steps and rate for the unseen identity's row.
    seed
        Seed of the models' random parts (initial values) and of the batches.
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


def model_label(form: str, rank: Sequence[int]) -> str:
    """``"per_identity"``, ``"cp_r8"`` or ``"tucker_r4x12x10"``."""
    if form == "dense":
        return "per_identity"
    return f"{form}_r{'x'.join(str(r) for r in rank)}"


def build_model(data: Any, form: str, rank: Sequence[int], seed: int) -> MultiIdentityGaussians:
    """A fresh model of ``form`` and ``rank`` whose every identity is the problem's start.

    The starting point is ``data.initial_params`` drawn from ``[seed, 1]``; the model's own
    random parts from a generator seeded by ``seed``.
    """
    p = data.problem.params
    init = torch.as_tensor(data.initial_params(np.random.default_rng([seed, 1])))
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
    data: Any,
    form: str,
    rank: Sequence[int],
    training: TrainingParams,
    *,
    panels: Sequence[int],
) -> dict[str, Any]:
    """Train one model on the training images; evaluate; fit the unseen identity's row.

    Parameters
    ----------
    data
        The problem's data (see the module docstring).
    form, rank
        ``"dense"`` (per-identity; ``rank`` ignored), ``"cp"`` (``(R,)``) or ``"tucker"``
        (``(R_id, R_g, R_p)``).
    training
        Steps, batch, peak learning rates, evaluation cadence, the unseen identity's fit and
        the seed.
    panels
        Test images (indices into ``problem.test``) rendered for the plots.

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
    seed, lrs = training.seed, training.lrs()
    model = build_model(data, form, rank, seed)
    n_train = problem.train.shape[0]
    b = min(training.batch, n_train)

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
        steps=training.steps,
        lr=1.0,
        eval_every=training.eval_every,
        optimizer=optimizer,
    )
    with torch.no_grad():
        per_id = [data.test_psnr(model.identity_tensor(i), i) for i in range(n_i)]
        train_psnr = data.train_psnr(model.identity_tensor)

    pose, view = problem.unseen_train

    def unseen_loss(x: torch.Tensor) -> torch.Tensor:
        return torch.mean((data.image(x, pose, view) - data.unseen_train) ** 2)

    start = time.perf_counter()
    row, _ = fit_identity(model, unseen_loss, steps=training.unseen_steps, lr=training.unseen_lr)
    unseen_seconds = time.perf_counter() - start
    with torch.no_grad():
        x_new = model.identity_tensor(row=row)
        unseen_psnr = data.test_psnr(x_new, problem.unseen)
        unseen_train_psnr = data.unseen_train_psnr(x_new)
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
