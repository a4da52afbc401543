"""Basis enrichment from ``H Y0`` and the normal-component estimate of a BUG step.

Why the rank-adaptive BUG integrators need it
---------------------------------------------
A BUG step augments each basis with the result of its K-step (or subtree step), computed
with every *other* basis frozen. Directions that only a simultaneous change on both sides
of an edge can reach are invisible to these sub-flows: from a product state, the hopping
``X_i X_{i+1} + Y_i Y_{i+1}`` of the XXZ chain flips two spins across an edge, and what the
step can create depends on which zero-weight padding directions the other bases happen to
carry. With unlucky padding the first steps miss the correlations altogether and the
per-site error reaches 0.1-0.4 (and grows as ``h`` shrinks), while TFIM-like fields, which
act on one site at a time, are fine.

:func:`enrich_bases` adds, before the step, the directions of ``F(Y0) = H Y0`` that each edge's
basis lacks: one leaves-to-root pass over ``H Y0`` (exact, never formed in full), keeping
per edge at most ``rank`` new orthonormal directions of the part orthogonal to the old
basis, the largest first. The old basis stays first and exact, so ``Y0`` is unchanged as a
vector (zero weight on the new directions) and the step proceeds as usual. This is global
Krylov enrichment with one Krylov vector (Yang & White, arXiv 2005.06104, for MPS TDVP) done
on the tree's subtree bases, the same way as the basis augmentation of the BUG integrators
(arXiv 2104.05247): it makes the first-order increment ``h F(Y0)`` representable, whatever
the padding.

:func:`normal_component` measures what a step still cannot represent:
``nu = h ||(I - P) F(Y0)||``, with ``P`` the orthogonal projection onto the step's
Galerkin space (all networks with the step's augmented bases and any root tensor). The
exact flow leaves ``Y0`` along ``F(Y0)``; ``nu`` is the part of that first-order increment
outside the space where the step's result lives, a computable estimate of the normal
component of the vector field (the ``epsilon`` of the BUG error bounds, arXiv 2104.05247)
that the integrators report next to ``eta`` and use to enlarge the enrichment.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

from solvers.bug.common import reduce_up
from tensorsim._array_api import Array, array_namespace, device, to_float, to_numpy
from tensorsim.einsum import einsum
from tensorsim.linalg import augment_basis
from tensorsim.ttn.entanglement import complement_grams
from tensorsim.ttn.environment import leaf_environment, node_environment
from tensorsim.ttn.network import TTN
from tensorsim.ttn.operator import TTNO

__all__ = [
    "augment_bases",
    "complement_weights",
    "enrich_bases",
    "enrichment_width",
    "normal_component",
    "padded_in_new_bases",
]

logger = logging.getLogger(__name__)

_OP = "ABCDEFGHIJKL"
_STATE = "abcdefghijkl"
_NEW = "nopqrstuvwxy"


@functools.lru_cache(maxsize=32)
def _project_subscripts(m: int) -> str:
    """``W[A, B..], C[a, b..], M_c[n_c, B_c, b_c].. -> [A, a, n_1, .., n_m]``."""
    w, c = _OP[: m + 1], _STATE[: m + 1]
    kids = ",".join(_NEW[k] + w[k + 1] + c[k + 1] for k in range(m))
    return f"{w},{c},{kids}->{w[0]}{c[0]}{_NEW[:m]}"


def enrichment_width(old: int, rank: int, max_rank: int | None) -> int:
    """Columns of an enriched basis: ``old + rank``, within ``max_rank`` (never below ``old``)."""
    width = old + rank
    if max_rank is not None:
        width = min(width, max_rank)
    return max(width, old)


def enrich_bases(state: TTN, op: TTNO, rank: int, max_rank: int | None = None) -> TTN:
    """``state`` with every edge basis augmented by up to ``rank`` directions of ``op @ state``.

    One pass, leaves to root (:func:`augment_bases` with ``source = state``, weighted). At a
    leaf the new directions come from ``W[x] U`` (all operator channels ``x``); at an inner
    node from ``H Y0``'s subtree tensor ``W (x) C`` expressed in the children's enriched
    bases. Each time the part orthogonal to the old basis is kept, its ``rank`` largest
    directions weighted by the complement (:func:`complement_weights`), old basis first
    (:func:`tensorsim.linalg.augment_basis`). The root tensor is zero-padded:
    the result is the same vector as ``state`` (bit for bit on the old entries),
    orthonormal, with edge ranks at most ``min(old + rank, max_rank)``.

    Parameters
    ----------
    state
        Orthonormal TTN (norm at the root).
    op
        The operator ``H`` on ``state.tree``.
    rank
        New directions per edge, at most (``0`` returns ``state``).
    max_rank
        Cap on every enriched edge rank (``None``: none); edges at or above it get nothing.

    Returns
    -------
    TTN
        ``state`` in the enriched bases.
    """
    if not (isinstance(rank, int) and rank >= 0):
        raise ValueError(f"rank: expected an integer >= 0, got {rank!r}")
    if rank == 0:
        return state
    return augment_bases(state, state, op=op, rank=rank, max_rank=max_rank, weighted=True)


def augment_bases(
    state: TTN,
    source: TTN,
    *,
    op: TTNO | None = None,
    rank: int | None = None,
    max_rank: int | None = None,
    weighted: bool = False,
) -> TTN:
    """``state`` in bases that also span the subtree bases of ``op @ source`` (or ``source``).

    The same vector as ``state``; every edge basis keeps its old columns first, bit for bit,
    followed by at most ``rank`` (all, for ``None``) directions of the other network's
    subtree space at that edge, orthogonal to the old ones, largest first, within
    ``max_rank``. ``op @ source`` is never formed: its subtree tensors are projected on the
    augmented bases as the pass goes up.

    Parameters
    ----------
    state
        Orthonormal TTN (norm at the root).
    source
        A TTN on the same tree (orthonormal, so that its subtree bases are comparable).
    op
        An operator applied to ``source`` first, or ``None``.
    rank
        New directions per edge, at most; ``None``: all.
    max_rank
        Cap on every augmented edge rank (``None``: none).
    weighted
        Rank the candidate directions by their weight in the whole network: the subtree
        tensor's parent index is multiplied by ``G^(1/2)`` of ``source``
        (:func:`complement_weights`), so directions that only zero-weight padding carries
        come last. The operator's action on the complement is left out of the weight (a
        Pauli string on the complement is unitary; a complement-internal channel only
        reproduces the old basis, which is projected out anyway).
    """
    tree = state.tree
    if source.tree != tree:
        raise ValueError("source: expected a TTN on the same tree as state")
    xp = array_namespace(*state.tensors)
    weights = complement_weights(source) if weighted else None
    new: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    # projections[c] = (augmented basis of c)^H (subtree tensor of op @ source at c), shape
    # (new rank, operator bond, source rank)
    projections: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    for node in tree.postorder:
        t, s = state.tensors[node], source.tensors[node]
        w = _operator_tensor(op, tree, node, s)
        if tree.is_leaf(node):
            z = einsum("xij,ja->ixa", w, s)
            width = _width(t.shape[1], rank, z.shape[1] * z.shape[2], max_rank)
            zw = z if weights is None else einsum("ixa,ba->ixb", z, weights[node])
            basis = _augmented(t, xp.reshape(zw, (z.shape[0], -1)), width)
            new[node] = basis
            projections[node] = einsum("ib,ixa->bxa", xp.conj(basis), z)
            continue
        kids = tree.children[node]
        padded, sizes = padded_in_new_bases(tree, node, t, new)
        if node == tree.root:
            new[node] = padded
            continue
        z = einsum(_project_subscripts(len(kids)), w, s, *[projections[c] for c in kids])
        bond, top = z.shape[0], z.shape[1]
        columns = xp.reshape(z, (bond * top, -1)).mT
        old = t.shape[0]
        width = _width(old, rank, columns.shape[1], max_rank)
        candidates = columns
        if weights is not None:
            flat = xp.reshape(z, (bond, top, -1))
            zw = einsum("xaz,ba->xbz", flat, weights[node])
            candidates = xp.reshape(zw, (bond * top, -1)).mT
        basis = _augmented(xp.reshape(padded, (old, -1)).mT, candidates, width)
        new[node] = xp.reshape(basis.mT, (basis.shape[1], *sizes))
        projections[node] = xp.reshape(xp.conj(basis).mT @ columns, (basis.shape[1], bond, top))
    return TTN(tree, tuple(new))


def padded_in_new_bases(
    tree: Any, node: int, tensor: Array, new: list[Array]
) -> tuple[Array, tuple[int, ...]]:
    """An inner node's tensor zero-padded to its children's augmented bases ``new``.

    The children's old columns come first, so the padded tensor is the same subtree basis
    (the same vector at the root). Returns the padded tensor and the children's new sizes.
    """
    xp = array_namespace(tensor)
    kids = tree.children[node]
    sizes = tuple(new[c].shape[1] if tree.is_leaf(c) else new[c].shape[0] for c in kids)
    padded = xp.zeros((tensor.shape[0], *sizes), dtype=tensor.dtype, device=device(tensor))
    padded[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return padded, sizes


def complement_weights(y: TTN) -> list[Array]:
    """``G_e^(1/2)`` per edge: the square root of the Gram matrix of the complement states.

    With ``y`` orthonormal (norm at the root), ``y = sum_a |sub_a> (x) |comp_a>`` at edge
    ``e``, the subtree basis ``|sub_a>`` orthonormal and ``G_e[a, b] = <comp_a|comp_b>``
    (:func:`tensorsim.ttn.entanglement.complement_grams`; its eigenvalues are the squared
    Schmidt values).
    """
    xp = array_namespace(*y.tensors)
    grams = complement_grams(y)
    out = []
    for g in grams:
        values, vectors = xp.linalg.eigh((g + xp.conj(g).mT) / 2)
        values = xp.sqrt(xp.clip(xp.real(values), 0.0, None))
        out.append((vectors * xp.astype(values, vectors.dtype)) @ xp.conj(vectors).mT)
    return out


def _width(old: int, rank: int | None, available: int, max_rank: int | None) -> int:
    return enrichment_width(old, available if rank is None else rank, max_rank)


def _operator_tensor(op: TTNO | None, tree: Any, node: int, like: Array) -> Array:
    """The operator's tensor at ``node``, or the identity with bond dimension one."""
    if op is not None:
        return op.tensors[node]
    xp = array_namespace(like)
    if tree.is_leaf(node):
        n = like.shape[0]
        return xp.reshape(xp.eye(n, dtype=like.dtype, device=device(like)), (1, n, n))
    return xp.ones((1,) * like.ndim, dtype=like.dtype, device=device(like))


def _augmented(old: Array, new: Array, width: int) -> Array:
    """``old`` followed by the ``width - r`` largest directions of ``new`` orthogonal to it.

    The candidates are the leading left singular directions of the projected ``new``,
    from the eigenvectors of the smaller of its two Gram matrices (cheaper than its SVD;
    the squared singular values only decide which directions come first), then
    :func:`tensorsim.linalg.augment_basis` orthonormalizes them against ``old`` exactly.
    """
    xp = array_namespace(old, new)
    keep = width - old.shape[1]
    if keep <= 0 or new.shape[1] == 0:
        return old
    if new.dtype != old.dtype:
        new = xp.astype(new, xp.result_type(old.dtype, new.dtype))
    w = new - old @ (xp.conj(old).mT @ new)
    if keep < w.shape[1] and w.shape[0] <= w.shape[1]:
        # left singular vectors from the smaller Gram matrix (eigh sorts ascending)
        w = xp.linalg.eigh(w @ xp.conj(w).mT)[1][:, -keep:]
    elif keep < w.shape[1]:
        w = w @ xp.linalg.eigh(xp.conj(w).mT @ w)[1][:, -keep:]
    out = augment_basis(old, w)
    return out if out.shape[1] <= width else out[:, :width]


def normal_component(
    state: TTN,
    rhs: Any,
    projected: Array,
    h: float,
    energy: complex | None = None,
    executor: Any = None,
) -> tuple[float, float]:
    """``(nu, increment)``: what a step's space misses of ``F(state)``, and its scale.

    ``nu = h sqrt(||F(Y)||^2 - ||P F(Y)||^2)`` (clipped at zero), with ``||F(Y)||^2 =
    |factor|^2 <Y|H^H H|Y>`` from ``rhs.gram``; ``increment = h |factor| ||(H - e) Y||``
    with ``e`` the energy of ``Y``, the size of the first-order change of the normalized
    state.

    Parameters
    ----------
    state
        The orthonormal TTN ``Y`` at which ``F`` is evaluated.
    rhs
        The :class:`~solvers.bug.LinearTreeRHS` (an operator, no source).
    projected
        The root tensor of ``P F(Y)`` in the step's (augmented) bases.
    h
        Step size.
    energy
        ``<Y|H|Y>`` if already known (the root's down environment), else computed.
    executor
        Spreads the environments of ``H^H H`` over ranks as whole subtrees
        (:func:`solvers.bug.common.reduce_up`); serial by default.

    Notes
    -----
    The difference of squares loses digits: ``nu`` is resolved down to about
    ``h sqrt(eps) ||F(Y)||``.
    """
    xp = array_namespace(projected)
    root = state.tree.root
    h2 = _root_environment(state, rhs.gram, executor).real
    if energy is None:
        energy = _root_environment(state, rhs.op, executor)
    norm2 = to_float(xp.sum(xp.abs(state.tensors[root]) ** 2))
    scale = abs(complex(rhs.factor))
    kept = to_float(xp.sum(xp.abs(projected) ** 2))
    nu = h * math.sqrt(max(scale**2 * h2 - kept, 0.0))
    spread = max(h2 - abs(energy) ** 2 / norm2, 0.0) if norm2 > 0 else 0.0
    return nu, h * scale * math.sqrt(spread)


def _root_environment(state: TTN, op: TTNO, executor: Any = None) -> complex:
    """``<Y|op|Y>``, not normalized: the root's down environment (subtrees on ``executor``)."""

    def environment(node: int, kids: list[Array]) -> Array:
        t, w = state.tensors[node], op.tensors[node]
        if state.tree.is_leaf(node):
            return leaf_environment(t, w, t)
        return node_environment(t, w, kids, t)

    return complex(to_numpy(reduce_up(executor, state.tree, environment))[0, 0, 0])
