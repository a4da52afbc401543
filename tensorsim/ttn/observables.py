"""Observables of a tree tensor network state: the expectation value of an operator.

``<Y|O|Y> / <Y|Y>`` for an operator given as a :class:`~tensorsim.ttn.operator.TTNO` on the
state's tree or as a :class:`~tensorsim.ttn.operator.SumOfProducts` (compressed on the
state's tree first). The numerator is the root's down environment
(:func:`tensorsim.ttn.environment.down_environments`), one leaves-to-root sweep that does
not need an orthonormal state; the denominator is ``norm(Y) ** 2``.
"""

from __future__ import annotations

import logging

from tensorsim._array_api import array_namespace, device, to_numpy
from tensorsim.ttn.apply import gram_operator
from tensorsim.ttn.environment import down_environments
from tensorsim.ttn.network import TTN, inner
from tensorsim.ttn.operator import TTNO, SumOfProducts, to_ttno

__all__ = ["energy_variance", "expectation", "fidelity"]

logger = logging.getLogger(__name__)


def expectation(state: TTN, operator: TTNO | SumOfProducts) -> complex:
    """The normalized expectation value ``<Y|O|Y> / <Y|Y>``.

    Parameters
    ----------
    state
        The state ``Y`` (orthonormal or not; any array backend).
    operator
        ``O`` as a :class:`TTNO` on ``state.tree``, or as a :class:`SumOfProducts` with the
        site dimensions of ``state.tree`` (then compressed by :func:`to_ttno` on that tree,
        in the state's array namespace; pass a TTNO to reuse one compression).

    Returns
    -------
    complex
        Always a Python ``complex``, whatever the operator: for a Hermitian ``O`` the
        imaginary part is round-off and ``.real`` is the value. The real part is computed
        as ``float(Re <Y|O|Y>) / norm(Y) ** 2`` (and the imaginary part alike), so
        ``expectation(y, h).real`` is bitwise
        ``float(np.real(down_environments(y, h)[root][0, 0, 0])) / y.norm() ** 2``.

    Raises
    ------
    TypeError
        If ``state`` is not a TTN or ``operator`` neither a TTNO nor a SumOfProducts.
    ValueError
        If ``operator`` lives on another tree (or other site dimensions) than ``state``,
        or if ``state`` is zero.

    Examples
    --------
    >>> import numpy as np
    >>> from tensorsim.ttn import Tree, product_state
    >>> tree = Tree.balanced_binary(2)
    >>> y = product_state(tree, [np.array([1.0, 0.0])] * 2)
    >>> z = np.diag([1.0, -1.0])
    >>> value = expectation(y, SumOfProducts([(1.0, {0: z}), (0.5, {0: z, 1: z})], (2, 2)))
    >>> round(value.real, 12), value.imag
    (1.5, 0.0)
    """
    if not isinstance(state, TTN):
        raise TypeError(f"state: expected a TTN, got {type(state).__name__}")
    tree = state.tree
    if isinstance(operator, SumOfProducts):
        if operator.dims != tree.dims:
            raise ValueError(
                f"operator: site dimensions {operator.dims} differ from those of the "
                f"state's tree {tree.dims}"
            )
        like = state.tensors[tree.root]
        xp = array_namespace(like)
        # NumPy states take to_ttno's own NumPy result (no conversion at all)
        host = to_numpy(like) is like
        operator = to_ttno(
            operator,
            tree,
            xp=None if host else xp,
            device=None if host else device(like),
            check_hermitian=False,
        )
    elif isinstance(operator, TTNO):
        if operator.tree != tree:
            raise ValueError(
                "operator: expected a TTNO on the state's tree (operator.tree differs from "
                "state.tree)"
            )
    else:
        raise TypeError(
            f"operator: expected a TTNO or a SumOfProducts, got {type(operator).__name__}"
        )
    norm2 = state.norm() ** 2
    if norm2 == 0.0:
        raise ValueError("state: the zero state has no expectation values")
    value = complex(to_numpy(down_environments(state, operator)[tree.root])[0, 0, 0])
    return complex(value.real / norm2, value.imag / norm2)


def fidelity(a: TTN, b: TTN) -> float:
    """``|<a|b>|^2 / (<a|a> <b|b>)``: 1 for the same ray, 0 for orthogonal states.

    Raises
    ------
    TypeError
        If ``a`` or ``b`` is not a TTN.
    ValueError
        If they live on different trees, or either is zero.
    """
    for name, y in (("a", a), ("b", b)):
        if not isinstance(y, TTN):
            raise TypeError(f"{name}: expected a TTN, got {type(y).__name__}")
    if a.tree != b.tree:
        raise ValueError("b: expected a TTN on the same tree as a")
    na, nb = a.norm(), b.norm()
    if na == 0.0 or nb == 0.0:
        raise ValueError(f"{'a' if na == 0.0 else 'b'}: the zero state has no fidelity")
    overlap = complex(to_numpy(inner(a, b)))
    return abs(overlap) ** 2 / (na**2 * nb**2)


def energy_variance(state: TTN, hamiltonian: TTNO) -> float:
    """``<H^2> - <H>^2`` (normalized) of a Hermitian ``H``: zero exactly for eigenstates.

    ``<H^2> = ||H Y||^2 / ||Y||^2`` with ``H^H H`` from
    :func:`~tensorsim.ttn.apply.gram_operator`, compressed on every call (a loop over many
    states keeps ``gram_operator(H)`` and calls :func:`expectation` with it). The
    difference of two numbers of size ``E^2`` is resolved down to about ``eps * E^2``;
    round-off below zero is returned as zero.
    """
    if not isinstance(hamiltonian, TTNO):
        raise TypeError(f"hamiltonian: expected a TTNO, got {type(hamiltonian).__name__}")
    energy = expectation(state, hamiltonian)
    squared = expectation(state, gram_operator(hamiltonian)).real
    return max(squared - abs(energy) ** 2, 0.0)
