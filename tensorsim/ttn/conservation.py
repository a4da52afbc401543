"""Linear invariants of tree tensor networks: product functionals kept through truncation.

A product functional ``m(Y) = <w_0 (x) w_1 (x) ... (x) w_{d-1}, Y>`` (mass of a kinetic
density, the trace of a density operator, an expected value over parameters) is conserved
by a Galerkin step whenever the operator conserves it and the bases of every edge contain
the directions of ``W`` (the projection then leaves ``<W, F(Y)>`` unchanged). SVD
truncation breaks it. :func:`restore_functional` repairs the truncated network with one
extra direction per edge, ``Y + c W``: the correction is at most as large as the
truncation error (``|c| ||W|| <= ||Y_full - Y||``) and it puts ``W`` back into every basis,
so the next Galerkin step conserves ``m`` again. This is the rank-one form of the
conservative truncation of Einkemmer, Kusch and Schotthoefer (arXiv 2206.09374), which
keeps the conserved basis directions fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tensorsim._array_api import array_namespace, device
from tensorsim.ttn.build import product_state
from tensorsim.ttn.network import TTN, add, inner, orthonormalize, scale

__all__ = ["functional_network", "include_functional", "restore_functional"]


def functional_network(like: TTN, weights: Sequence[Any]) -> TTN:
    """The functional's tensor ``W = w_0 (x) ... (x) w_{d-1}`` as a rank-one TTN.

    It has ``like``'s tree, namespace, dtype and device.

    Parameters
    ----------
    like
        A network whose tree and array type ``W`` takes.
    weights
        One weight vector per site (host arrays); every one must be nonzero.
    """
    tree = like.tree
    if len(weights) != tree.n_sites:
        raise ValueError(f"weights: expected {tree.n_sites} vectors, got {len(weights)}")
    for site, w in enumerate(weights):
        if tuple(getattr(w, "shape", ())) != (tree.dims[site],):
            raise ValueError(
                f"weights[{site}]: expected shape ({tree.dims[site]},), "
                f"got {getattr(w, 'shape', type(w).__name__)}"
            )
    root = like.tensors[tree.root]
    xp = array_namespace(root)
    try:
        return product_state(tree, list(weights), dtype=root.dtype, xp=xp, device=device(root))
    except ValueError as err:
        raise ValueError(f"weights: {err}") from err


def restore_functional(y: TTN, w: TTN, value: Any) -> TTN:
    """``y + c W`` with ``c`` such that ``<W, y + c W> = value``, in orthonormal form.

    Every edge rank grows by at most one (``W``'s direction; none where it is already in
    the basis up to round-off, though the rank still counts it).
    """
    defect = value - inner(w, y)
    return orthonormalize(add(y, scale(w, defect / inner(w, w))))


def include_functional(y: TTN, weights: Sequence[Any]) -> TTN:
    """The same state with the functional's directions in every basis (ranks + 1 at most).

    Start a conservative run from this, so that the first Galerkin step already conserves
    ``<W, Y>`` (the ``conserve`` option of the BUG integrators keeps it there).
    """
    w = functional_network(y, weights)
    return restore_functional(y, w, inner(w, y))
