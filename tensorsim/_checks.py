"""Argument checks shared by the library's modules (messages name the argument).

:func:`check_finite` and :func:`check_nonempty` guard the kernel entry points that take
data: a NaN or an Inf sent to LAPACK either never returns (an SVD of a matrix holding an
Inf loops forever) or comes back as a NaN result, so the entry points refuse it before any
factorization starts. Each is meant to run once per public call, never inside a loop.
"""

from __future__ import annotations

import math

from tensorsim._array_api import Array, all_finite, array_namespace, to_float

__all__ = ["check_finite", "check_int", "check_nonempty"]


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is a Python ``int`` (not ``bool``) ``>= minimum``.

    Raises
    ------
    ValueError
        Otherwise, naming ``name`` and the bound.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def check_finite(name: str, x: Array) -> Array:
    """Return ``x`` if it holds no NaN and no Inf; raise ``ValueError`` naming ``name``.

    Works for the arrays of every supported backend (NumPy, CuPy, PyTorch,
    ``array_api_strict``), real or complex. The test is one pass over ``x`` with one
    reduction (:func:`tensorsim._array_api.all_finite`: on torch and CuPy a sum, finite
    exactly when every entry is), so on a GPU it costs one device synchronization; the
    counts in the message are computed only when the check fails.

    Parameters
    ----------
    name
        How the caller's documentation names the argument (``"x"``, ``"op"``, ...).
    x
        The array to check.

    Returns
    -------
    Array
        ``x`` itself.

    Raises
    ------
    ValueError
        ``"<name>: expected finite values, found 1 NaN and 0 Inf among 60 entries (the
        first at index (0, 2, 1))"``.
    """
    if all_finite(x):
        return x
    raise ValueError(f"{name}: expected finite values, found {_describe_nonfinite(x)}")


def _describe_nonfinite(x: Array) -> str:
    """How many NaN and Inf entries ``x`` holds and where the first is (the error path)."""
    xp = array_namespace(x)
    x = x.detach() if hasattr(x, "detach") else x
    nan = xp.isnan(x)
    bad = xp.reshape(~xp.isfinite(x), (-1,))
    n_nan = int(to_float(xp.sum(xp.astype(nan, xp.int64))))
    n_bad = int(to_float(xp.sum(xp.astype(bad, xp.int64))))
    flat = int(to_float(xp.argmax(xp.astype(bad, xp.int8))))
    index = []
    for size in reversed(tuple(int(s) for s in x.shape)):
        index.append(flat % size)
        flat //= size
    return (
        f"{n_nan} NaN and {n_bad - n_nan} Inf among {math.prod(x.shape)} entries "
        f"(the first at index {tuple(reversed(index))})"
    )


def check_nonempty(name: str, x: Array) -> Array:
    """Return ``x`` if no dimension has length zero; raise ``ValueError`` naming ``name``.

    A pure shape test on the host (no device work).

    Raises
    ------
    ValueError
        ``"<name>: expected no dimension of length 0, got shape (0, 3, 4)"``.
    """
    shape = tuple(int(s) for s in x.shape)
    if 0 in shape:
        raise ValueError(f"{name}: expected no dimension of length 0, got shape {shape}")
    return x
