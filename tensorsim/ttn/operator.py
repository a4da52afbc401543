"""Operators on tree tensor networks: sums of products and their compressed tree form (TTNO).

``SumOfProducts`` is the user-facing description, ``H = sum_k c_k prod_{s in S_k} M_{k,s}``
(identity on the other sites). :func:`to_ttno` compresses it into a tree tensor network
operator (TTNO) on the state's tree: every term is a rank-one operator network, terms are
added in batches and the sum is re-truncated after each batch by the singular values of the
vectorized operator, at a relative tolerance near machine precision. Two-body Hamiltonians
with O(N^2) terms (long-range interactions) then have small operator bond dimensions,
because the interaction blocks between a subtree and its complement have low numerical
rank; this is what hierarchical (HSS) compression exploits as well (arXiv 2304.06075), but
obtained here by plain SVD rounding, which works for any sum of products.

TTNO layout: a leaf holds ``W_l`` of shape ``(chi, n, n)`` (one local operator per bond
channel); an inner node holds ``W`` of shape ``(chi_parent, chi_1, ..., chi_m)``.

The construction is NumPy-only by design: it runs once, on the host; ``to_ttno(..., xp=,
device=)`` then moves the result to the namespace and device of the states.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensorsim._array_api import Array, array_namespace
from tensorsim.linalg import Truncation
from tensorsim.ttn.network import TTN, add, norm, truncate
from tensorsim.ttn.tree import Tree

__all__ = ["TTNO", "SumOfProducts", "to_ttno"]

logger = logging.getLogger(__name__)


class SumOfProducts:
    """A sum of products of one-site operators, ``sum_k c_k prod_s M_{k, s}``.

    Parameters
    ----------
    terms
        Pairs ``(coefficient, {site: matrix})``; sites not named carry the identity. An
        empty mapping is a multiple of the identity.
    dims
        Dimension of each site.

    Examples
    --------
    >>> import numpy as np
    >>> x, z = np.array([[0, 1], [1, 0]]), np.diag([1, -1])
    >>> h = SumOfProducts([(1.0, {0: z, 1: z}), (0.5, {0: x}), (0.5, {1: x})], dims=(2, 2))
    >>> len(h.terms), h.n_sites
    (3, 2)
    """

    def __init__(
        self, terms: Iterable[tuple[complex, Mapping[int, Any]]], dims: Sequence[int]
    ) -> None:
        self.dims = tuple(int(d) for d in dims)
        if not self.dims or min(self.dims) < 1:
            raise ValueError(f"dims: expected positive site dimensions, got {dims}")
        checked = []
        for k, term in enumerate(terms):
            try:
                coef, factors = term
            except (TypeError, ValueError) as err:
                raise TypeError(f"terms[{k}]: expected (coefficient, {{site: matrix}})") from err
            if not isinstance(factors, Mapping):
                raise TypeError(f"terms[{k}]: expected a mapping site -> matrix")
            mats = {}
            for site, m in factors.items():
                if isinstance(site, bool) or not isinstance(site, numbers.Integral):
                    raise TypeError(f"terms[{k}]: site {site!r} is not an integer")
                site = int(site)
                if not 0 <= site < len(self.dims):
                    raise ValueError(
                        f"terms[{k}]: site {site!r} is not in 0..{len(self.dims) - 1}"
                    )
                m = np.asarray(m)
                n = self.dims[site]
                if m.shape != (n, n):
                    raise ValueError(
                        f"terms[{k}]: matrix on site {site} has shape {m.shape}, "
                        f"expected ({n}, {n})"
                    )
                if not np.all(np.isfinite(m)):
                    raise ValueError(f"terms[{k}]: matrix on site {site} is not finite")
                mats[site] = m
            coef = complex(coef) if np.iscomplexobj(coef) else float(coef)
            if not math.isfinite(abs(coef)):
                raise ValueError(f"terms[{k}]: coefficient {coef} is not finite")
            checked.append((coef, mats))
        self.terms: tuple[tuple[complex | float, dict[int, np.ndarray]], ...] = tuple(checked)

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return len(self.dims)

    @property
    def is_complex(self) -> bool:
        """Whether a coefficient or a matrix is complex."""
        return any(
            isinstance(c, complex) or any(np.iscomplexobj(m) for m in f.values())
            for c, f in self.terms
        )

    def adjoint(self) -> SumOfProducts:
        """The Hermitian adjoint (conjugate coefficients, conjugate-transposed factors)."""
        return SumOfProducts(
            [(np.conj(c), {s: m.conj().T for s, m in f.items()}) for c, f in self.terms],
            self.dims,
        )

    def __add__(self, other: SumOfProducts) -> SumOfProducts:
        if not isinstance(other, SumOfProducts) or other.dims != self.dims:
            return NotImplemented
        return SumOfProducts(self.terms + other.terms, self.dims)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply the operator to a full tensor ``x`` of shape ``dims`` (NumPy, references).

        Each factor acts on its own axis (``np.tensordot``), so a term costs one small
        contraction per named site and nothing is formed beyond ``x``'s size.
        """
        x = np.asarray(x)
        if x.shape != self.dims:
            raise ValueError(f"x: expected shape {self.dims}, got {x.shape}")
        out = np.zeros(self.dims, dtype=np.result_type(x, *self._dtypes()))
        for coef, factors in self.terms:
            y = x
            for site, m in factors.items():
                y = np.moveaxis(np.tensordot(m, y, axes=([1], [site])), 0, site)
            out += coef * y
        return out

    def _dtypes(self) -> list[Any]:
        return [m.dtype for _, f in self.terms for m in f.values()] + [
            np.complex128 if isinstance(c, complex) else np.float64 for c, _ in self.terms
        ]

    def to_sparse(self) -> Any:
        """The full operator as a SciPy sparse matrix (site 0 = most significant factor).

        NumPy/SciPy only, for exact references on small systems.
        """
        import scipy.sparse as sp

        size = math.prod(self.dims)
        dtype = np.complex128 if self.is_complex else np.float64
        out = sp.csr_array((size, size), dtype=dtype)
        for coef, factors in self.terms:
            term = sp.identity(1, dtype=dtype, format="csr")
            run = 1
            for site, n in enumerate(self.dims):
                if site in factors:
                    if run > 1:
                        term = sp.kron(term, sp.identity(run, format="csr"), format="csr")
                        run = 1
                    term = sp.kron(term, sp.csr_array(factors[site]), format="csr")
                else:
                    run *= n
            if run > 1:
                term = sp.kron(term, sp.identity(run, format="csr"), format="csr")
            out = out + coef * term
        return out


@dataclass(frozen=True, eq=False)
class TTNO:
    """A tree tensor network operator on a :class:`Tree`.

    Attributes
    ----------
    tree
        The topology (the same as the states it acts on).
    tensors
        ``(chi, n, n)`` per leaf, ``(chi_parent, chi_1, ..., chi_m)`` per inner node.
    hermitian
        Whether the operator is Hermitian (checked by :func:`to_ttno`).
    """

    tree: Tree
    tensors: tuple[Array, ...]
    hermitian: bool = False

    @property
    def bond_dims(self) -> dict[int, int]:
        """Operator bond dimension of every edge (keyed by its child node)."""
        return {e: int(self.tensors[e].shape[0]) for e in self.tree.edges}

    def to_dense(self) -> Array:
        """The operator as a dense ``(N, N)`` matrix, sites in order (small cases only)."""
        xp = array_namespace(*self.tensors)
        tree = self.tree
        # reuse the TTN contraction on the vectorized operator (leaf dimension n * n)
        leaves = [
            xp.reshape(xp.permute_dims(self.tensors[k], (1, 2, 0)), (tree.dims[k] ** 2, -1))
            for k in range(tree.n_sites)
        ]
        vec_tree = Tree(tree.children, tuple(n * n for n in tree.dims))
        dense = TTN(vec_tree, (*leaves, *self.tensors[tree.n_sites :])).to_dense()
        d = tree.n_sites
        dense = xp.reshape(dense, tuple(n for k in tree.dims for n in (k, k)))
        perm = tuple(range(0, 2 * d, 2)) + tuple(range(1, 2 * d, 2))
        size = math.prod(tree.dims)
        return xp.reshape(xp.permute_dims(dense, perm), (size, size))


def _term_network(
    tree: Tree, coef: complex | float, factors: Mapping[int, np.ndarray], dtype: Any
) -> TTN:
    """One product term as a rank-one network over vectorized operators (NumPy)."""
    tensors = []
    for node in range(tree.n_nodes):
        if tree.is_leaf(node):
            n = tree.dims[node]
            m = factors.get(node, np.eye(n))
            tensors.append(np.asarray(m, dtype=dtype).reshape(n * n, 1))
        else:
            shape = (1,) * (len(tree.children[node]) + 1)
            value = coef if node == tree.root else 1.0
            tensors.append(np.full(shape, value, dtype=dtype))
    return TTN(Tree(tree.children, tuple(n * n for n in tree.dims)), tuple(tensors))


def to_ttno(
    operator: SumOfProducts,
    tree: Tree,
    *,
    rtol: float = 1e-13,
    batch: int = 16,
    xp: Any = None,
    device: Any = None,
    check_hermitian: bool = True,
) -> TTNO:
    """Compress a :class:`SumOfProducts` into a :class:`TTNO` on ``tree``.

    Parameters
    ----------
    operator
        The operator; its site dimensions must match ``tree.dims``.
    tree
        The tree of the states it will act on.
    rtol
        Relative Frobenius tolerance of the SVD rounding (per edge, relative to the
        operator's norm).
    batch
        Number of terms added between two roundings.
    xp, device
        Namespace and device of the result (default NumPy on the host).
    check_hermitian
        Compute ``||H - H^H||_F`` (through the networks) and record ``hermitian``.

    Returns
    -------
    TTNO
    """
    if operator.dims != tree.dims:
        raise ValueError(
            f"operator: site dimensions {operator.dims} differ from tree.dims {tree.dims}"
        )
    if not operator.terms:
        raise ValueError("operator: no terms")
    if batch < 1:
        raise ValueError(f"batch: expected >= 1, got {batch}")
    dtype = np.complex128 if operator.is_complex else np.float64
    rule = Truncation(rtol=rtol)
    total = None
    pending = None
    for k, (coef, factors) in enumerate(operator.terms):
        term = _term_network(tree, coef, factors, dtype)
        pending = term if pending is None else add(pending, term)
        if (k + 1) % batch == 0 or k + 1 == len(operator.terms):
            total = pending if total is None else add(total, pending)
            total, _ = truncate(total, rule)
            pending = None
    hermitian = False
    if check_hermitian:
        adj = _adjoint_network(total, tree)
        diff, _ = truncate(add(total, _scaled(adj, -1.0)), rule)
        scale_ = max(norm(total), 1e-300)
        hermitian = norm(diff) <= 1e-8 * scale_
    tensors = []
    for node, t in enumerate(total.tensors):
        if tree.is_leaf(node):
            n = tree.dims[node]
            t = np.transpose(t.reshape(n, n, -1), (2, 0, 1))
        if xp is not None:
            t = xp.asarray(t, device=device)
        tensors.append(t)
    return TTNO(tree, tuple(tensors), hermitian)


def _adjoint_network(op: TTN, tree: Tree) -> TTN:
    """The adjoint operator: conjugate every tensor, transpose the leaf operators."""
    tensors = []
    for node, t in enumerate(op.tensors):
        t = np.conj(t)
        if tree.is_leaf(node):
            n = tree.dims[node]
            t = np.transpose(t.reshape(n, n, -1), (1, 0, 2)).reshape(n * n, -1)
        tensors.append(t)
    return TTN(op.tree, tuple(tensors))


def _scaled(op: TTN, factor: float) -> TTN:
    tensors = list(op.tensors)
    tensors[-1] = tensors[-1] * factor
    return TTN(op.tree, tuple(tensors))
