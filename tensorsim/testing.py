"""Test helpers shared by the test suite, the benchmarks and users' own tests.

The block-circulant helpers are NumPy-only by design: they are the textbook definition of the
t-product, ``unfold(a * b) = bcirc(a) @ unfold(b)``, that the FFT kernels are checked against.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from tensorsim._array_api import to_numpy

__all__ = [
    "TIMING_NAME",
    "TIMING_UNITS",
    "assert_close",
    "bcirc",
    "differing_variables",
    "fold_slices",
    "is_timing",
    "load_dataset",
    "unfold_slices",
]

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


def bcirc(a: np.ndarray) -> np.ndarray:
    """Block-circulant matrix of ``a`` of shape ``(n1, n2, k)``: the t-product's definition.

    Block ``(i, j)`` of size ``n1 x n2`` is the frontal slice ``a[:, :, (i - j) % k]``.

    Returns
    -------
    numpy.ndarray
        Shape ``(k n1, k n2)``.

    References
    ----------
    M. E. Kilmer, C. D. Martin, Linear Algebra Appl. 435 (2011) 641.
    """
    a = np.asarray(a)
    n1, n2, k = a.shape
    index = (np.arange(k)[:, None] - np.arange(k)[None, :]) % k
    # a[:, :, index] is (n1, n2, k_i, k_j); rows run over (i, n1), columns over (j, n2)
    return a[:, :, index].transpose(2, 0, 3, 1).reshape(k * n1, k * n2)


def unfold_slices(b: np.ndarray) -> np.ndarray:
    """The frontal slices of ``b`` ``(n1, n2, k)`` stacked vertically: ``(k n1, n2)``."""
    b = np.asarray(b)
    return b.transpose(2, 0, 1).reshape(-1, b.shape[1])


def fold_slices(stacked: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`unfold_slices`: ``(k n1, n2)`` back to ``(n1, n2, k)``."""
    stacked = np.asarray(stacked)
    return stacked.reshape(k, -1, stacked.shape[1]).transpose(1, 2, 0)


def load_dataset(path: Any) -> Any:
    """An output file read fully into memory as an ``xarray.Dataset`` (the file is closed).

    :func:`tensorsim.io.open_run`'s dataset: the root group with the bulk series joined from
    their set files, loaded, so that the files can be rewritten or removed while the Dataset
    is in use (as the driver tests do).
    """
    from tensorsim.io import open_run

    return open_run(path)[0]


#: Names of wall-clock measurements in output files: ``wall_*``, ``seconds`` as a word
#: (``seconds``, ``epoch_seconds``, ``seconds_per_step``) and rates ``*_per_s``/``*_per_second``.
TIMING_NAME = re.compile(r"^wall_|(^|_)seconds(_|$)|_per_s(econd)?(_|$)")

#: ``units`` of wall-clock measurements (no output file stores a simulated time in seconds).
TIMING_UNITS = frozenset({"s", "1/s"})


def is_timing(name: str, units: Any = None) -> bool:
    """Whether an output variable named ``name`` with ``units`` is a wall-clock measurement.

    Timings differ between two otherwise identical runs; :func:`differing_variables` skips
    them.
    """
    return bool(TIMING_NAME.search(name)) or (isinstance(units, str) and units in TIMING_UNITS)


def differing_variables(a: Any, b: Any) -> list[str]:
    """Names of the data variables and coordinates of two output files that are not equal.

    Parameters
    ----------
    a, b
        ``xarray.Dataset`` objects (e.g. from :func:`load_dataset`) or paths of output files.

    Returns
    -------
    list of str
        Variables present in only one of them, or with other dimensions, dtype or values
        (bitwise: NaN equals NaN), wall-clock measurements (:func:`is_timing`) excepted.
    """
    a = load_dataset(a) if not hasattr(a, "data_vars") else a
    b = load_dataset(b) if not hasattr(b, "data_vars") else b
    out = []
    for name in sorted(set(a.variables) | set(b.variables)):
        if name not in a.variables or name not in b.variables:
            out.append(name)
            continue
        va, vb = a.variables[name], b.variables[name]
        if is_timing(str(name), va.attrs.get("units")):
            continue
        x, y = np.asarray(va.values), np.asarray(vb.values)
        same = va.dims == vb.dims and x.dtype == y.dtype and x.shape == y.shape
        if same and x.dtype.kind in "fc":
            same = bool(np.all((x == y) | (np.isnan(x) & np.isnan(y))))
        elif same:
            same = bool(np.all(x == y))
        if not same:
            out.append(name)
    return out
