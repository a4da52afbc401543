"""Nonnegative CP decomposition (NTF): HALS, multiplicative updates and projected gradient.

One entry point, :func:`nonneg_cp`, three solvers that share the CP kernels of
:mod:`tensorsim.decomp._cpkernels` (MTTKRP and Gram products) with :func:`cp_als`:

- ``"hals"`` (default): exact nonnegative least-squares update of one factor column at a
  time, a few inner sweeps per mode (Cichocki & Phan 2009; Gillis & Glineur 2012);
- ``"mu"``: multiplicative updates, for masks (missing data) and the KL loss (Lee & Seung);
- ``"projected"``: block projected gradient with backtracking on a torch autograd
  objective, for penalties HALS and MU cannot take (orthogonality, any callable).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tensorsim._array_api import Array, array_namespace, backend_name, device, to_float
from tensorsim._checks import check_finite, check_nonempty
from tensorsim.decomp._cpkernels import (
    SparseCOO,
    SweepMTTKRP,
    as_sparse,
    cp_norm2,
    hadamard,
    mttkrp,
    relative_error_from_inner,
    sparse_cp_values,
)
from tensorsim.decomp.cp import CP, cp_to_dense
from tensorsim.linalg import truncated_svd
from tensorsim.tensor_ops import unfold

__all__ = ["nonneg_cp"]

logger = logging.getLogger(__name__)

METHODS = ("hals", "mu", "projected")
LOSSES = ("l2", "kl")
#: Below this relative error the Gram-based error formula loses digits; form the residual.
_EXACT_ERROR_BELOW = 1e-4
#: HALS inner sweeps stop when a sweep changes the factor by less than this fraction of the
#: change of the first sweep (Gillis & Glineur 2012 use 0.01).
_INNER_STOP = 1e-2
#: Extrapolation of HALS (Ang, Cohen, Hien, Gillis 2020): first beta, growth of beta and of
#: its cap after an accepted sweep, division of beta after an undone one.
_BETA0, _GAMMA, _GAMMA_MAX, _ETA = 0.5, 1.05, 1.01, 1.5


def nonneg_cp(
    x: Array | tuple[Array, Array],
    rank: int,
    *,
    method: str = "hals",
    mask: Array | None = None,
    loss: str = "l2",
    l1: float | Sequence[float] = 0.0,
    l2: float | Sequence[float] = 0.0,
    ortho: Mapping[int, float] | None = None,
    penalty: Callable[[list[Array]], Array] | None = None,
    fixed_modes: Sequence[int] = (),
    nn_modes: Sequence[int] | None = None,
    init: str | CP | tuple[Array, Sequence[Array]] = "random",
    shape: Sequence[int] | None = None,
    tol: float = 1e-8,
    max_iter: int = 500,
    inner_sweeps: int = 5,
    extrapolate: bool = True,
    rng: np.random.Generator | int | None = None,
    callback: Callable[[int, float], Any] | None = None,
) -> CP:
    r"""Fit a nonnegative rank-``rank`` CP decomposition (nonnegative tensor factorization).

    Minimizes, over factors ``A_n >= 0`` (modes in ``nn_modes``),

    .. math::

        \tfrac12 \|W \ast (X - [\![A_0, \dots, A_{d-1}]\!])\|_F^2
        + \sum_n \ell_{1,n} \textstyle\sum A_n + \tfrac12 \sum_n \ell_{2,n} \|A_n\|_F^2
        + \sum_n o_n \|\bar A_n^T \bar A_n - I\|_F^2 + \text{penalty}(A)

    with ``W`` the mask (all ones by default) and :math:`\bar A_n` the column-normalized
    factor; with ``loss="kl"`` the first term is the generalized Kullback-Leibler divergence
    :math:`\sum W (X \log(X/\hat X) - X + \hat X)`.

    Parameters
    ----------
    x
        Dense real tensor with at least two modes, or ``(indices, values)`` of its stored
        entries (indices ``(nnz, d)``, values ``(nnz,)``; the other entries are zero), which
        uses the sparse MTTKRP (``method`` ``"hals"`` or ``"mu"``, no mask).
    rank
        Number of rank-one terms, an integer >= 1.
    method
        ``"hals"`` (default; ``loss="l2"`` without mask), ``"mu"`` (any loss, masks) or
        ``"projected"`` (any loss, masks, ``ortho`` and ``penalty``; needs torch tensors).
    mask
        Boolean array of ``x``'s shape, true on observed cells (dense ``x`` only). Masked cells
        may hold NaN; the error is computed on observed cells only.
    loss
        ``"l2"`` (least squares) or ``"kl"`` (generalized KL divergence, for counts).
    l1, l2
        Lasso and ridge coefficients, one number for every mode or one per mode (l1 only on
        nonnegative modes).
    ortho
        ``{mode: coefficient}``: scale-invariant orthogonality penalty on those modes (as in
        PANTHER, arXiv:2012.08580); ``"projected"`` only.
    penalty
        Callable ``penalty(factors) -> scalar`` added to the objective, differentiable by
        torch autograd; ``"projected"`` only.
    fixed_modes
        Modes whose factors keep their initial value (give them through ``init``).
    nn_modes
        Modes constrained to be nonnegative (default: all). ``"mu"`` needs all.
    init
        ``"random"`` (uniform entries, default), ``"svd"`` (absolute values of the leading
        singular vectors of each unfolding; dense ``x``), a :class:`CP` or a
        ``(weights, factors)`` pair. Random and SVD starts are scaled to the best
        least-squares multiple of themselves.
    shape
        Shape of a tensor given as ``(indices, values)`` (default: largest index + 1).
    tol
        Stop when the error changes by less than ``tol`` between iterations.
    max_iter
        Largest number of outer iterations (sweeps over all modes).
    inner_sweeps
        HALS: largest number of column sweeps per mode update; the sweeps stop early when
        a sweep changes the factor by less than 1% of the first one (Gillis & Glineur 2012).
    extrapolate
        HALS: start each sweep from an extrapolation of the last two iterates, undoing
        sweeps that raise the error (heuristic extrapolation with restarts, Ang et al.
        2020); the recorded errors still never increase.
    rng
        Generator or seed for the random initialization.
    callback
        Called as ``callback(iteration, error)`` after every iteration.

    Returns
    -------
    CP
        Factors with unit-norm columns (a column that became zero stays zero and gets weight
        zero), the weights, and ``errors``: per iteration the relative Frobenius error on
        observed cells, ``||W*(X - X_hat)|| / ||W*X||``, or for ``loss="kl"`` the divergence
        divided by ``sum(W*X)``.

    Raises
    ------
    ValueError
        Bad arguments, with the argument's name: a rank < 1, a mask of the wrong shape, NaN
        or Inf in observed cells, negative observed entries where the method needs ``x >= 0``
        (``"mu"`` and ``loss="kl"``; the message gives their number and the first index),
        a slice with no observed cell, an all-zero tensor, a mode of length 0, a NaN or Inf
        in ``init``, an unsupported combination.
    TypeError
        A non-floating ``x`` or a mask that is not boolean.
    NotImplementedError
        ``method="projected"`` on a backend other than torch (it needs autograd).
    FloatingPointError
        If the fit produces NaN or Inf (the message gives the iteration).

    Notes
    -----
    All-zero slices of ``x`` are accepted: the matching factor rows become zero. The
    epsilon of ``"mu"`` is the machine epsilon of ``x``'s dtype, used as a floor of the
    numerator and the denominator of each update, as in TensorLy's ``non_negative_parafac``,
    so both give the same iterates from the same start (without a mask: with one, TensorLy
    imputes the missing cells, while this function uses the weighted update).

    References
    ----------
    A. Cichocki, A.-H. Phan, IEICE Trans. Fundamentals E92-A (2009) 708 (HALS).
    N. Gillis, F. Glineur, Neural Comput. 24 (2012) 1085, arXiv:1107.5194 (inner sweeps).
    A. M. S. Ang, J. E. Cohen, L. T. K. Hien, N. Gillis, arXiv:2001.04321 (extrapolation).
    D. D. Lee, H. S. Seung, NIPS 13 (2001) 556 (multiplicative updates).
    E. C. Chi, T. G. Kolda, SIAM J. Matrix Anal. Appl. 33 (2012) 1272, arXiv:1112.2414 (KL).
    J. Luo, Y. Mao et al., AAAI (2021), arXiv:2012.08580 (PANTHER orthogonality penalty).
    """
    p = _Problem.build(
        x, rank, method, mask, loss, l1, l2, ortho, penalty, fixed_modes, nn_modes, shape
    )
    if not tol >= 0:
        raise ValueError(f"tol: expected a float >= 0, got {tol}")
    for name, val in (("max_iter", max_iter), ("inner_sweeps", inner_sweeps)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {val!r}")
    factors = _start(p, init, np.random.default_rng(rng))
    if method == "hals":
        factors, errors = _hals(p, factors, tol, max_iter, inner_sweeps, extrapolate, callback)
    elif method == "mu":
        factors, errors = _mu(p, factors, tol, max_iter, callback)
    else:
        factors, errors = _projected(p, factors, tol, max_iter, callback)
    weights, factors = _normalize(p.xp, factors)
    return CP(weights, tuple(factors), tuple(errors))


class _Problem:
    """Checked data of one fit: the tensor (dense with masked cells zeroed, or sparse)."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    @classmethod
    def build(
        cls, x, rank, method, mask, loss, l1, l2, ortho, penalty, fixed_modes, nn_modes, shape
    ) -> _Problem:
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank: expected an integer >= 1, got {rank!r}")
        sparse = isinstance(x, tuple | list)
        if sparse:
            x = as_sparse(x, shape)
            xp = array_namespace(x.values)
            data = x.values
        else:
            xp = array_namespace(x)
            if not xp.isdtype(x.dtype, "real floating"):
                raise TypeError(f"x: expected a real floating-point tensor, got {x.dtype}")
            if x.ndim < 2:
                raise ValueError(f"x: expected at least 2 modes, got shape {tuple(x.shape)}")
            check_nonempty("x", x)
            data = x
        d = x.ndim
        dims = tuple(int(s) for s in x.shape)
        if method == "hals" and loss == "kl":
            raise ValueError("loss: method='hals' fits loss='l2' only; use method='mu' for 'kl'")
        if mask is not None:
            if sparse:
                raise ValueError("mask: not supported for a tensor given as (indices, values)")
            if method == "hals":
                raise ValueError("mask: method='hals' takes no mask; use method='mu'")
            mask = _check_mask(xp, mask, x)
        if sparse and method == "projected":
            raise ValueError("x: method='projected' needs a dense tensor")
        if method == "projected" and backend_name(xp) != "torch":
            raise NotImplementedError(
                f"method='projected' needs torch autograd; got a {backend_name(xp)!r} tensor "
                "(convert with torch.as_tensor, or use method='hals' or 'mu')"
            )
        # observed cells must be finite
        obs = xp.isfinite(data) if mask is None else (mask & xp.isfinite(data)) | ~mask
        if not bool(xp.all(obs)):
            where = "cells" if mask is None else "observed cells (mask true)"
            raise ValueError(
                f"x: {_count_and_first(xp, ~obs, x if sparse else None)} NaN/Inf entries in "
                f"{where}; mark missing cells with mask= (method='mu' or 'projected')"
            )
        if mask is not None:
            data = xp.where(mask, data, xp.zeros_like(data))
        if method == "mu" or loss == "kl":
            neg = data < 0
            if bool(xp.any(neg)):
                raise ValueError(
                    f"x: {_count_and_first(xp, neg, x if sparse else None)} negative entries "
                    f"(minimum {to_float(xp.min(data)):.3g}); "
                    f"{'loss=kl' if loss == 'kl' else 'method=mu'} needs x >= 0 on observed cells"
                )
        norm_x = to_float(xp.linalg.vector_norm(data))
        if norm_x == 0.0:
            raise ValueError("x: the tensor (its observed cells) is zero; nothing to fit")
        nn = set(range(d)) if nn_modes is None else _modes(nn_modes, d, "nn_modes")
        fixed = _modes(fixed_modes, d, "fixed_modes")
        if len(fixed) == d:
            raise ValueError("fixed_modes: every mode is fixed; nothing to fit")
        if method == "mu" and len(nn) < d:
            raise ValueError("nn_modes: method='mu' needs every mode nonnegative")
        l1s = _per_mode(l1, d, "l1")
        l2s = _per_mode(l2, d, "l2")
        for n in range(d):
            if l1s[n] > 0 and n not in nn:
                raise ValueError(f"l1: mode {n} is not in nn_modes; l1 needs a nonnegative mode")
        ortho = dict(ortho or {})
        for n, c in ortho.items():
            if n not in range(d) or not c >= 0:
                raise ValueError(f"ortho: expected {{mode: coefficient >= 0}}, got {ortho}")
        if (ortho or penalty is not None) and method != "projected":
            raise ValueError("ortho/penalty: only method='projected' takes them")
        if penalty is not None and not callable(penalty):
            raise TypeError("penalty: expected a callable penalty(factors) -> scalar")
        return cls(
            xp=xp,
            x=x,
            data=data,
            sparse=sparse,
            mask=mask,
            shape=dims,
            d=d,
            rank=rank,
            method=method,
            loss=loss,
            l1=l1s,
            l2=l2s,
            ortho=ortho,
            penalty=penalty,
            fixed=fixed,
            nn=nn,
            norm_x=norm_x,
            sum_x=to_float(xp.sum(data)),
            dtype=data.dtype,
            device=device(data),
            penalized=any(l1s) or any(l2s),
        )


def _check_mask(xp: ModuleType, mask: Array, x: Array) -> Array:
    if tuple(mask.shape) != tuple(x.shape):
        raise ValueError(
            f"mask: expected the shape of x {tuple(x.shape)}, got {tuple(mask.shape)}"
        )
    if array_namespace(mask) is not xp:
        raise TypeError("mask: expected an array of the same backend as x")
    if mask.dtype != xp.bool:
        raise TypeError(f"mask: expected a boolean array (true = observed), got {mask.dtype}")
    m = xp.astype(mask, x.dtype)
    for n in range(x.ndim):
        per = xp.sum(m, axis=tuple(k for k in range(x.ndim) if k != n))
        empty = per == 0
        if bool(xp.any(empty)):
            idx = [int(to_float(i)) for i in xp.nonzero(empty)[0][:5]]
            raise ValueError(
                f"mask: mode {n} has {int(to_float(xp.sum(xp.astype(empty, x.dtype))))} slices "
                f"with no observed cell (indices {idx}...); drop them from x"
            )
    return mask


def _count_and_first(xp: ModuleType, bad: Array, sparse: SparseCOO | None) -> str:
    count = int(to_float(xp.sum(xp.astype(bad, xp.int64))))
    first = [int(to_float(i[0])) for i in xp.nonzero(bad)]
    if sparse is not None:
        first = [int(to_float(v)) for v in sparse.indices[first[0], :]]
    return f"{count} (first at index {tuple(first)})"


def _modes(modes: Sequence[int], d: int, name: str) -> set[int]:
    out = set()
    for n in modes:
        if isinstance(n, bool) or not isinstance(n, int) or not -d <= n < d:
            raise ValueError(f"{name}: expected modes of a {d}-way tensor, got {list(modes)}")
        out.add(n % d)
    return out


def _per_mode(value: float | Sequence[float], d: int, name: str) -> list[float]:
    vals = [value] * d if isinstance(value, int | float) else list(value)
    if len(vals) != d or not all(isinstance(v, int | float) and v >= 0 for v in vals):
        raise ValueError(f"{name}: expected a number >= 0 or {d} of them, got {value!r}")
    return [float(v) for v in vals]


def _start(p: _Problem, init: Any, rng: np.random.Generator) -> list[Array]:
    """Initial factors (weights folded into the first factor), checked and scaled."""
    xp = p.xp
    if isinstance(init, CP) or isinstance(init, tuple | list):
        weights, factors = (init.weights, init.factors) if isinstance(init, CP) else init
        factors = list(factors)
        if len(factors) != p.d or any(
            tuple(a.shape) != (s, p.rank) for a, s in zip(factors, p.shape, strict=True)
        ):
            raise ValueError(
                f"init: expected {p.d} factors of shapes (I_n, {p.rank}) for x of shape "
                f"{p.shape}, got {[tuple(a.shape) for a in factors]}"
            )
        factors = [xp.asarray(a, dtype=p.dtype, device=p.device) for a in factors]
        for n, a in enumerate(factors):
            check_finite(f"init.factors[{n}]", a)
        if weights is not None:
            w = xp.asarray(weights, dtype=p.dtype, device=p.device)
            factors[0] = factors[0] * check_finite("init.weights", w)
        for n in sorted(p.nn):
            if bool(xp.any(factors[n] < 0)):
                raise ValueError(
                    f"init: factors[{n}] has {_count_and_first(xp, factors[n] < 0, None)} "
                    "negative entries; nonnegative modes need a nonnegative start"
                )
        return factors
    if init not in ("random", "svd"):
        raise ValueError(
            f"init: expected 'random', 'svd', a CP or (weights, factors), got {init!r}"
        )
    if init == "svd" and p.sparse:
        raise ValueError("init: 'svd' needs a dense x; use 'random'")
    factors = []
    for n, size in enumerate(p.shape):
        u = rng.uniform(size=(size, p.rank))
        a = xp.asarray(u, dtype=p.dtype, device=p.device)
        if init == "svd":
            s = truncated_svd(unfold(p.data, n), check_finite=False).u[:, : p.rank]
            if n in p.nn:
                s = xp.abs(s)
            a = xp.concat([s, a[:, s.shape[1] :]], axis=1) if s.shape[1] < p.rank else s
        factors.append(a)
    # best least-squares multiple of the start, spread evenly over the modes
    inner = _inner(p, factors)
    free = [n for n in range(p.d) if n not in p.nn]
    if inner < 0 and free:  # a sign flip of an unconstrained mode makes the start useful
        factors[free[0]] = -factors[free[0]]
        inner = -inner
    norm2 = cp_norm2([a.mT @ a for a in factors])
    if inner > 0 and norm2 > 0:
        c = (inner / norm2) ** (1.0 / p.d)
        factors = [a * c for a in factors]
    return factors


def _inner(p: _Problem, factors: list[Array]) -> float:
    xp = p.xp
    if p.sparse:
        return to_float(xp.sum(p.data * sparse_cp_values(p.x, factors)))
    m = mttkrp(p.data, factors, 0)
    return to_float(xp.sum(m * factors[0]))


def _dense(factors: list[Array]) -> Array:
    xp = array_namespace(*factors)
    ones = xp.ones(factors[0].shape[1], dtype=factors[0].dtype, device=device(factors[0]))
    return cp_to_dense(CP(ones, tuple(factors)))


def _check_finite(err: float, it: int, method: str) -> None:
    if not math.isfinite(err):
        raise FloatingPointError(
            f"nonneg_cp: method={method!r} produced NaN/Inf at iteration {it}; "
            "rescale x, lower the rank or raise the penalties"
        )


def _l2_error(
    p: _Problem, factors: list[Array], grams: list[Array], m_last: Array, last: int
) -> float:
    """Relative error from the MTTKRP of the last updated mode (no mask)."""
    inner = to_float(p.xp.sum(m_last * factors[last]))
    err = relative_error_from_inner(p.norm_x, inner, cp_norm2(grams))
    if err < _EXACT_ERROR_BELOW and not p.sparse:
        err = to_float(p.xp.linalg.vector_norm(p.data - _dense(factors))) / p.norm_x
    return err


def _stop(errors: list[float], tol: float) -> bool:
    return len(errors) > 1 and abs(errors[-2] - errors[-1]) < tol


def _hals(p, factors, tol, max_iter, inner_sweeps, extrapolate, callback):
    """HALS sweeps, optionally with heuristic extrapolation and restarts (Ang et al. 2020).

    After an accepted sweep the next one starts from ``A + beta (A - A_previous)`` (projected
    on the constraints). A sweep that raises the error is undone, and ``beta`` shrinks; so
    the recorded errors never increase.
    """
    xp = p.xp
    modes = [n for n in range(p.d) if n not in p.fixed]
    sweep = SweepMTTKRP(p.x if p.sparse else p.data, modes, p.rank)
    grams = [a.mT @ a for a in factors]
    tiny = xp.finfo(p.dtype).smallest_normal
    beta, beta_max = _BETA0, 1.0
    kept: list[Array] | None = None  # last accepted iterate (before extrapolation)
    errors: list[float] = []
    for it in range(max_iter):
        sweep.start(factors)
        for n in modes:
            g = hadamard([grams[m] for m in range(p.d) if m != n])
            m_n = sweep(factors, n)
            factors[n] = _hals_mode(
                xp, factors[n], g, m_n, p.l1[n], p.l2[n], n in p.nn, inner_sweeps, tiny
            )
            grams[n] = factors[n].mT @ factors[n]
        err = _l2_error(p, factors, grams, m_n, modes[-1])
        _check_finite(err, it, "hals")
        undone = extrapolate and kept is not None and err > errors[-1]
        if undone:  # the extrapolated start overshot: back to the last accepted iterate
            factors, err = list(kept), errors[-1]
            beta_max, beta = beta, beta / _ETA
        else:
            if not p.penalized:
                factors = _balance(xp, factors)
            if extrapolate:
                if kept is not None:
                    beta, beta_max = min(beta_max, _GAMMA * beta), min(1.0, _GAMMA_MAX * beta_max)
                previous, kept = kept, list(factors)
                if previous is not None:
                    for n in modes:
                        step = factors[n] + beta * (factors[n] - previous[n])
                        factors[n] = xp.maximum(step, xp.zeros_like(step)) if n in p.nn else step
        grams = [a.mT @ a for a in factors]
        errors.append(err)
        if callback is not None:
            callback(it, err)
        if not undone and _stop(errors, tol):
            break
    if kept is not None:
        factors = kept
    return factors, errors


def _hals_mode(xp, a, g, m, l1, l2, nonneg, sweeps, tiny):
    """Column-wise exact minimization of ``0.5 tr(A G A^T) - tr(M^T A) + l1 sum A + l2/2 |A|^2``.

    Works on ``A^T`` so that each column is a contiguous row.
    """
    r = g.shape[0]
    if l2:
        g = g + l2 * xp.eye(r, dtype=g.dtype, device=device(g))
    at = xp.asarray(a.mT, copy=True, device=device(a))
    mt = m.mT
    if l1:
        mt = mt - l1
    diag = xp.linalg.diagonal(g)
    inv = 1.0 / xp.maximum(diag, xp.full_like(diag, tiny))
    zero = xp.zeros(at.shape[1], dtype=at.dtype, device=device(at))
    first = None
    for _ in range(sweeps):
        old = xp.asarray(at, copy=True, device=device(at))
        for k in range(r):
            new = at[k, :] + (mt[k, :] - g[k, :] @ at) * inv[k]
            at[k, :] = xp.maximum(new, zero) if nonneg else new
        change = to_float(xp.linalg.vector_norm(at - old))
        if first is None:
            first = change
        if change <= _INNER_STOP * first:
            break
    return at.mT


def _balance(xp, factors):
    """Give column ``r`` the same norm in every mode (the tensor is unchanged)."""
    d = len(factors)
    norms = [xp.linalg.vector_norm(a, axis=0) for a in factors]
    logs = [xp.log(xp.where(nm > 0, nm, xp.ones_like(nm))) for nm in norms]
    mean = sum(logs) / d
    zero = hadamard([xp.astype(nm > 0, nm.dtype) for nm in norms]) == 0
    out = []
    for a, lg in zip(factors, logs, strict=True):
        scale = xp.where(zero, xp.ones_like(lg), xp.exp(mean - lg))
        out.append(a * scale)
    return out


def _mu(p, factors, tol, max_iter, callback):
    xp = p.xp
    eps = xp.finfo(p.dtype).eps
    modes = [n for n in range(p.d) if n not in p.fixed]
    target = p.x if p.sparse else p.data
    grams = [a.mT @ a for a in factors]
    w = None if p.mask is None else xp.astype(p.mask, p.dtype)
    sweep = SweepMTTKRP(target, modes, p.rank)
    errors: list[float] = []
    for it in range(max_iter):
        if p.loss == "l2" and w is None:
            sweep.start(factors)
        for n in modes:
            a = factors[n]
            if p.loss == "l2" and w is None:
                num = sweep(factors, n)
                den = a @ hadamard([grams[m] for m in range(p.d) if m != n])
                m_last = num
            elif p.loss == "l2":
                num = mttkrp(target, factors, n)
                den = mttkrp(w * _dense(factors), factors, n)
            else:
                num, den = _kl_terms(p, factors, n, w, eps)
            if p.l2[n]:
                den = den + p.l2[n] * a
            if p.l1[n]:
                den = den + p.l1[n]
            factors[n] = (
                a
                * xp.maximum(num, xp.full_like(num, eps))
                / xp.maximum(den, xp.full_like(den, eps))
            )
            grams[n] = factors[n].mT @ factors[n]
        if p.loss == "l2" and w is None:
            err = _l2_error(p, factors, grams, m_last, modes[-1])
        else:
            err = _masked_error(p, factors, w, eps)
        _check_finite(err, it, "mu")
        errors.append(err)
        if callback is not None:
            callback(it, err)
        if _stop(errors, tol):
            break
    return factors, errors


def _kl_terms(p, factors, n, w, eps):
    """Numerator ``MTTKRP(W X / X_hat)`` and denominator ``MTTKRP(W)`` of the KL update."""
    xp = p.xp
    if p.sparse:
        xhat = sparse_cp_values(p.x, factors)
        vals = p.data / xp.maximum(xhat, xp.full_like(xhat, eps))
        num = mttkrp(SparseCOO(p.x.indices, vals, p.shape), factors, n)
    else:
        xhat = _dense(factors)
        ratio = p.data / xp.maximum(xhat, xp.full_like(xhat, eps))
        num = mttkrp(ratio, factors, n)
    if w is not None:
        den = mttkrp(w, factors, n)
    else:
        sums = [xp.sum(a, axis=0) for m, a in enumerate(factors) if m != n]
        den = xp.broadcast_to(hadamard(sums)[None, :], factors[n].shape)
    return num, den


def _masked_error(p, factors, w, eps):
    """Error on observed cells: relative Frobenius (l2) or KL / sum(x) (kl)."""
    xp = p.xp
    if p.loss == "l2":
        resid = p.data - _dense(factors)
        if w is not None:
            resid = resid * w
        return to_float(xp.linalg.vector_norm(resid)) / p.norm_x
    if p.sparse:
        total = to_float(xp.sum(hadamard([xp.sum(a, axis=0) for a in factors])))
        xlog = _xlogx_over(xp, p.data, sparse_cp_values(p.x, factors), eps)
        return (to_float(xp.sum(xlog)) - p.sum_x + total) / p.sum_x
    xhat = _dense(factors)
    return _kl_dense(xp, p.data, xhat, w, eps) / p.sum_x


def _xlogx_over(xp, x, y, eps):
    """``x log(x / max(y, eps))`` with ``0 log 0 = 0``."""
    safe = xp.maximum(y, xp.full_like(y, eps))
    pos = x > 0
    return xp.where(pos, x * xp.log(xp.where(pos, x, xp.ones_like(x)) / safe), xp.zeros_like(x))


def _kl_dense(xp, x, xhat, w, eps):
    cell = _xlogx_over(xp, x, xhat, eps) - x + xhat
    if w is not None:
        cell = cell * w
    return to_float(xp.sum(cell))


def _projected(p, factors, tol, max_iter, callback):
    """Block projected gradient with backtracking (monotone), gradients by torch autograd."""
    import torch

    xp = p.xp
    eps = float(torch.finfo(p.dtype).eps)
    w = None if p.mask is None else p.mask.to(p.dtype)
    factors = [a.detach().clone() for a in factors]
    modes = [n for n in range(p.d) if n not in p.fixed]

    def data_term(fs):
        xhat = _dense(fs)
        if p.loss == "l2":
            r = p.data - xhat
            if w is not None:
                r = r * w
            return 0.5 * torch.sum(r * r)
        safe = torch.clamp(xhat, min=eps)
        cell = xhat - p.data * torch.log(safe)
        return torch.sum(cell * w) if w is not None else torch.sum(cell)

    def objective(fs):
        f = data_term(fs)
        for n, a in enumerate(fs):
            if p.l1[n]:
                f = f + p.l1[n] * torch.sum(a)
            if p.l2[n]:
                f = f + 0.5 * p.l2[n] * torch.sum(a * a)
            if n in p.ortho and p.ortho[n]:
                nrm = torch.linalg.vector_norm(a, dim=0)
                bar = a / torch.where(nrm > 0, nrm, torch.ones_like(nrm))
                off = bar.mT @ bar - torch.eye(a.shape[1], dtype=a.dtype, device=a.device)
                f = f + p.ortho[n] * torch.sum(off * off)
        if p.penalty is not None:
            f = f + p.penalty(fs)
        return f

    grams = [a.mT @ a for a in factors]
    steps = {}
    for n in modes:
        g = hadamard([grams[m] for m in range(p.d) if m != n])
        steps[n] = 1.0 / max(to_float(torch.linalg.matrix_norm(g)) + p.l2[n], eps)
    errors: list[float] = []
    with torch.no_grad():
        fval = to_float(objective(factors))
    for it in range(max_iter):
        for n in modes:
            var = factors[n].detach().requires_grad_(True)
            fs = [*factors[:n], var, *factors[n + 1 :]]
            f0 = objective(fs)
            (grad,) = torch.autograd.grad(f0, var)
            f0 = to_float(f0)
            with torch.no_grad():
                step = steps[n]
                for _ in range(60):
                    trial = var - step * grad
                    if n in p.nn:
                        trial = torch.clamp(trial, min=0.0)
                    diff = trial - var
                    bound = (
                        f0
                        + to_float(torch.sum(grad * diff))
                        + to_float(torch.sum(diff * diff)) / (2 * step)
                    )
                    f1 = to_float(objective([*factors[:n], trial, *factors[n + 1 :]]))
                    if f1 <= bound:
                        factors[n] = trial
                        fval = f1
                        steps[n] = step * 2.0
                        break
                    step *= 0.5
                else:
                    steps[n] = step
        with torch.no_grad():
            if p.loss == "l2":
                err = math.sqrt(max(2.0 * to_float(data_term(factors)), 0.0)) / p.norm_x
            else:
                err = _kl_dense(xp, p.data, _dense(factors), w, eps) / p.sum_x
        _check_finite(err, it, "projected")
        _check_finite(fval, it, "projected")
        errors.append(err)
        if callback is not None:
            callback(it, err)
        if _stop(errors, tol):
            break
    return [a.detach() for a in factors], errors


def _normalize(xp: ModuleType, factors: list[Array]) -> tuple[Array, list[Array]]:
    """Unit-norm columns and their product as weights; zero columns stay zero (weight 0)."""
    norms = [xp.linalg.vector_norm(a, axis=0) for a in factors]
    weights = hadamard(norms)
    out = [
        a / xp.where(nm > 0, nm, xp.ones_like(nm)) for a, nm in zip(factors, norms, strict=True)
    ]
    return weights, out
