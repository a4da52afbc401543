"""Test helpers shared by the test suite and by users' own tests."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tensorsim._array_api import to_numpy

__all__ = ["assert_close"]

logger = logging.getLogger(__name__)


def assert_close(
    actual: Any,
    desired: Any,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    check_dtype: bool = False,
) -> None:
    """Assert that two arrays of any backend agree, comparing on the host.

    Parameters
    ----------
    actual, desired
        Arrays (NumPy, torch, CuPy, array_api_strict) or scalars.
    rtol
        Relative tolerance; default ``4 * sqrt(eps)`` of the less precise dtype.
    atol
        Absolute tolerance.
    check_dtype
        Also require equal dtypes (after conversion to NumPy).
    """
    a, d = to_numpy(actual), to_numpy(desired)
    if a.shape != d.shape:
        raise AssertionError(f"shapes differ: actual {a.shape}, desired {d.shape}")
    if check_dtype and a.dtype != d.dtype:
        raise AssertionError(f"dtypes differ: actual {a.dtype}, desired {d.dtype}")
    if rtol is None:
        kinds = [x.dtype for x in (a, d) if np.issubdtype(x.dtype, np.inexact)]
        eps = max((np.finfo(k).eps for k in kinds), default=np.finfo(np.float64).eps)
        rtol = 4.0 * float(np.sqrt(eps))
    np.testing.assert_allclose(a, d, rtol=rtol, atol=atol)
