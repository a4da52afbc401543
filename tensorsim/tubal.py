"""The t-product algebra of third-order tensors (Kilmer & Martin).

A tensor ``A`` of shape ``(n1, n2, k)`` is a matrix of tubes of length ``k``; tubes multiply
by circular convolution. In the Fourier domain along the tube axis the t-product becomes
``k`` independent matrix products, one per frequency. For real tensors only the
``k // 2 + 1`` non-negative frequencies are independent (conjugate symmetry), so the
kernels work on the real-FFT half spectrum: half the work of a full FFT.

Layout: :func:`t_fft` returns the Fourier slices **first**, ``(k // 2 + 1, n1, n2)``, so that
the slice-wise products are one batched ``matmul``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from tensorsim._array_api import (
    Array,
    array_namespace,
    default_namespace,
    device,
    real_dtype,
    to_float,
)
from tensorsim._checks import check_finite, check_nonempty

__all__ = [
    "TSVD",
    "f_diagonal",
    "t_fft",
    "t_identity",
    "t_ifft",
    "t_norm",
    "t_product",
    "t_svd",
    "t_transpose",
    "tubal_rank",
]

logger = logging.getLogger(__name__)


def _check3(name: str, a: Array) -> None:
    if a.ndim != 3:
        raise ValueError(
            f"{name}: expected a third-order tensor (n1, n2, k), got {tuple(a.shape)}"
        )


def t_fft(a: Array) -> Array:
    """Fourier slices of ``a`` along the tube axis, slices first.

    Real ``a`` of shape ``(n1, n2, k)`` gives the half spectrum ``(k // 2 + 1, n1, n2)``;
    complex ``a`` gives the full spectrum ``(k, n1, n2)``.
    """
    xp = array_namespace(a)
    _check3("a", a)
    if xp.isdtype(a.dtype, "complex floating"):
        spec = xp.fft.fft(a, axis=2)
    else:
        spec = xp.fft.rfft(a, axis=2)
    return xp.permute_dims(spec, (2, 0, 1))


def t_ifft(spec: Array, k: int, *, real: bool = True) -> Array:
    """Inverse of :func:`t_fft`: back from Fourier slices ``(f, n1, n2)`` to ``(n1, n2, k)``.

    With ``real=True`` the slices are the half spectrum of a real tensor of tube length
    ``k`` (the imaginary parts of the zero and, for even ``k``, the Nyquist slice are
    ignored, as for any inverse real FFT).
    """
    xp = array_namespace(spec)
    if spec.ndim != 3:
        raise ValueError(f"spec: expected Fourier slices (f, n1, n2), got {tuple(spec.shape)}")
    expected = k // 2 + 1 if real else k
    if spec.shape[0] != expected:
        raise ValueError(
            f"spec: expected {expected} Fourier slices for k={k}, got {spec.shape[0]}"
        )
    moved = xp.permute_dims(spec, (1, 2, 0))
    return xp.fft.irfft(moved, n=k, axis=2) if real else xp.fft.ifft(moved, axis=2)


def t_product(a: Array, b: Array) -> Array:
    """t-product ``a * b`` of ``(n1, n2, k)`` and ``(n2, n3, k)`` tensors, shape ``(n1, n3, k)``.

    Equal to the block-circulant product ``unfold(a * b) = bcirc(a) @ unfold(b)``, computed
    as one batched matrix product on the (half) spectrum: ``O(n1 n2 n3 k)`` instead of the
    ``O(n1 n2 n3 k^2)`` of the block-circulant matrix.

    References
    ----------
    M. E. Kilmer, C. D. Martin, Linear Algebra Appl. 435 (2011) 641.
    """
    xp = array_namespace(a, b)
    _check3("a", a)
    _check3("b", b)
    if a.shape[1] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(
            f"b: expected shape ({a.shape[1]}, n3, {a.shape[2]}) to follow a of shape "
            f"{tuple(a.shape)}, got {tuple(b.shape)}"
        )
    real = not (xp.isdtype(a.dtype, "complex floating") or xp.isdtype(b.dtype, "complex floating"))
    if not real:
        a = xp.astype(a, xp.result_type(a.dtype, b.dtype, xp.complex64))
        b = xp.astype(b, a.dtype)
    return t_ifft(t_fft(a) @ t_fft(b), a.shape[2], real=real)


def t_transpose(a: Array) -> Array:
    """t-transpose: (conjugate-)transpose each frontal slice, reverse slices ``1 .. k-1``.

    In the Fourier domain this is the conjugate transpose of every slice, so
    ``t_transpose(a * b) == t_transpose(b) * t_transpose(a)``.
    """
    xp = array_namespace(a)
    _check3("a", a)
    at = xp.conj(xp.permute_dims(a, (1, 0, 2)))
    if a.shape[2] == 1:
        return at
    return xp.concat([at[:, :, :1], xp.flip(at[:, :, 1:], axis=2)], axis=2)


def t_identity(
    n: int, k: int, *, xp: ModuleType | None = None, dtype: Any = None, device: Any = None
) -> Array:
    """Identity of the t-product: first frontal slice ``eye(n)``, the others zero.

    Parameters
    ----------
    n, k
        Size of the slices and tube length.
    xp
        Array namespace (default: NumPy through ``array_api_compat``).
    dtype, device
        Of the result (default float64 on the namespace's default device).
    """
    if xp is None:
        xp = default_namespace()
    if n < 1 or k < 1:
        raise ValueError(f"n, k: expected positive sizes, got n={n}, k={k}")
    dtype = xp.float64 if dtype is None else dtype
    eye = xp.eye(n, dtype=dtype, device=device)
    zeros = xp.zeros((n, n, k - 1), dtype=dtype, device=device)
    return xp.concat([eye[:, :, None], zeros], axis=2)


def f_diagonal(tubes: Array, n1: int | None = None, n2: int | None = None) -> Array:
    """f-diagonal tensor ``(n1, n2, k)`` whose diagonal tubes are the rows of ``tubes``.

    ``tubes`` has shape ``(p, k)`` with ``p <= min(n1, n2)`` (default ``n1 = n2 = p``).
    """
    xp = array_namespace(tubes)
    if tubes.ndim != 2:
        raise ValueError(f"tubes: expected shape (p, k), got {tuple(tubes.shape)}")
    p, k = tubes.shape
    n1 = p if n1 is None else n1
    n2 = p if n2 is None else n2
    if p > min(n1, n2):
        raise ValueError(f"tubes: {p} tubes do not fit on the diagonal of ({n1}, {n2}, {k})")
    rows = xp.concat([tubes, xp.zeros((n1 - p, k), dtype=tubes.dtype, device=device(tubes))])
    mask = xp.eye(n1, n2, dtype=tubes.dtype, device=device(tubes))
    return mask[:, :, None] * rows[:, None, :]


@dataclass(frozen=True)
class TSVD:
    """Thin t-SVD ``a = u * f_diagonal(s) * t_transpose(v)``.

    Attributes
    ----------
    u
        ``(n1, p, k)`` t-orthogonal columns, ``p = min(n1, n2)``.
    s
        Singular tubes ``(p, k)``.
    v
        ``(n2, p, k)`` t-orthogonal columns.
    s_fourier
        Singular values of each Fourier slice, ``(f, p)`` (half spectrum for real ``a``),
        descending along ``p``.
    """

    u: Array
    s: Array
    v: Array
    s_fourier: Array

    def to_dense(self) -> Array:
        """Rebuild ``u * f_diagonal(s) * t_transpose(v)``."""
        p = self.s.shape[0]
        return t_product(t_product(self.u, f_diagonal(self.s, p, p)), t_transpose(self.v))


def t_svd(a: Array) -> TSVD:
    """Thin t-SVD: an SVD of every Fourier slice, transformed back.

    For real ``a`` only the half spectrum is decomposed. The zero-frequency slice (and the
    Nyquist slice for even ``k``) is real, and is decomposed as a real matrix so that its
    singular vectors carry no complex phase that the inverse real FFT would drop.

    Parameters
    ----------
    a
        Third-order tensor ``(n1, n2, k)``, finite, no dimension of length 0. An all-zero
        ``a`` gives zero singular tubes.

    Returns
    -------
    TSVD
        Real factors for real ``a``.

    Raises
    ------
    ValueError
        If ``a`` is not third-order, has a dimension of length 0, or a NaN or an Inf.
    """
    xp = array_namespace(a)
    _check3("a", a)
    check_nonempty("a", a)
    check_finite("a", a)
    k = a.shape[2]
    spec = t_fft(a)
    real = not xp.isdtype(a.dtype, "complex floating")
    u, s, vh = xp.linalg.svd(spec, full_matrices=False)
    if real:
        real_slices = [0] + ([k // 2] if k % 2 == 0 and k > 1 else [])
        us, ss, vhs = [], [], []
        for j in range(spec.shape[0]):
            if j in real_slices:
                uj, sj, vhj = xp.linalg.svd(xp.real(spec[j, ...]), full_matrices=False)
                us.append(xp.astype(uj, u.dtype))
                ss.append(sj)
                vhs.append(xp.astype(vhj, vh.dtype))
            else:
                us.append(u[j, ...])
                ss.append(s[j, ...])
                vhs.append(vh[j, ...])
        u, s, vh = xp.stack(us), xp.stack(ss), xp.stack(vhs)
    v = xp.conj(vh).mT
    s_tubes = t_ifft(xp.astype(s, u.dtype)[:, None, :], k, real=real)[0, :, :]
    return TSVD(
        u=t_ifft(u, k, real=real),
        s=s_tubes,
        v=t_ifft(v, k, real=real),
        s_fourier=s,
    )


def tubal_rank(a: Array, *, rtol: float | None = None) -> int:
    """Tubal rank: the largest numerical rank over the Fourier slices.

    A singular value counts when it exceeds ``rtol`` times the largest singular value of
    all slices (default ``max(n1, n2) * k * eps``). An all-zero ``a`` has tubal rank 0.

    Raises
    ------
    ValueError
        If ``a`` is not third-order, has a dimension of length 0, or a NaN or an Inf.
    """
    xp = array_namespace(a)
    _check3("a", a)
    check_nonempty("a", a)
    check_finite("a", a)
    s = xp.linalg.svdvals(t_fft(a))
    smax = to_float(xp.max(s)) if math.prod(s.shape) else 0.0
    if smax == 0.0:
        return 0
    eps = to_float(xp.finfo(real_dtype(a)).eps)
    rtol = max(a.shape[0], a.shape[1]) * a.shape[2] * eps if rtol is None else rtol
    return int(xp.max(xp.sum(xp.astype(s > rtol * smax, xp.int64), axis=1)))


def t_norm(a: Array, ord: Literal["fro", "spectral"] = "fro") -> float:
    """Norm of a third-order tensor.

    ``"fro"``: the Frobenius norm (equal to ``sqrt(sum_j ||A_hat_j||_F^2 / k)``);
    ``"spectral"``: the norm of the t-linear operator ``b -> a * b``, i.e. the 2-norm of
    ``bcirc(a)``, the largest singular value over all Fourier slices.
    """
    xp = array_namespace(a)
    _check3("a", a)
    if ord == "fro":
        return to_float(xp.linalg.vector_norm(a))
    if ord == "spectral":
        check_finite("a", a)  # an SVD of a slice holding an Inf may never return
        return to_float(xp.max(xp.linalg.svdvals(t_fft(a))))
    raise ValueError(f"ord: expected 'fro' or 'spectral', got {ord!r}")
