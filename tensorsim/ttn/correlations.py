"""All two-point correlations ``<A_i B_j>`` of a tree tensor network state in one pass.

With the state orthonormal, an operator on the sites below a node acts on that node's
subtree basis as a small ``r x r`` matrix. One leaves-to-root pass builds, for every node,
the stack of these matrices for ``A`` (and ``B``) on each site below it; a pair of sites
``(i, j)`` in different child subtrees of their lowest common ancestor ``n`` then takes one
contraction at ``n`` with the Gram matrix of the complement of ``n``
(:func:`~tensorsim.ttn.entanglement.complement_grams`). The contractions of one node and one
pair of its children are a single einsum over all their sites at once, so the cost is that
of a few environment sweeps per site, not one network contraction per pair.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from tensorsim._array_api import Array, array_namespace, device
from tensorsim.einsum import einsum
from tensorsim.ttn.entanglement import complement_grams
from tensorsim.ttn.network import TTN, local_expectations, orthonormalize

__all__ = ["correlation_matrix"]

logger = logging.getLogger(__name__)

_BRA = "abcdefghklmn"
_KET = "opqrstuvwxyz"


@functools.lru_cache(maxsize=64)
def _lift_subscripts(m: int, mode: int) -> str:
    """``conj(C)[P, a..], C[Q, b..], D[k, a_mode, b_mode] -> [k, P, Q]`` (others traced)."""
    bra, ket = list(_BRA[: m + 1]), list(_KET[: m + 1])
    for c in range(1, m + 1):
        if c != mode:
            ket[c] = bra[c]
    return f"{''.join(bra)},{''.join(ket)},I{bra[mode]}{ket[mode]}->I{bra[0]}{ket[0]}"


@functools.lru_cache(maxsize=64)
def _pair_subscripts(m: int, first: int, second: int) -> str:
    """``conj(C), C, G[P, Q], D1[i, ..], D2[j, ..] -> [i, j]``, children ``first``/``second``."""
    bra, ket = list(_BRA[: m + 1]), list(_KET[: m + 1])
    for c in range(1, m + 1):
        if c not in (first, second):
            ket[c] = bra[c]
    d1 = f"I{bra[first]}{ket[first]}"
    d2 = f"J{bra[second]}{ket[second]}"
    return f"{''.join(bra)},{''.join(ket)},{bra[0]}{ket[0]},{d1},{d2}->IJ"


def correlation_matrix(
    state: TTN, a: Any, b: Any | None = None, *, hermitian: bool = True
) -> Array:
    """``C[i, j] = <Y|A_i B_j|Y> / <Y|Y>`` for every pair of sites, the diagonal ``<(AB)_i>``.

    Parameters
    ----------
    state
        Any TTN (orthonormalized here), not zero.
    a, b
        One-site operators ``(n, n)``, the same on every site (``b`` defaults to ``a``); the
        sites must all have dimension ``n``.
    hermitian
        Return the real part: right when every ``A_i B_j`` is Hermitian (``A``, ``B``
        Hermitian and commuting, e.g. ``<Z_i Z_j>`` or ``<X_i X_j>``).

    Returns
    -------
    array
        ``(n_sites, n_sites)``, in the state's array namespace and device.

    Examples
    --------
    >>> import numpy as np
    >>> from tensorsim.ttn import Tree, product_state
    >>> y = product_state(Tree.balanced_binary(3), [np.array([1.0, 0.0])] * 3)
    >>> correlation_matrix(y, np.diag([1.0, -1.0]))
    array([[1., 1., 1.],
           [1., 1., 1.],
           [1., 1., 1.]])
    """
    if not isinstance(state, TTN):
        raise TypeError(f"state: expected a TTN, got {type(state).__name__}")
    tree = state.tree
    y = orthonormalize(state)
    xp = array_namespace(*y.tensors)
    like = y.tensors[0]
    ops = {}
    for name, value in (("a", a), ("b", a if b is None else b)):
        op = xp.asarray(value, device=device(like))
        if op.ndim != 2 or any(tuple(op.shape) != (d, d) for d in tree.dims):
            raise ValueError(
                f"{name}: expected a one-site operator of shape (n, n) with n the dimension "
                f"of every site {sorted(set(tree.dims))}, got shape {tuple(op.shape)}"
            )
        ops[name] = op
    dtype = xp.result_type(ops["a"].dtype, ops["b"].dtype, like.dtype)
    ops = {name: xp.astype(op, dtype) for name, op in ops.items()}
    lifted = {name: _lifted(y, op) for name, op in ops.items()}
    grams = complement_grams(y)
    # sites in the tree's left-to-right order: every subtree's sites are contiguous
    order = {site: k for k, site in enumerate(tree.sites_below[tree.root])}
    start = {node: order[tree.sites_below[node][0]] for node in tree.postorder}
    n = tree.n_sites
    out = xp.zeros((n, n), dtype=dtype, device=device(like))
    for node in tree.inner_nodes:
        t = xp.astype(y.tensors[node], dtype)
        g = xp.astype(grams[node], dtype)
        kids = tree.children[node]
        m = len(kids)
        for p in range(1, m + 1):
            for q in range(p + 1, m + 1):
                first, second = kids[p - 1], kids[q - 1]
                rows = slice(start[first], start[first] + len(tree.sites_below[first]))
                cols = slice(start[second], start[second] + len(tree.sites_below[second]))
                pair = functools.partial(einsum, _pair_subscripts(m, p, q), xp.conj(t), t, g)
                ab = pair(lifted["a"][first], lifted["b"][second])
                ba = ab if b is None else pair(lifted["b"][first], lifted["a"][second])
                out[rows, cols] = ab
                out[cols, rows] = ba.mT
    norm2 = xp.sum(xp.abs(y.tensors[tree.root]) ** 2)
    out = out / xp.astype(norm2, dtype)
    # back to site order, then the one-site products on the diagonal
    position = xp.asarray([order[k] for k in range(n)], device=device(like))
    out = xp.take(xp.take(out, position, axis=0), position, axis=1)
    diagonal = xp.astype(local_expectations(y, ops["a"] @ ops["b"], hermitian=False), dtype)
    out = out + xp.eye(n, dtype=dtype, device=device(like)) * diagonal[None, :]
    return xp.real(out) if hermitian else out


def _lifted(y: TTN, op: Array) -> list[Array | None]:
    """Per node (not the root): ``<sub_a|O_k|sub_b>`` stacked over the sites ``k`` below it.

    Sites in the order of ``tree.sites_below[node]``; shape ``(sites, r, r)``.
    """
    tree = y.tree
    xp = array_namespace(op)
    out: list[Array | None] = [None] * tree.n_nodes
    for node in tree.postorder:
        if node == tree.root:
            continue
        t = xp.astype(y.tensors[node], op.dtype)
        if tree.is_leaf(node):
            out[node] = (xp.conj(t).mT @ op @ t)[None, ...]
            continue
        kids = tree.children[node]
        parts = [
            einsum(_lift_subscripts(len(kids), mode), xp.conj(t), t, out[c])
            for mode, c in enumerate(kids, start=1)
        ]
        out[node] = xp.concat(parts, axis=0)
    return out
