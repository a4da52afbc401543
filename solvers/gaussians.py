"""Fitting an unseen identity of multi-identity Gaussians (MIGS, arXiv 2407.07284).

:func:`fit_identity` adds an identity to a trained
:class:`tensorsim.nn.gaussians.MultiIdentityGaussians` from its images alone: only a new row
of the identity factor (for the per-identity baseline, a new ``(N_g, M)`` block) is
optimised by Adam, every shared factor frozen, on a loss of the identity's raw parameters
(e.g. a photometric loss of its renders). The loop is :class:`solvers.training.Trainer` (one
epoch of ``steps`` updates).

References
----------
A. Chatziagapi, G. G. Chrysos, D. Samaras, "MIGS: Multi-Identity Gaussian Splatting via Tensor
Decomposition", arXiv 2407.07284 (ECCV 2024).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable

import torch

from solvers.callbacks import LambdaCallback, LossWindow
from solvers.training import Trainer
from tensorsim._checks import check_int
from tensorsim.nn.gaussians import MultiIdentityGaussians

__all__ = ["fit_identity"]

logger = logging.getLogger(__name__)


class _Row(torch.nn.Module):
    """Holds the optimised row as the trainer's model."""

    def __init__(self, row: torch.nn.Parameter) -> None:
        super().__init__()
        self.row = row


def fit_identity(
    model: MultiIdentityGaussians,
    loss: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int,
    lr: float,
    row: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Fit an unseen identity's row by Adam, every shared factor frozen.

    Parameters
    ----------
    model
        A trained :class:`~tensorsim.nn.gaussians.MultiIdentityGaussians`; left unchanged.
    loss
        ``loss(params)`` -> scalar, for the identity's raw parameters (N_g, M) (e.g. a
        photometric loss of renders of :func:`tensorsim.nn.gaussians.activate` of them).
    steps
        Adam steps (``>= 0``).
    lr
        Learning rate (``> 0``).
    row
        Starting row; None:
        :meth:`~tensorsim.nn.gaussians.MultiIdentityGaussians.new_identity_row`.

    Returns
    -------
    row : torch.Tensor
        The fitted row (detached): R numbers for CP/Tucker, (N_g, M) for dense.
    losses : list of float
        The loss before each step and after the last.

    Raises
    ------
    TypeError, ValueError
        On a wrong model, bad ``steps`` or ``lr``; FloatingPointError on a non-finite loss.
    """
    if not isinstance(model, MultiIdentityGaussians):
        raise TypeError(f"model: expected a MultiIdentityGaussians, got {type(model).__name__}")
    check_int("steps", steps, 0)
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    start = model.new_identity_row() if row is None else row.detach().clone()
    x = torch.nn.Parameter(start)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    losses = LossWindow()

    def last_loss(trainer: Trainer) -> None:
        value = loss(model.identity_tensor(row=x))
        if not torch.isfinite(value):
            raise FloatingPointError(f"fit_identity: loss is {float(value)} at step {steps}")
        losses.values.append(float(value.detach()))

    try:
        opt = torch.optim.Adam([x], lr=lr)
        trainer = Trainer(
            _Row(x),
            opt,
            lambda net, batch: loss(model.identity_tensor(row=net.row)),
            callbacks=[losses, LambdaCallback(on_fit_end=last_loss)],
        )
        trainer.fit(lambda epoch: itertools.repeat(None, steps), epochs=1)
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return x.detach(), losses.values
