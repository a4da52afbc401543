"""Kernels shared by every CP fit: MTTKRP (dense and sparse-coordinate), Gram products, errors.

``cp_als`` and ``nonneg_cp`` both go through this module, so the project has one MTTKRP:
dense tensors use :func:`tensorsim.tensor_ops.mttkrp` (``tensordot`` on the largest mode,
then ``vecdot`` over the rest, never forming the Khatri-Rao product); tensors given by their
nonzero coordinates (:class:`SparseCOO`) gather the factor rows of each stored entry and
scatter-add them into the rows of the output. The scatter-add is not in the array API
standard and goes through the per-backend registry (``"scatter_add_rows"``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from tensorsim._array_api import (
    GENERIC,
    Array,
    array_namespace,
    device,
    get_impl,
    register_impl,
    to_float,
)
from tensorsim.tensor_ops import mttkrp as dense_mttkrp

__all__ = [
    "SparseCOO",
    "SweepMTTKRP",
    "as_sparse",
    "cp_norm2",
    "hadamard",
    "mttkrp",
    "relative_error_from_inner",
    "sparse_cp_values",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SparseCOO:
    """A tensor given by the coordinates of its stored entries; the others are zero.

    Attributes
    ----------
    indices
        Integer array of shape ``(nnz, d)``: the multi-index of each stored entry.
    values
        Array of shape ``(nnz,)``: the stored values (a repeated index adds up).
    shape
        Shape of the full tensor.
    """

    indices: Array
    values: Array
    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        """Number of modes."""
        return len(self.shape)

    @property
    def dtype(self):  # noqa: ANN201 - a backend dtype object
        """Dtype of the values."""
        return self.values.dtype


def as_sparse(x: tuple[Array, Array], shape: Sequence[int] | None = None) -> SparseCOO:
    """Check an ``(indices, values)`` pair and return it as a :class:`SparseCOO`.

    Parameters
    ----------
    x
        ``(indices, values)`` with ``indices`` of shape ``(nnz, d)`` (integers) and
        ``values`` of shape ``(nnz,)`` (real floating point).
    shape
        Shape of the full tensor; by default one more than the largest index of each mode.

    Raises
    ------
    ValueError
        If the arrays have the wrong shapes, an index is negative or out of ``shape``.
    TypeError
        If ``indices`` is not integer or ``values`` not real floating point.
    """
    if not (isinstance(x, tuple | list) and len(x) == 2):
        raise ValueError("x: expected a dense array or an (indices, values) pair")
    indices, values = x
    xp = array_namespace(indices, values)
    if indices.ndim != 2 or values.ndim != 1 or indices.shape[0] != values.shape[0]:
        raise ValueError(
            "x: expected indices of shape (nnz, d) and values of shape (nnz,), got "
            f"{tuple(indices.shape)} and {tuple(values.shape)}"
        )
    if not xp.isdtype(indices.dtype, "integral"):
        raise TypeError(f"x: indices must be integers, got {indices.dtype}")
    if not xp.isdtype(values.dtype, "real floating"):
        raise TypeError(f"x: values must be real floating point, got {values.dtype}")
    d = indices.shape[1]
    if d < 2:
        raise ValueError(f"x: expected at least 2 modes, got indices with {d} columns")
    if indices.shape[0] == 0:
        raise ValueError("x: no stored entries")
    lo = [int(to_float(v)) for v in xp.min(indices, axis=0)]
    hi = [int(to_float(v)) for v in xp.max(indices, axis=0)]
    if min(lo) < 0:
        raise ValueError(f"x: negative index in mode {lo.index(min(lo))}")
    if shape is None:
        shape = tuple(h + 1 for h in hi)
    shape = tuple(int(s) for s in shape)
    if len(shape) != d or any(h >= s for h, s in zip(hi, shape, strict=True)):
        raise ValueError(f"shape: {shape} does not hold indices up to {tuple(hi)}")
    return SparseCOO(indices, values, shape)


def hadamard(mats: Sequence[Array]) -> Array:
    """Entrywise product of equally shaped matrices (the Gram product of CP updates)."""
    out = mats[0]
    for m in mats[1:]:
        out = out * m
    return out


def mttkrp(x: Array | SparseCOO, factors: Sequence[Array], mode: int) -> Array:
    """Matricized tensor times Khatri-Rao product, for a dense or a sparse tensor.

    ``M[i, r] = sum over the other indices of x[..., i, ...] * prod_{m != mode} A_m[i_m, r]``,
    shape ``(I_mode, R)``. ``factors[mode]`` only gives the number of rows for a sparse
    tensor. Dense tensors go to :func:`tensorsim.tensor_ops.mttkrp`; a :class:`SparseCOO`
    costs ``O(nnz R d)``: its entries' factor rows are gathered, multiplied, and
    scatter-added into the output rows.

    References
    ----------
    B. W. Bader, T. G. Kolda, SIAM J. Sci. Comput. 30 (2007) 205 (sparse MTTKRP).
    """
    if not isinstance(x, SparseCOO):
        return dense_mttkrp(x, factors, mode)
    xp = array_namespace(x.values, *factors)
    rows = x.values[:, None]
    for m, a in enumerate(factors):
        if m != mode:
            rows = rows * xp.take(a, x.indices[:, m], axis=0)
    scatter = get_impl("scatter_add_rows", xp)
    return scatter(x.indices[:, mode], rows, x.shape[mode])


class SweepMTTKRP:
    """The MTTKRPs of one sweep over the modes, sharing one contraction of ``x``.

    In a sweep that updates the modes in ``order``, the factor of the last mode does not
    change until the sweep's end, and that of the first mode does not change after its
    update. So ``T = x ×_s A_s`` for ``s`` the first or the last mode (whichever is larger),
    computed once per sweep (at the start for the last mode, right after the update for the
    first), serves the MTTKRP of every other mode as a contraction of the smaller ``T``
    (a two-level dimension tree). Mode ``s`` itself gets a full pass. A 3-way sweep thus
    reads ``x`` twice instead of three times. Full passes contract an outer (first or last)
    axis of ``x`` first, by one matrix product on a view of ``x``. Sharing is used where
    ``T`` is at most half the size of ``x`` (``R <= I_s / 2``); a :class:`SparseCOO` goes to
    :func:`mttkrp` for every mode.

    Call :meth:`start` at the beginning of each sweep, then the object for each mode, in
    ``order``, after updating the previous mode's factor.

    References
    ----------
    A.-H. Phan, P. Tichavsky, A. Cichocki, IEEE Trans. Signal Process. 61 (2013) 4834,
    arXiv:1209.3800 (fast CP gradients by dimension trees).
    """

    def __init__(self, x: Array | SparseCOO, order: Sequence[int], rank: int) -> None:
        order = list(order)
        self.x = x
        self.sparse = isinstance(x, SparseCOO)
        self.shared_mode = max((order[-1], order[0]), key=lambda m: x.shape[m])
        self.first = self.shared_mode == order[0]
        self.shared = (
            not self.sparse
            and x.ndim >= 3
            and len(order) > 1
            and 2 * rank <= x.shape[self.shared_mode]
        )
        self.t: Array | None = None
        self.xp = None if self.sparse else array_namespace(x)

    def start(self, factors: Sequence[Array]) -> None:
        """Begin a sweep (contract ``x`` with the last mode's factor if that one is shared)."""
        self.t = None
        if self.shared and not self.first:
            self.t = _contract_mode(
                self.x, factors[self.shared_mode], self.shared_mode, xp=self.xp
            )

    def __call__(self, factors: Sequence[Array], mode: int) -> Array:
        """The MTTKRP of ``mode`` with the current ``factors``."""
        if self.sparse:
            return mttkrp(self.x, factors, mode)
        d = self.x.ndim
        s = self.shared_mode
        if self.shared and mode != s:
            if self.t is None:  # the first mode was just updated
                self.t = _contract_mode(self.x, factors[s], s, xp=self.xp)
            others = [m for m in range(d) if m != s]
            return _contract_rest(self.t, others, factors, mode, xp=self.xp)
        # a full pass, contracting first the larger outer axis that is not ``mode``
        q = max((m for m in (0, d - 1) if m != mode), key=lambda m: self.x.shape[m])
        t = _contract_mode(self.x, factors[q], q, xp=self.xp)
        return _contract_rest(t, [m for m in range(d) if m != q], factors, mode, xp=self.xp)


def _contract_mode(x: Array, a: Array, mode: int, *, xp: ModuleType | None = None) -> Array:
    """``x`` contracted with ``a`` (``I_mode x R``) over ``mode``; ``R`` becomes the last axis.

    The outer axes (first, last) are contracted by one matrix product on a reshaped view of
    ``x``, without copying ``x``.
    """
    xp = array_namespace(x, a) if xp is None else xp
    r = a.shape[1]
    if mode == x.ndim - 1:
        return xp.reshape(xp.reshape(x, (-1, x.shape[mode])) @ a, (*x.shape[:-1], r))
    if mode == 0:
        t = xp.reshape(a.mT @ xp.reshape(x, (x.shape[0], -1)), (r, *x.shape[1:]))
        return xp.moveaxis(t, 0, -1)
    return xp.tensordot(x, a, axes=([mode], [0]))


def _contract_rest(
    t: Array,
    modes: list[int],
    factors: Sequence[Array],
    keep: int,
    *,
    xp: ModuleType | None = None,
) -> Array:
    """Contract every axis of ``t`` (modes ``modes``, then ``R``) but ``keep``'s with factors."""
    xp = array_namespace(t, *factors) if xp is None else xp
    modes = list(modes)
    for m in [m for m in modes if m != keep]:
        pos = modes.index(m)
        shape = [1] * t.ndim
        shape[pos] = factors[m].shape[0]
        shape[-1] = factors[m].shape[1]
        t = get_impl("contract_axis", xp)(t, xp.reshape(factors[m], tuple(shape)), pos - t.ndim)
        modes.pop(pos)
    return t


@register_impl("contract_axis", GENERIC)
def _contract_axis_generic(t: Array, f: Array, axis: int) -> Array:
    """``sum(t * f, axis)`` for ``f`` broadcast against ``t``: ``vecdot`` (a ufunc in NumPy)."""
    return array_namespace(t, f).vecdot(t, f, axis=axis)


@register_impl("contract_axis", "torch")
def _contract_axis_torch(t: Array, f: Array, axis: int) -> Array:
    # array_api_compat's torch vecdot is a batched matmul of 1 x n by n x 1 blocks: slow
    return (t * f).sum(dim=axis)


def sparse_cp_values(
    x: SparseCOO, factors: Sequence[Array], weights: Array | None = None
) -> Array:
    """Values of the CP tensor ``[[weights; factors]]`` at the stored coordinates of ``x``."""
    xp = array_namespace(x.values, *factors)
    rows = xp.take(factors[0], x.indices[:, 0], axis=0)
    for m in range(1, len(factors)):
        rows = rows * xp.take(factors[m], x.indices[:, m], axis=0)
    if weights is not None:
        rows = rows * weights
    return xp.sum(rows, axis=1)


def cp_norm2(grams: Sequence[Array], weights: Array | None = None) -> float:
    """Squared Frobenius norm of a CP tensor from its factors' Gram matrices ``A_m^T A_m``."""
    g = hadamard(grams)
    if weights is None:
        return to_float(array_namespace(g).sum(g))
    return to_float(weights @ (g @ weights))


def relative_error_from_inner(norm_x: float, inner: float, norm_hat2: float) -> float:
    """``||x - x_hat|| / ||x||`` from ``||x||``, ``<x, x_hat>`` and ``||x_hat||^2``.

    Loses digits to cancellation when the relative error is below about 1e-4 (callers then
    form the residual explicitly).
    """
    return math.sqrt(max(norm_x**2 - 2.0 * inner + norm_hat2, 0.0)) / norm_x


@register_impl("scatter_add_rows", GENERIC)
def _scatter_add_rows_generic(index: Array, rows: Array, n: int) -> Array:
    """``out[index[k], :] += rows[k, :]`` by a one-hot matrix (``O(n nnz R)``: small cases)."""
    xp = array_namespace(rows)
    targets = xp.arange(n, dtype=index.dtype, device=device(index))
    onehot = xp.astype(index[None, :] == targets[:, None], rows.dtype)
    return onehot @ rows


@register_impl("scatter_add_rows", "numpy")
def _scatter_add_rows_numpy(index: Array, rows: Array, n: int) -> Array:
    import scipy.sparse

    xp = array_namespace(rows)
    nnz = rows.shape[0]
    ones = xp.ones(nnz, dtype=rows.dtype, device=device(rows))
    cols = xp.arange(nnz, dtype=index.dtype, device=device(index))
    return scipy.sparse.csr_array((ones, (index, cols)), shape=(n, nnz)) @ rows


@register_impl("scatter_add_rows", "torch")
def _scatter_add_rows_torch(index: Array, rows: Array, n: int) -> Array:
    import torch

    out = torch.zeros((n, rows.shape[1]), dtype=rows.dtype, device=rows.device)
    return out.index_add(0, index, rows)
