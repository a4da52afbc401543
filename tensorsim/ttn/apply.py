"""Operators applied to and composed with tree tensor networks, exactly.

:func:`apply_operator` gives ``H Y`` as a TTN whose edge ranks are the products of the
operator's bond dimensions and the state's ranks (truncate it after, if needed);
:func:`adjoint` and :func:`compose` give ``H^H`` and ``A B`` as TTNOs (the product compressed
by the SVD rounding of :func:`tensorsim.ttn.operator.to_ttno`). ``compose(adjoint(H), H)``
(:func:`gram_operator`) is what ``||H Y||^2 = <Y|H^H H|Y>`` needs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from tensorsim._array_api import Array, array_namespace, device
from tensorsim.einsum import einsum
from tensorsim.linalg import Truncation
from tensorsim.ttn.network import TTN, truncate
from tensorsim.ttn.operator import TTNO
from tensorsim.ttn.tree import Tree

__all__ = ["adjoint", "apply_operator", "compose", "gram_operator", "linear_combination"]

logger = logging.getLogger(__name__)

_UPPER = "ABCDEFGHIJKLM"
_LOWER = "abcdefghijklm"


@functools.lru_cache(maxsize=32)
def _outer_subscripts(m: int) -> str:
    """``W[A, B, ..], C[a, b, ..] -> [A, a, B, b, ..]`` for a node with ``m`` children."""
    big, small = _UPPER[: m + 1], _LOWER[: m + 1]
    return f"{big},{small}->{''.join(x + y for x, y in zip(big, small, strict=True))}"


def _outer(w: Array, c: Array) -> Array:
    """Kronecker product of two node tensors, mode by mode (first factor's index major)."""
    xp = array_namespace(w, c)
    out = einsum(_outer_subscripts(w.ndim - 1), w, c)
    return xp.reshape(out, tuple(a * b for a, b in zip(w.shape, c.shape, strict=True)))


def _check_tree(op: TTNO, tree: Tree, name: str) -> None:
    if not isinstance(op, TTNO):
        raise TypeError(f"{name}: expected a TTNO, got {type(op).__name__}")
    if op.tree != tree:
        raise ValueError(f"{name}: expected an operator on the same tree")


def apply_operator(op: TTNO, state: TTN) -> TTN:
    """``H Y`` as a TTN on the state's tree, exactly (edge ranks ``chi_e * r_e``).

    Parameters
    ----------
    op
        The operator ``H``.
    state
        The state ``Y`` (any gauge).

    Returns
    -------
    TTN
        Not orthonormal; its ranks are the products of bond dimensions and ranks.
    """
    if not isinstance(state, TTN):
        raise TypeError(f"state: expected a TTN, got {type(state).__name__}")
    _check_tree(op, state.tree, "op")
    tree = state.tree
    xp = array_namespace(*state.tensors)
    tensors = []
    for node, (w, t) in enumerate(zip(op.tensors, state.tensors, strict=True)):
        if tree.is_leaf(node):
            z = einsum("xij,ja->ixa", w, t)
            tensors.append(xp.reshape(z, (z.shape[0], -1)))
        else:
            tensors.append(_outer(w, t))
    return TTN(tree, tuple(tensors))


def adjoint(op: TTNO) -> TTNO:
    """The adjoint operator ``H^H`` (conjugated tensors, transposed leaf operators)."""
    _check_tree(op, op.tree, "op")
    xp = array_namespace(*op.tensors)
    tree = op.tree
    tensors = tuple(
        xp.permute_dims(xp.conj(t), (0, 2, 1)) if tree.is_leaf(n) else xp.conj(t)
        for n, t in enumerate(op.tensors)
    )
    return TTNO(tree, tensors, op.hermitian)


def compose(a: TTNO, b: TTNO, *, rtol: float = 1e-13) -> TTNO:
    """The product ``A B`` (``B`` acts first) as a TTNO, SVD-rounded at ``rtol``.

    The exact product has bond dimensions ``chi_A * chi_B``; it is rounded like
    :func:`~tensorsim.ttn.operator.to_ttno` rounds a sum: by the singular values of the
    vectorized operator, relative tolerance ``rtol`` per edge.
    """
    _check_tree(a, a.tree, "a")
    _check_tree(b, a.tree, "b")
    tree = a.tree
    xp = array_namespace(*a.tensors, *b.tensors)
    vec_tree = Tree(tree.children, tuple(n * n for n in tree.dims))
    tensors = []
    for node, (wa, wb) in enumerate(zip(a.tensors, b.tensors, strict=True)):
        if tree.is_leaf(node):
            n = tree.dims[node]
            p = einsum("xij,yjk->ikxy", wa, wb)
            tensors.append(xp.reshape(p, (n * n, -1)))
        else:
            tensors.append(_outer(wa, wb))
    rounded, _ = truncate(TTN(vec_tree, tuple(tensors)), Truncation(rtol=rtol))
    out = []
    for node, t in enumerate(rounded.tensors):
        if tree.is_leaf(node):
            n = tree.dims[node]
            t = xp.permute_dims(xp.reshape(t, (n, n, -1)), (2, 0, 1))
        out.append(t)
    return TTNO(tree, tuple(out), hermitian=False)


def gram_operator(op: TTNO, *, rtol: float = 1e-13) -> TTNO:
    """``H^H H`` (Hermitian, positive semi-definite): ``<Y|H^H H|Y> = ||H Y||^2``."""
    product = compose(adjoint(op), op, rtol=rtol)
    return TTNO(product.tree, product.tensors, hermitian=True)


def linear_combination(terms: Sequence[tuple[complex | float, TTNO]]) -> TTNO:
    """``sum_k c_k H_k`` exactly, as the direct sum of the operators' bond spaces.

    No rounding: every edge's bond dimension is the sum of the terms' (a time-dependent
    ``H(t) = sum_k f_k(t) H_k`` is rebuilt every step this way, at the cost of a few
    copies). Leaves stack their channels; inner nodes are block diagonal; the root carries
    the coefficients. Hermitian when every term is and every coefficient is real.

    Raises
    ------
    ValueError
        If ``terms`` is empty or the operators live on different trees.
    """
    if not terms:
        raise ValueError("terms: expected at least one (coefficient, TTNO) pair")
    ops = [op for _, op in terms]
    for op in ops:
        _check_tree(op, ops[0].tree, "terms")
    tree = ops[0].tree
    xp = array_namespace(*[t for op in ops for t in op.tensors])
    coefs = [c for c, _ in terms]
    dtype = xp.result_type(*[t.dtype for op in ops for t in op.tensors])
    if any(isinstance(c, complex) and c.imag != 0 for c in coefs):
        dtype = xp.result_type(dtype, xp.complex64)
    tensors = []
    for node in range(tree.n_nodes):
        parts = [xp.astype(op.tensors[node], dtype) for op in ops]
        if tree.is_leaf(node):
            tensors.append(xp.concat(parts, axis=0))
            continue
        root = node == tree.root
        shape = [sum(p.shape[a] for p in parts) for a in range(parts[0].ndim)]
        if root:
            shape[0] = 1
        out = xp.zeros(tuple(shape), dtype=dtype, device=device(parts[0]))
        offsets = [0] * len(shape)
        for c, part in zip(coefs, parts, strict=True):
            index = tuple(
                slice(0, 1) if root and a == 0 else slice(offsets[a], offsets[a] + part.shape[a])
                for a in range(part.ndim)
            )
            out[index] = c * part if root else part
            offsets = [o + part.shape[a] for a, o in enumerate(offsets)]
        tensors.append(out)
    hermitian = all(op.hermitian for op in ops) and all(
        not isinstance(c, complex) or c.imag == 0 for c in coefs
    )
    return TTNO(tree, tuple(tensors), hermitian)
