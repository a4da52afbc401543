"""Diagnostics of CP fits: factor match score and core consistency."""

from __future__ import annotations

import logging
import math

from tensorsim._array_api import Array, array_namespace, to_float, to_numpy
from tensorsim._checks import check_finite
from tensorsim.decomp.cp import CP
from tensorsim.tensor_ops import multi_mode_dot

__all__ = ["core_consistency", "fms"]

logger = logging.getLogger(__name__)


def fms(a: CP, b: CP, *, weights: bool = False) -> float:
    r"""Factor match score of two CP tensors, after the best matching of their components.

    For components ``r`` of ``a`` and ``s`` of ``b`` the score is the product over modes of
    the absolute cosines between columns, :math:`\prod_n |\cos(a^{(n)}_r, b^{(n)}_s)|`
    (optionally times :math:`1 - |\lambda_r - \mu_s| / \max(\lambda_r, \mu_s)` with the
    weights of the unit-column forms). The components are matched by the assignment that
    maximizes the total score (Hungarian algorithm on the host, on the small ``R_a x R_b``
    score matrix), and the score is the sum over matched pairs divided by ``max(R_a, R_b)``:
    1 means the same components up to scaling and order.

    Parameters
    ----------
    a, b
        CP tensors of the same shape (the ranks may differ).
    weights
        Include the weight penalty (the score of Tomasi & Bro 2006).

    Returns
    -------
    float
        A number in ``[0, 1]``.

    Raises
    ------
    ValueError
        If the shapes differ, or a factor (or, with ``weights``, a weight) of ``a`` or
        ``b`` holds a NaN or an Inf (seen in the score matrix, which is on the host anyway).

    References
    ----------
    G. Tomasi, R. Bro, Comput. Stat. Data Anal. 50 (2006) 1700.
    """
    import scipy.optimize

    if a.shape != b.shape:
        raise ValueError(f"b: expected a CP of shape {a.shape}, got {b.shape}")
    xp = array_namespace(a.weights, *a.factors, b.weights, *b.factors)
    score = None
    lam_a = xp.abs(a.weights)
    lam_b = xp.abs(b.weights)
    for fa, fb in zip(a.factors, b.factors, strict=True):
        na = xp.linalg.vector_norm(fa, axis=0)
        nb = xp.linalg.vector_norm(fb, axis=0)
        lam_a = lam_a * na
        lam_b = lam_b * nb
        na = xp.where(na > 0, na, xp.ones_like(na))
        nb = xp.where(nb > 0, nb, xp.ones_like(nb))
        cos = xp.abs((fa / na).mT @ (fb / nb))
        score = cos if score is None else score * cos
    if weights:
        top = xp.maximum(lam_a[:, None], lam_b[None, :])
        top = xp.where(top > 0, top, xp.ones_like(top))
        score = score * (1.0 - xp.abs(lam_a[:, None] - lam_b[None, :]) / top)
    host = to_numpy(score)  # R_a x R_b: a combinatorial decision, made on the host
    if not math.isfinite(float(host.sum())):  # entries in [0, 1] when the inputs are finite
        for name, cp in (("a", a), ("b", b)):
            _check_cp(name, cp, weights=weights)
        raise FloatingPointError("fms: the score matrix is not finite (the factor norms overflow)")
    rows, cols = scipy.optimize.linear_sum_assignment(host, maximize=True)
    return float(host[rows, cols].sum()) / max(a.rank, b.rank)


def core_consistency(x: Array, cp: CP) -> float:
    r"""Core consistency diagnostic (CORCONDIA) of a CP fit of the dense tensor ``x``.

    Fits the unconstrained Tucker core ``G`` with the CP factors (weights folded into the
    first) as Tucker factors, ``G = x \times_n A_n^+``, and compares it with the
    superdiagonal identity ``T``: ``100 (1 - ||G - T||^2 / R)``. Close to 100 means the CP
    model is appropriate; low or negative values suggest too many components.

    Parameters
    ----------
    x
        The fitted tensor (dense).
    cp
        A CP tensor of ``x``'s shape.

    Returns
    -------
    float
        The consistency in percent (at most 100; it can be very negative).

    Raises
    ------
    ValueError
        If the shapes differ, or ``x`` or ``cp`` holds a NaN or an Inf.

    References
    ----------
    R. Bro, H. A. L. Kiers, J. Chemometrics 17 (2003) 274.
    """
    xp = array_namespace(x, cp.weights, *cp.factors)
    if cp.shape != tuple(x.shape):
        raise ValueError(f"cp: expected a CP of shape {tuple(x.shape)}, got {cp.shape}")
    check_finite("x", x)
    _check_cp("cp", cp)
    factors = [cp.factors[0] * cp.weights, *cp.factors[1:]]
    pinvs = [xp.linalg.pinv(a) for a in factors]
    core = multi_mode_dot(x, pinvs)
    r = cp.rank
    flat = xp.reshape(core, (-1,))
    # positions of the superdiagonal in the flattened R x ... x R core
    stride = sum(r**k for k in range(x.ndim))
    diag = flat[::stride]
    total = xp.sum(flat * flat)
    dev = total - 2.0 * xp.sum(diag) + r
    return 100.0 * (1.0 - to_float(dev) / r)


def _check_cp(name: str, cp: CP, *, weights: bool = True) -> None:
    """Refuse a NaN or an Inf in the factors (and ``weights``) of ``cp``, named ``name``."""
    if weights:
        check_finite(f"{name}.weights", cp.weights)
    for n, f in enumerate(cp.factors):
        check_finite(f"{name}.factors[{n}]", f)
