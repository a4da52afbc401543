"""Projected operator pieces ("environments") of a TTNO on an orthonormal TTN.

For an edge ``e`` between a node and its parent, with ``Y_e`` the orthonormal basis of the
subtree below ``e`` and ``O_x`` the subtree operator of bond channel ``x``:

* the *down* environment is ``D_e[x] = Y_e^H O_x Y_e`` (shape ``(chi, r, r)``);
* the *up* environment is the same for the complement of the subtree: ``B_e^H O^c_x B_e``,
  where ``B_e`` is the orthonormal basis of everything outside the subtree, built from the
  parent's tensor made orthonormal in the mode of ``e`` (QR of its unfolding, the ``Q``
  of the BUG integrators) together with the parent's own up environment and the siblings'
  down environments.

With them the operator restricted to one node (the local problems of BUG and TDVP) is

    (L X)[a, i_1, ..., i_m] = sum W[x, y_1..y_m] U[x][a, a'] D_1[y_1][i_1, i'_1] ...
                              X[a', i'_1, ..., i'_m]

(:func:`apply_node`), and for a leaf ``(L K)[i, a] = sum W[x][i, i'] U[x][a, a'] K[i', a']``
(:func:`apply_leaf`). Environments may be rectangular (different bra and ket bases), which
gives the mixed projections the parallel BUG needs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from tensorsim._array_api import Array, array_namespace, device
from tensorsim.einsum import einsum
from tensorsim.tensor_ops import fold, unfold
from tensorsim.ttn.network import TTN
from tensorsim.ttn.operator import TTNO

__all__ = [
    "apply_bond",
    "apply_leaf",
    "apply_node",
    "down_environments",
    "edge_gauge",
    "leaf_environment",
    "mixed_down_environments",
    "mixed_node_environment",
    "mixed_up_environment",
    "node_environment",
    "project_leaf",
    "project_node",
    "root_up_environment",
    "up_environment",
]

logger = logging.getLogger(__name__)

_OP = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # operator bond letters
_BRA = "abcdefghijklm"
_KET = "nopqrstuvwxyz"


@functools.lru_cache(maxsize=64)
def _node_env_subscripts(m: int) -> str:
    """``conj(bra)[a, i..], W[x, y..], E_c[y_c, i_c, j_c].., ket[b, j..] -> [x, a, b]``."""
    bra = _BRA[: m + 1]
    ket = _KET[: m + 1]
    w = _OP[: m + 1]
    envs = ",".join(w[c + 1] + bra[c + 1] + ket[c + 1] for c in range(m))
    return f"{bra},{w},{envs},{ket}->{w[0]}{bra[0]}{ket[0]}"


@functools.lru_cache(maxsize=64)
def _apply_node_subscripts(m: int) -> str:
    """``W[x, y..], U[x, a, a'], D_c[y_c, i_c, i'_c].., X[a', i'..] -> [a, i..]``."""
    out = _BRA[: m + 1]
    inp = _KET[: m + 1]
    w = _OP[: m + 1]
    envs = ",".join(w[c] + out[c] + inp[c] for c in range(m + 1))
    return f"{w},{envs},{inp}->{out}"


@functools.lru_cache(maxsize=64)
def _up_env_subscripts(m: int, pos: int) -> str:
    """Up environment of child ``pos`` (1-based) from the parent's Q tensor."""
    bra = _BRA[: m + 1]
    ket = _KET[: m + 1]
    w = _OP[: m + 1]
    envs = [w[0] + bra[0] + ket[0]]  # parent's up environment
    envs += [w[c] + bra[c] + ket[c] for c in range(1, m + 1) if c != pos]
    return f"{bra},{w},{','.join(envs)},{ket}->{w[pos]}{bra[pos]}{ket[pos]}"


def leaf_environment(bra: Array, w: Array, ket: Array) -> Array:
    """``E[x] = bra^H W[x] ket`` for leaf bases ``(n, r)`` and leaf operator ``(chi, n, n)``."""
    return einsum("ia,xij,jb->xab", array_namespace(bra).conj(bra), w, ket)


def node_environment(bra: Array, w: Array, child_envs: Sequence[Array], ket: Array) -> Array:
    """Down environment of an inner node from its children's: shape ``(chi_0, r_bra, r_ket)``."""
    xp = array_namespace(bra, ket)
    return einsum(_node_env_subscripts(len(child_envs)), xp.conj(bra), w, *child_envs, ket)


def down_environments(state: TTN, op: TTNO) -> list[Array]:
    """Down environments of every node (the root's is ``<Y|H|Y>`` as a (1, 1, 1) array)."""
    tree = state.tree
    envs: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    for node in tree.postorder:
        t = state.tensors[node]
        if tree.is_leaf(node):
            envs[node] = leaf_environment(t, op.tensors[node], t)
        else:
            kids = [envs[c] for c in tree.children[node]]
            envs[node] = node_environment(t, op.tensors[node], kids, t)
    return envs


def edge_gauge(tensor: Array, mode: int) -> tuple[Array, Array]:
    """``Mat_mode(C)^T = Q R``: returns the tensor ``Ten_mode(Q^T)`` and ``R``.

    The returned tensor is orthonormal in ``mode`` (its size there may shrink to the rank
    bound of the other modes); ``C = Ten_mode(Q^T) ×_mode R^T``.
    """
    xp = array_namespace(tensor)
    q, r = xp.linalg.qr(unfold(tensor, mode).mT)
    shape = list(tensor.shape)
    shape[mode] = q.shape[1]
    return fold(q.mT, mode, shape), r


def up_environment(
    q_tensor: Array, w: Array, parent_up: Array, sibling_envs: Sequence[Array | None], pos: int
) -> Array:
    """Up environment of the child in mode ``pos`` of a node.

    Parameters
    ----------
    q_tensor
        The node's tensor made orthonormal in mode ``pos`` (:func:`edge_gauge`).
    w
        The node's TTNO tensor.
    parent_up
        The node's own up environment ``(chi_0, r_0, r_0)``.
    sibling_envs
        Down environments of all children (the entry at ``pos - 1`` is ignored).
    pos
        Mode of the child (1-based).
    """
    xp = array_namespace(q_tensor)
    m = q_tensor.ndim - 1
    envs = [parent_up] + [e for c, e in enumerate(sibling_envs, start=1) if c != pos]
    return einsum(_up_env_subscripts(m, pos), xp.conj(q_tensor), w, *envs, q_tensor)


def root_up_environment(op: TTNO, like: Array) -> Array:
    """The trivial up environment of the root: ones of shape (1, 1, 1)."""
    xp = array_namespace(like)
    return xp.ones((1, 1, 1), dtype=like.dtype, device=device(like))


def apply_node(x: Array, w: Array, up: Array, child_envs: Sequence[Array]) -> Array:
    """The operator restricted to an inner node, applied to a node tensor ``x``.

    Rectangular environments map between different bases (output sizes come from their
    middle axis).
    """
    return einsum(_apply_node_subscripts(len(child_envs)), w, up, *child_envs, x)


def apply_leaf(x: Array, w: Array, up: Array) -> Array:
    """The operator restricted to a leaf, applied to ``x`` of shape ``(n, r)``."""
    return einsum("xij,xab,jb->ia", w, up, x)


def apply_bond(s: Array, up: Array, down: Array) -> Array:
    """The operator restricted to an edge, applied to its bond matrix ``s``.

    ``s[a, j]`` couples the complement basis (index ``a``, up environment ``up``) to the
    subtree basis (index ``j``, down environment ``down``) of the edge:
    ``(H s)[a, j] = sum_x up[x, a, a'] down[x, j, j'] s[a', j']`` (the bond problem of
    the one-site TDVP sweep).
    """
    return einsum("xab,xij,bj->ai", up, down, s)


# ------------------------------------------------------------------ projections of a TTN
#
# For a source term F(Y) = G given as a TTN on the same tree, the local problems need G
# projected onto the bases of Y: the same recursion as for an operator, with the operator
# replaced by the identity ("mixed" environments between the bases of Y and those of G).


@functools.lru_cache(maxsize=64)
def _mixed_node_subscripts(m: int) -> str:
    bra, ket = _BRA[: m + 1], _KET[: m + 1]
    envs = ",".join(bra[c + 1] + ket[c + 1] for c in range(m))
    return f"{bra},{envs},{ket}->{bra[0]}{ket[0]}"


@functools.lru_cache(maxsize=64)
def _mixed_up_subscripts(m: int, pos: int) -> str:
    bra, ket = _BRA[: m + 1], _KET[: m + 1]
    envs = [bra[0] + ket[0]] + [bra[c] + ket[c] for c in range(1, m + 1) if c != pos]
    return f"{bra},{','.join(envs)},{ket}->{bra[pos]}{ket[pos]}"


@functools.lru_cache(maxsize=64)
def _project_node_subscripts(m: int) -> str:
    out, ket = _BRA[: m + 1], _KET[: m + 1]
    envs = ",".join(out[c] + ket[c] for c in range(m + 1))
    return f"{envs},{ket}->{out}"


def mixed_down_environments(state: TTN, other: TTN) -> list[Array]:
    """``M[node] = Y_node^H G_node``: the subtree bases of ``state`` against those of ``other``."""
    tree = state.tree
    xp = array_namespace(*state.tensors, *other.tensors)
    envs: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    for node in tree.postorder:
        a, b = state.tensors[node], other.tensors[node]
        if tree.is_leaf(node):
            envs[node] = xp.conj(a).mT @ b
        else:
            kids = [envs[c] for c in tree.children[node]]
            envs[node] = mixed_node_environment(a, kids, b)
    return envs


def mixed_node_environment(bra: Array, child_envs: Sequence[Array], ket: Array) -> Array:
    """``conj(bra)[a, i..] M_c[i_c, j_c].. ket[b, j..] -> [a, b]``."""
    xp = array_namespace(bra, ket)
    return einsum(_mixed_node_subscripts(len(child_envs)), xp.conj(bra), *child_envs, ket)


def mixed_up_environment(
    q_tensor: Array, parent_up: Array, sibling_envs: Sequence[Array | None], ket: Array, pos: int
) -> Array:
    """Complement of the child in mode ``pos``: ``(r_bra, r_ket)`` (cf. :func:`up_environment`)."""
    xp = array_namespace(q_tensor, ket)
    m = q_tensor.ndim - 1
    envs = [parent_up] + [e for c, e in enumerate(sibling_envs, start=1) if c != pos]
    return einsum(_mixed_up_subscripts(m, pos), xp.conj(q_tensor), *envs, ket)


def project_leaf(ket: Array, up: Array) -> Array:
    """Another network's leaf projected on a leaf problem: ``G_l up^T`` (shape ``(n, r)``)."""
    return ket @ up.mT


def project_node(ket: Array, up: Array, child_envs: Sequence[Array]) -> Array:
    """Another network's node tensor projected on a node problem of the state's bases."""
    return einsum(_project_node_subscripts(len(child_envs)), up, *child_envs, ket)
