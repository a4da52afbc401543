"""The one place that talks to ``array_api_compat``: namespaces, devices, and a registry.

Every kernel of tensorsim starts with ``xp = array_namespace(*inputs)`` and creates new arrays
with ``dtype=`` and ``device=`` taken from its inputs, so the same code runs on NumPy, CuPy,
PyTorch and ``array_api_strict`` arrays. There is no global backend and no environment switch.

What the array API standard lacks (a dense matrix exponential, for example) goes through a
small registry keyed by operation and backend name: :func:`register_impl` adds an
implementation, :func:`get_impl` finds it. A backend with no implementation gets a
``NotImplementedError`` that names it; nothing is ever copied to the host behind the
caller's back.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeAlias

import array_api_compat
import numpy as np

__all__ = [
    "Array",
    "all_finite",
    "array_namespace",
    "backend_name",
    "default_namespace",
    "device",
    "get_impl",
    "host_namespace",
    "host_tridiagonal",
    "is_complex",
    "is_numpy",
    "real_dtype",
    "register_impl",
    "to_complex",
    "to_float",
    "to_numpy",
    "vdot",
]

logger = logging.getLogger(__name__)

#: Any array of a supported backend (NumPy, CuPy, PyTorch, array_api_strict).
Array: TypeAlias = Any

#: Generic implementations (written against the standard) are registered under this key.
GENERIC = "*"

_REGISTRY: dict[tuple[str, str], Callable[..., Any]] = {}


def array_namespace(*arrays: Any) -> ModuleType:
    """Return the array-API namespace shared by ``arrays``.

    Python scalars and ``None`` are ignored. Arrays from two different backends raise
    ``TypeError``.

    Parameters
    ----------
    *arrays
        Arrays (and possibly scalars) given to a kernel.

    Returns
    -------
    ModuleType
        ``array_api_compat.numpy``, ``array_api_compat.torch``, ``array_api_compat.cupy``
        or ``array_api_strict``.
    """
    present = [a for a in arrays if a is not None and not isinstance(a, int | float | complex)]
    if present and all(type(a) is np.ndarray for a in present):
        return _numpy_namespace()  # the common case, without array_api_compat's dispatch
    if not present:
        raise TypeError("array_namespace needs at least one array argument")
    try:
        return array_api_compat.array_namespace(*present)
    except TypeError as err:
        kinds = sorted({type(a).__module__ + "." + type(a).__name__ for a in present})
        raise TypeError(f"expected arrays of one supported backend, got {kinds}: {err}") from err


@functools.cache
def _numpy_namespace() -> ModuleType:
    import array_api_compat.numpy

    return array_api_compat.numpy


def default_namespace() -> ModuleType:
    """The namespace of creation functions called without arrays: NumPy (array-API wrapped)."""
    import array_api_compat.numpy

    return array_api_compat.numpy


def device(x: Array) -> Any:
    """Return the device of array ``x`` (``"cpu"`` for NumPy)."""
    return array_api_compat.device(x)


def backend_name(xp: ModuleType) -> str:
    """Return a short backend name for namespace ``xp``.

    One of ``"numpy"``, ``"torch"``, ``"cupy"``, ``"array_api_strict"`` or the module name.
    """
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_torch_namespace(xp):
        return "torch"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    if array_api_compat.is_array_api_strict_namespace(xp):
        return "array_api_strict"
    return xp.__name__


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend to a NumPy array on the host.

    For input/output and plotting only: kernels never call it.
    Torch tensors are detached first; CuPy arrays are copied from the device.
    """
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if isinstance(x, int | float | complex | np.generic | list | tuple):
        return np.asarray(x)
    # array_api_strict and other DLPack-capable host arrays
    return np.from_dlpack(x)


def is_numpy(*arrays: Any) -> bool:
    """Whether every one of ``arrays`` is a plain ``numpy.ndarray`` (fast paths only)."""
    return all(type(a) is np.ndarray for a in arrays)


def host_namespace() -> ModuleType:
    """The namespace of small host-side matrices (Krylov projections): NumPy.

    Kernels keep their data on the device; only scalars of a recurrence and matrices of
    its size (tens of entries) live on the host, as :func:`to_float` values do. NumPy's own
    namespace (2.x follows the standard for what these use), without the compatibility
    wrappers' per-call cost: the small matrices are decomposed once per Krylov iteration.
    """
    return np


def host_tridiagonal(diagonal: list[float], offdiagonal: list[float]) -> np.ndarray:
    """The real symmetric tridiagonal host matrix with these diagonals."""
    return np.diag(diagonal) + np.diag(offdiagonal, 1) + np.diag(offdiagonal, -1)


def vdot(xp: ModuleType, a: Array, b: Array) -> complex:
    """``sum(conj(a) * b)`` of two vectors of one backend, as a Python complex."""
    if is_numpy(a, b):
        return complex(np.vdot(a, b))
    return to_complex(xp.sum(xp.conj(a) * b))


def all_finite(x: Array) -> bool:
    """Whether every entry of ``x`` is finite (no NaN, no Inf), as a Python bool.

    NumPy (and ``array_api_strict``): one elementwise ``isfinite`` and one reduction.
    PyTorch and CuPy: one sum, which is NaN or infinite as soon as one entry is, so a finite
    sum proves every entry finite; only a non-finite sum (a NaN or an Inf, or finite entries
    whose sum overflows) runs the exact elementwise test. On a GPU that is one pass over
    ``x`` and one transfer of a scalar to the host (torch's CPU ``isfinite`` costs 8x the
    sum). Integer and boolean arrays are always finite; complex entries are finite when
    both parts are.
    """
    if type(x) is np.ndarray:
        return bool(np.isfinite(x).all()) if x.dtype.kind in "fc" else True
    xp = array_namespace(x)
    if not xp.isdtype(x.dtype, ("real floating", "complex floating")):
        return True
    if array_api_compat.is_torch_array(x):
        x = x.detach()
    if array_api_compat.is_torch_array(x) or array_api_compat.is_cupy_array(x):
        if bool(xp.isfinite(xp.sum(x))):  # no floating-point warnings on these backends
            return True
    return bool(xp.all(xp.isfinite(x)))


def to_complex(x: Any) -> complex:
    """Return a 0-d array (or a scalar) as a Python complex, detached from autograd."""
    if array_api_compat.is_torch_array(x):
        x = x.detach()
    return complex(x)


def to_float(x: Any) -> float:
    """Return a real 0-d array (or a scalar) as a Python float, detached from autograd.

    Used where a kernel takes a data-dependent decision (a rank, a step size) on the host.
    """
    if array_api_compat.is_torch_array(x):
        x = x.detach()
    return float(x)


def is_complex(x: Array) -> bool:
    """Return whether ``x`` has a complex floating dtype."""
    xp = array_namespace(x)
    return xp.isdtype(x.dtype, "complex floating")


def real_dtype(x: Array) -> Any:
    """Return the real floating dtype matching the precision of ``x``."""
    xp = array_namespace(x)
    if x.dtype == xp.complex64:
        return xp.float32
    if x.dtype == xp.complex128:
        return xp.float64
    return x.dtype


def register_impl(name: str, backend: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an implementation of operation ``name`` for ``backend``.

    Parameters
    ----------
    name
        Operation name, e.g. ``"expm"``.
    backend
        A name returned by :func:`backend_name`, or ``"*"`` for a generic implementation
        written against the array API standard (used when no specific one exists).

    Returns
    -------
    Callable
        A decorator that registers and returns the function unchanged.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[(name, backend)] = func
        return func

    return decorate


def get_impl(name: str, xp: ModuleType) -> Callable[..., Any]:
    """Return the implementation of ``name`` for namespace ``xp``.

    The backend-specific entry wins over the generic one.

    Raises
    ------
    NotImplementedError
        If neither a backend-specific nor a generic implementation is registered.
    """
    backend = backend_name(xp)
    func = _REGISTRY.get((name, backend)) or _REGISTRY.get((name, GENERIC))
    if func is None:
        raise NotImplementedError(
            f"operation {name!r} has no implementation for backend {backend!r}"
        )
    return func
