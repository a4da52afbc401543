"""SMMF: square-matricized momentum factorization, a memory-light Adam-style optimizer.

Every parameter tensor (of any rank) is viewed as a near-square ``n x m`` matrix
(:func:`tensorsim.kron.near_square_shape` of its size). Both moments are kept between steps as
rank-1 nonnegative factors (row and column vectors), the first moment with its signs packed 1
bit per entry: ``2 (n + m)`` floats plus ``n m`` bits instead of Adam's ``2 n m`` floats.

References
----------
K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
Optimization", arXiv 2412.08894 (AAAI 2025).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from tensorsim.kron import near_square_shape
from tensorsim.optim._bits import pack_signbits, packed_size, sign_table

__all__ = ["SMMF", "rank1_nnmf", "smmf_matrix_shape"]

logger = logging.getLogger(__name__)

#: Parameters with at most this many entries are batched with others of the same matrix shape
#: when ``fused=None`` (larger ones gain nothing: stacking costs a copy, see docs/smmf.md).
FUSE_MAX_NUMEL = 1 << 16

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=1024)
def _matrix_shape(dims: tuple[int, ...]) -> tuple[int, int]:
    if any(d < 0 for d in dims):
        raise ValueError(f"shape: expected nonnegative sizes, got {dims}")
    return near_square_shape(max(math.prod(dims), 1))


def smmf_matrix_shape(shape: Iterable[int]) -> tuple[int, int]:
    """The ``(n, m)`` matrix SMMF views a tensor of ``shape`` as (``n >= m``, ``n m = size``).

    Examples
    --------
    >>> smmf_matrix_shape((768, 3072))
    (1536, 1536)
    >>> smmf_matrix_shape((3, 3, 64, 128))
    (288, 256)
    >>> smmf_matrix_shape((7,))
    (7, 1)
    """
    return _matrix_shape(tuple(int(d) for d in shape))


def _normalize(rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide the shorter of ``rows``/``cols`` by its total (``cols`` on a tie), batched."""
    if cols.shape[-1] <= rows.shape[-1]:
        total = cols.sum(-1, keepdim=True).clamp_min_(torch.finfo(cols.dtype).tiny)
        return rows, cols.div_(total)
    total = rows.sum(-1, keepdim=True).clamp_min_(torch.finfo(rows.dtype).tiny)
    return rows.div_(total), cols


def rank1_nnmf(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-1 nonnegative factorization of ``x`` (``(..., n, m)``, entries >= 0) by sums.

    Returns ``r = x 1`` and ``c = 1^T x`` with the shorter one divided by the total sum, so
    that ``r c^T`` (``r[..., :, None] * c[..., None, :]``) equals ``x`` whenever ``x`` is
    rank 1 (Adafactor's and SMMF's one-shot factorization; the optimum in generalized KL
    divergence). A zero matrix gives zero factors.

    Parameters
    ----------
    x
        Nonnegative real tensor with at least two axes; leading axes are a batch.

    Returns
    -------
    tuple of torch.Tensor
        Row factor ``(..., n)`` and column factor ``(..., m)``.

    References
    ----------
    K. Park, S. Lee, arXiv 2412.08894; N. Shazeer, M. Stern, arXiv 1804.04235.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise ValueError("x: expected a torch tensor with at least two axes")
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"x: expected a real floating-point tensor, got {x.dtype}")
    return _normalize(x.sum(-1), x.sum(-2))


def _factored_step(
    grad: torch.Tensor,
    state: dict[str, torch.Tensor],
    apply: Callable[[torch.Tensor, torch.Tensor, float], None],
    *,
    beta_m: float | None,
    beta_v: float,
    eps: float,
) -> None:
    """One SMMF step on a batch of matrices ``grad`` ``(k, n, m)``; ``state`` is batched.

    Decompresses, updates the moments with the full gradient, calls
    ``apply(numerator, denominator, scale)`` (the parameter step is
    ``-lr * scale * numerator / denominator``, from the full moments), then compresses into
    ``state``. Every pass over ``k n m`` entries is written out below; there are about 12.
    """
    k, n, m = grad.shape
    v = (state["row_v"] * beta_v).unsqueeze(-1) * state["col_v"].unsqueeze(-2)
    v.addcmul_(grad, grad, value=1.0 - beta_v)
    state["row_v"], state["col_v"] = _normalize(v.sum(-1), v.sum(-2))
    denom = v.sqrt_().add_(eps)
    if beta_m is None:
        apply(grad, denom, 1.0)
        return
    # mt = M / (1 - beta_m) saves a pass; the factors of |M| get the scale back below
    table = sign_table(grad.device, grad.dtype)
    signs = torch.nn.functional.embedding(state["sign"].long(), table).reshape(k, -1)
    mt = signs[:, : n * m].reshape(k, n, m) if signs.shape[-1] != n * m else signs
    mt = mt.view(k, n, m).mul_(state["row_m"].unsqueeze(-1))
    torch.addcmul(grad, mt, state["col_m"].unsqueeze(-2), value=beta_m / (1.0 - beta_m), out=mt)
    state["sign"] = pack_signbits(mt.view(k, n * m))
    apply(mt, denom, 1.0 - beta_m)
    mt.abs_()
    rows, cols = _normalize(mt.sum(-1), mt.sum(-2))
    (rows if cols.shape[-1] <= rows.shape[-1] else cols).mul_(1.0 - beta_m)
    state["row_m"], state["col_m"] = rows, cols


def _check_nonneg(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
    return float(value)


class SMMF(torch.optim.Optimizer):
    r"""Square-matricized momentum factorization (SMMF), arXiv 2412.08894.

    For each parameter with gradient ``G`` viewed as an ``n x m`` matrix
    (:func:`smmf_matrix_shape`), at step ``t``:

    1. decompress ``M^ = S * (r_M c_M^T)`` (``S`` the stored signs, +-1) and
       ``V^ = r_V c_V^T``;
    2. update with the full gradient, ``M = b1_t M^ + (1 - b1_t) G`` and
       ``V = b2_t V^ + (1 - b2_t) G * G``, where ``b1_t = beta1 * growth_rate**(t - 1)``
       and ``b2_t = 1 - t**decay_rate`` (so ``V = G * G`` at ``t = 1``; no bias correction);
    3. step ``theta <- theta (1 - lr wd) - lr M / (sqrt(V) + eps)`` (decoupled weight
       decay; ``weight_decay_mode="adam"`` adds ``wd theta`` to ``G`` instead);
    4. compress: ``S = sign(M)`` (1 bit per entry, packed in ``uint8``) and the rank-1
       nonnegative factors of ``|M|`` and ``V`` by row and column sums (:func:`rank1_nnmf`).

    Parameters
    ----------
    params
        Parameters or parameter groups, as for any ``torch.optim.Optimizer``. Real
        floating-point tensors on any device; the state lives on each parameter's device.
    lr
        Learning rate, ``>= 0``.
    beta1
        First-moment coefficient in ``[0, 1)``; ``None`` keeps no first moment (the update is
        ``G / (sqrt(V) + eps)`` and the state is ``n + m`` floats).
    eps
        Added to ``sqrt(V)``, ``>= 0``.
    weight_decay
        Decay coefficient ``wd >= 0`` (the reference's README value 5e-4 is the default).
    decay_rate
        Exponent ``c < 0`` of the second-moment schedule ``b2_t = 1 - t**c``; the paper
        recommends -0.5 for CNNs (default) and -0.8 for transformers.
    growth_rate
        Factor ``gamma`` in ``(0, 1]`` by which ``beta1`` decays every step.
    vector_reshape
        Factor 0-d and 1-d parameters too (square-matricized like the rest). With ``False``
        they keep dense Adam-style moments under the same schedules.
    weight_decay_mode
        ``"adamw"`` (decoupled, default) or ``"adam"`` (L2 term added to the gradient).
    fused
        Batch parameters of one matrix shape (same dtype, device, step) into one set of
        tensor operations: ``True`` for all such groups, ``False`` never, ``None`` (default)
        for parameters of at most :data:`FUSE_MAX_NUMEL` entries, where it pays.

    Raises
    ------
    ValueError
        For a negative ``lr``, ``eps`` or ``weight_decay``, ``beta1`` outside ``[0, 1)``,
        ``decay_rate >= 0``, ``growth_rate`` outside ``(0, 1]`` or an unknown
        ``weight_decay_mode``.
    TypeError
        For complex or non-floating-point parameters, and (in :meth:`step`) sparse gradients.

    Notes
    -----
    Float16/bfloat16 parameters are updated in float32 arithmetic and their factors are kept
    in float32 (the signs are bits in any case); other dtypes keep their own. The state of a
    parameter is ``step`` (an int) and the tensors ``row_v, col_v`` plus, with a first
    moment, ``row_m, col_m`` and ``sign`` (``ceil(n m / 8)`` bytes); unfactored vectors hold
    ``exp_avg_sq`` (and ``exp_avg``). :func:`tensorsim.optim.state_bytes` measures it,
    :func:`tensorsim.optim.smmf_state_bytes` predicts it.

    References
    ----------
    K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
    Optimization", arXiv 2412.08894 (AAAI 2025).

    Examples
    --------
    >>> import torch
    >>> from tensorsim.optim import SMMF
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = SMMF(model.parameters(), lr=1e-2)
    >>> model(torch.ones(3, 4)).sum().backward()
    >>> opt.step()
    >>> sorted(opt.state[model.weight])
    ['col_m', 'col_v', 'row_m', 'row_v', 'sign', 'step']
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        beta1: float | None = 0.9,
        eps: float = 1e-8,
        weight_decay: float = 5e-4,
        decay_rate: float = -0.5,
        growth_rate: float = 0.999,
        vector_reshape: bool = True,
        weight_decay_mode: str = "adamw",
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "beta1": beta1,
            "eps": eps,
            "weight_decay": weight_decay,
            "decay_rate": decay_rate,
            "growth_rate": growth_rate,
            "vector_reshape": vector_reshape,
            "weight_decay_mode": weight_decay_mode,
            "fused": fused,
        }
        self._check_group(defaults)
        super().__init__(params, defaults)

    @staticmethod
    def _check_group(group: dict[str, Any]) -> None:
        _check_nonneg("lr", group["lr"])
        _check_nonneg("eps", group["eps"])
        _check_nonneg("weight_decay", group["weight_decay"])
        beta1 = group["beta1"]
        if beta1 is not None and (
            isinstance(beta1, bool) or not isinstance(beta1, int | float) or not 0 <= beta1 < 1
        ):
            raise ValueError(f"beta1: expected None or a number in [0, 1), got {beta1!r}")
        c = group["decay_rate"]
        if isinstance(c, bool) or not isinstance(c, int | float) or not c < 0:
            raise ValueError(f"decay_rate: expected a negative number, got {c!r}")
        gamma = group["growth_rate"]
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 < gamma <= 1:
            raise ValueError(f"growth_rate: expected a number in (0, 1], got {gamma!r}")
        if group["weight_decay_mode"] not in ("adamw", "adam"):
            raise ValueError(
                "weight_decay_mode: expected 'adamw' or 'adam', "
                f"got {group['weight_decay_mode']!r}"
            )
        if group["fused"] not in (None, True, False):
            raise ValueError(f"fused: expected None, True or False, got {group['fused']!r}")
        if not isinstance(group["vector_reshape"], bool):
            raise TypeError(
                f"vector_reshape: expected a bool, got {type(group['vector_reshape']).__name__}"
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group after checking its parameters and options (see class)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._check_group(group)
            for p in group["params"]:
                if p.is_complex() or not p.is_floating_point():
                    raise TypeError(
                        f"params: expected real floating-point parameters, got {p.dtype}"
                    )
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise

    def _factored(self, p: torch.Tensor, group: dict[str, Any]) -> bool:
        return p.ndim >= 2 or group["vector_reshape"]

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        dtype = torch.float32 if p.dtype in _LOW_PRECISION else p.dtype
        zeros = {"dtype": dtype, "device": p.device}
        state: dict[str, Any] = {"step": 0}
        if self._factored(p, group):
            n, m = smmf_matrix_shape(p.shape)
            state["row_v"] = torch.zeros(n, **zeros)
            state["col_v"] = torch.zeros(m, **zeros)
            if group["beta1"] is not None:
                state["row_m"] = torch.zeros(n, **zeros)
                state["col_m"] = torch.zeros(m, **zeros)
                state["sign"] = torch.zeros(packed_size(n * m), dtype=torch.uint8, device=p.device)
        else:
            state["exp_avg_sq"] = torch.zeros(p.shape, **zeros)
            if group["beta1"] is not None:
                state["exp_avg"] = torch.zeros(p.shape, **zeros)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one optimization step.

        Parameters
        ----------
        closure
            Optional callable that re-evaluates the model and returns the loss.

        Returns
        -------
        float or None
            The closure's loss, if a closure was given.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            batches: dict[tuple, list[tuple[torch.Tensor, torch.Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None or p.numel() == 0:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise TypeError(
                        "params: SMMF does not support sparse gradients "
                        f"(parameter of shape {tuple(p.shape)})"
                    )
                if p not in self.state or not self.state[p]:
                    self.state[p] = self._init_state(p, group)
                state = self.state[p]
                state["step"] += 1
                compute = torch.float32 if p.dtype in _LOW_PRECISION else p.dtype
                grad = grad.to(compute)
                if group["weight_decay"] and group["weight_decay_mode"] == "adam":
                    grad = grad.add(p.to(compute), alpha=group["weight_decay"])
                if not self._factored(p, group):
                    self._dense_step(p, grad, state, group)
                    continue
                n, m = smmf_matrix_shape(p.shape)
                fuse = group["fused"]
                if fuse is None:
                    fuse = p.numel() <= FUSE_MAX_NUMEL
                key = (n, m, p.device, compute, state["step"]) if fuse else (id(p),)
                batches.setdefault(key, []).append((p, grad.reshape(1, n, m)))
            for items in batches.values():
                self._factored_batch(items, group)
        return loss

    def _schedule(self, step: int, group: dict[str, Any]) -> tuple[float | None, float]:
        beta1 = group["beta1"]
        beta_m = None if beta1 is None else beta1 * group["growth_rate"] ** (step - 1)
        beta_v = 1.0 - step ** group["decay_rate"]
        return beta_m, beta_v

    def _apply(
        self,
        p: torch.Tensor,
        num: torch.Tensor,
        denom: torch.Tensor,
        scale: float,
        group: dict[str, Any],
    ) -> None:
        """``p <- p (1 - lr wd) - lr scale num / denom`` (decay only in ``"adamw"`` mode)."""
        lr = group["lr"]
        decay = group["weight_decay"] if group["weight_decay_mode"] == "adamw" else 0.0
        target = p.to(num.dtype) if p.dtype in _LOW_PRECISION else p
        if decay:
            target.mul_(1.0 - lr * decay)
        target.addcdiv_(num.view(p.shape), denom.view(p.shape), value=-lr * scale)
        if target is not p:
            p.copy_(target)

    def _dense_step(
        self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict
    ) -> None:
        beta_m, beta_v = self._schedule(state["step"], group)
        v = state["exp_avg_sq"]
        v.mul_(beta_v).addcmul_(grad, grad, value=1.0 - beta_v)
        denom = v.sqrt().add_(group["eps"])
        if beta_m is None:
            self._apply(p, grad, denom, 1.0, group)
        else:
            state["exp_avg"].mul_(beta_m).add_(grad, alpha=1.0 - beta_m)
            self._apply(p, state["exp_avg"], denom, 1.0, group)

    def _factored_batch(self, items: list[tuple[torch.Tensor, torch.Tensor]], group) -> None:
        params = [p for p, _ in items]
        states = [self.state[p] for p in params]
        beta_m, beta_v = self._schedule(states[0]["step"], group)
        keys = [k for k in ("row_v", "col_v", "row_m", "col_m", "sign") if k in states[0]]
        if len(items) == 1:
            grad = items[0][1]
            batch = {k: states[0][k].unsqueeze(0) for k in keys}
        else:
            grad = torch.cat([g for _, g in items])
            batch = {k: torch.stack([s[k] for s in states]) for k in keys}

        def apply(num: torch.Tensor, denom: torch.Tensor, scale: float) -> None:
            if len(params) == 1 or params[0].dtype in _LOW_PRECISION:
                for i, p in enumerate(params):
                    self._apply(p, num[i], denom[i], scale, group)
                return
            lr = group["lr"]
            if group["weight_decay"] and group["weight_decay_mode"] == "adamw":
                torch._foreach_mul_(params, 1.0 - lr * group["weight_decay"])
            nums = [u.view(p.shape) for u, p in zip(num.unbind(0), params, strict=True)]
            dens = [u.view(p.shape) for u, p in zip(denom.unbind(0), params, strict=True)]
            torch._foreach_addcdiv_(params, nums, dens, value=-lr * scale)

        _factored_step(grad, batch, apply, beta_m=beta_m, beta_v=beta_v, eps=group["eps"])
        for k in keys:
            for state, value in zip(states, batch[k].unbind(0), strict=True):
                state[k] = value

    def moments(self, p: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The moments ``(M, V)`` of parameter ``p`` decompressed, in ``p``'s shape.

        ``M`` is ``None`` without a first moment. Both are zero before ``p``'s first step.
        For inspection and tests: the step itself never builds them apart from the update.

        Parameters
        ----------
        p
            A parameter of this optimizer.
        """
        group = next((g for g in self.param_groups if any(q is p for q in g["params"])), None)
        if group is None:
            raise ValueError("p: not a parameter of this optimizer")
        state = self.state[p] if self.state.get(p) else self._init_state(p, group)
        if not self._factored(p, group):
            return state.get("exp_avg"), state["exp_avg_sq"]
        v = torch.outer(state["row_v"], state["col_v"]).reshape(p.shape)
        if "sign" not in state:
            return None, v
        n, m = smmf_matrix_shape(p.shape)
        table = sign_table(p.device, state["row_m"].dtype)
        signs = torch.nn.functional.embedding(state["sign"].long(), table).reshape(-1)[: n * m]
        mag = torch.outer(state["row_m"], state["col_m"]).reshape(-1)
        return (signs * mag).reshape(p.shape), v

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`, keeping the saved dtypes of the state.

        ``torch.optim.Optimizer.load_state_dict`` casts floating state to the parameter's
        dtype; SMMF keeps float32 factors for float16/bfloat16 parameters, so the saved
        tensors are put back as they were (moved to the parameter's device), bit for bit.
        """
        super().load_state_dict(state_dict)
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        by_id = dict(zip(ids, params, strict=True))
        for pid, saved in state_dict["state"].items():
            p = by_id[pid]
            for k, value in saved.items():
                if isinstance(value, torch.Tensor):
                    self.state[p][k] = value.to(device=p.device, copy=True)
