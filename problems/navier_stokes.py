r"""2-D incompressible Navier-Stokes in vorticity form on the periodic unit square.

The model of the FNO and MG-TFNO Navier-Stokes benchmarks (arXiv 2010.08895, 2310.00120):

.. math::

    \partial_t w + u \cdot \nabla w = \nu \Delta w + f, \qquad
    u = \nabla^\perp \psi = (\partial_y \psi, -\partial_x \psi), \qquad -\Delta \psi = w,

on :math:`[0, 1)^2` with periodic boundaries, forcing
:math:`f(x, y) = A (\sin 2\pi(x + y) + \cos 2\pi(x + y))` (``A = 0.1`` by default,
:func:`forcing_field`) and Gaussian-random-field initial vorticity
:math:`w_0 \sim N(0, \tau^{2\alpha - 2} (-\Delta + \tau^2 I)^{-\alpha})` with zero mean
(``alpha = 2.5``, ``tau = 7``, :func:`initial_vorticity`).

Discretization (:func:`solve`)
------------------------------
- Pseudo-spectral on ``n x n`` grid points ``x_i = i / n``: the state is the half spectrum
  ``rfftn(w)``; velocities and gradients are formed spectrally, the product ``u . grad w`` in
  physical space.
- 2/3-rule dealiasing: only the modes ``|k_x|, |k_y| <= (n - 1) // 3`` are kept, in the
  nonlinear term and in the state (``w0`` is projected onto them), so the discrete system is
  the alias-free Galerkin truncation.
- Time stepping: the integrating-factor (Lawson) fourth-order Runge-Kutta scheme. The viscous
  term is integrated exactly (``exp(-nu |2 pi k|^2 t)`` per mode, unconditionally stable);
  advection and forcing are explicit RK4. Order 4 in ``dt``, against first order for the
  forward Euler / Crank-Nicolson step of the FNO reference generator.
- CFL check: every step computes ``c = dt * n * max(|u| + |v|)``. RK4 is stable on the
  imaginary axis up to ``|lambda dt| = 2 sqrt(2)``; the largest advective rate is
  ``2 pi k_c (|u| + |v|)`` with ``k_c = (n - 1) // 3``, so linear stability needs
  ``c <= 2 sqrt(2) n / (2 pi k_c)``, about 1.37 (:func:`cfl_limit`). A step with
  ``c > max_cfl`` (default 1.0) raises ``ValueError`` naming ``dt`` and the step size that
  would pass; there is no silent sub-stepping, so a sample's result never depends on the
  other samples of its batch.

Datasets
--------
A dataset holds pairs ``(w0, w(T))`` of many samples, solved once at the solver resolution
and stored at each requested resolution by striding in physical space. The file layout (one
netCDF4/HDF5 file, written by ``python -m drivers.navier_stokes generate``):

- dimension ``sample`` (the record dimension, coordinate = sample index ``0 .. S-1``);
- per stored resolution ``N``: coordinates ``xN`` and ``yN`` = grid points ``i / N``;
  variables ``input_N`` = ``w0`` and ``output_N`` = ``w(T)``, dims ``(sample, xN, yN)``,
  float32, ``input_N[s, i, j] = w0(x = i / N, y = j / N)`` of sample ``s``;
- root attributes :data:`DATASET_ATTRS` (``viscosity``, ``t_end``, ``dt``, ``steps``,
  ``forcing``, ``forcing_amplitude``, ``solver_resolution``, ``resolutions``, ``seed``,
  ``alpha``, ``tau``, ``scheme``) and ``finished = 1``.

:func:`load_dataset` reads it back and checks it. Sample ``s`` is drawn from the generator
``numpy.random.default_rng([seed, s])``, so a dataset does not depend on how the samples are
spread over MPI ranks or batched.

Arrays: :func:`solve`, :func:`gaussian_random_field`, :func:`subsample` and
:func:`taylor_green` work on NumPy, CuPy, PyTorch and ``array_api_strict`` arrays alike (the
namespace comes from the inputs); the random numbers are drawn on the host by NumPy and
copied to the target device once. :func:`load_dataset` reads files into NumPy arrays (it
imports xarray and h5netcdf when called).

References
----------
Z. Li et al., "Fourier neural operator for parametric partial differential equations",
arXiv 2010.08895 (the data set). J. Kossaifi et al., "Multi-grid tensorized Fourier neural
operator for high-resolution PDEs", arXiv 2310.00120. J. D. Lawson, SIAM J. Numer. Anal. 4
(1967) 372 (integrating-factor Runge-Kutta).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from tensorsim._array_api import Array, array_namespace, default_namespace, device, to_float
from tensorsim.config import ConfigError, Params, param

__all__ = [
    "DATASET_ATTRS",
    "FORCING_FORMULA",
    "SCHEME",
    "DatasetParams",
    "NavierStokesDataset",
    "NavierStokesParams",
    "Solution",
    "cfl_limit",
    "dealias_cutoff",
    "forcing_field",
    "gaussian_random_field",
    "initial_vorticity",
    "load_dataset",
    "solve",
    "solve_samples",
    "subsample",
    "taylor_green",
    "time_steps",
    "variable_names",
]

logger = logging.getLogger(__name__)

#: The forcing as stored in a dataset's ``forcing`` attribute (``A`` = ``forcing_amplitude``).
FORCING_FORMULA = "A*(sin(2*pi*(x+y)) + cos(2*pi*(x+y)))"

#: The time integrator, as stored in a dataset's ``scheme`` attribute.
SCHEME = "pseudo-spectral, 2/3 dealiasing, integrating-factor (Lawson) RK4"

#: Root attributes every dataset file carries (besides the writer's own).
DATASET_ATTRS = (
    "viscosity",
    "t_end",
    "dt",
    "steps",
    "forcing",
    "forcing_amplitude",
    "solver_resolution",
    "resolutions",
    "seed",
    "alpha",
    "tau",
    "scheme",
)


@dataclass(frozen=True)
class NavierStokesParams(Params):
    """The equation, its initial data and the discretization.

    Attributes
    ----------
    resolution
        Solver grid points per direction ``n``.
    viscosity
        Kinematic viscosity ``nu``.
    t_end
        Final time ``T`` of the map ``w0 -> w(T)``.
    dt
        Largest time step; the step used is ``t_end / ceil(t_end / dt)``.
    forcing
        Amplitude ``A`` of ``f = A (sin 2 pi (x + y) + cos 2 pi (x + y))``; 0: unforced.
    alpha, tau
        Initial vorticity ``N(0, tau^(2 alpha - 2) (-Delta + tau^2 I)^(-alpha))``.
        ``alpha > 1`` gives a field of finite variance in 2-D.
    max_cfl
        Largest advective CFL number ``dt n max(|u| + |v|)`` allowed (at most
        ``cfl_limit(resolution)``, about 1.37); a step beyond it raises.
    """

    resolution: int = param(128, "solver grid points per direction", ge=8)
    viscosity: float = param(1e-3, "kinematic viscosity nu", gt=0.0)
    t_end: float = param(10.0, "final time T of the map w0 -> w(T)", gt=0.0)
    dt: float = param(0.02, "largest time step (the step is t_end / ceil(t_end / dt))", gt=0.0)
    forcing: float = param(0.1, "amplitude A of f = A (sin 2pi(x+y) + cos 2pi(x+y))")
    alpha: float = param(2.5, "smoothness alpha of the initial Gaussian random field", gt=1.0)
    tau: float = param(7.0, "inverse length scale tau of the initial field", gt=0.0)
    max_cfl: float = param(1.0, "largest advective CFL number dt n max(|u|+|v|)", gt=0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        limit = cfl_limit(self.resolution)
        if self.max_cfl > limit:
            raise ConfigError(
                f"config key 'max_cfl': expected at most the RK4 stability limit {limit:.3f} "
                f"for resolution {self.resolution}, got {self.max_cfl!r}"
            )


@dataclass(frozen=True)
class DatasetParams(NavierStokesParams):
    """A data set of ``(w0, w(T))`` pairs: the problem plus samples and stored resolutions.

    Attributes
    ----------
    samples
        Number of samples (train and test together: the reader chooses the split).
    seed
        Base seed: sample ``s`` is drawn from ``numpy.random.default_rng([seed, s])``.
    resolutions
        Stored resolutions, each dividing ``resolution`` (the fields are strided by
        ``resolution / N``).
    path
        The dataset file (netCDF4/HDF5).
    """

    samples: int = param(1200, "number of samples (train and test)", ge=1)
    seed: int = param(0, "base seed: sample s uses default_rng([seed, s])", ge=0)
    resolutions: tuple[int, ...] = param((64, 128), "stored resolutions", ge=2)
    path: str = param("runs/navier_stokes.nc", "the dataset file")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.resolutions:
            raise ConfigError("config key 'resolutions': expected at least one resolution")
        if len(set(self.resolutions)) != len(self.resolutions):
            raise ConfigError(
                f"config key 'resolutions': expected distinct values, got {self.resolutions}"
            )
        for n in self.resolutions:
            if self.resolution % n:
                raise ConfigError(
                    f"config key 'resolutions': {n} does not divide the solver resolution "
                    f"{self.resolution} (stored fields are strided subsamples)"
                )


class Solution(NamedTuple):
    """Result of :func:`solve`.

    Attributes
    ----------
    w
        Vorticity at ``t_end`` on the grid, same shape, namespace and dtype as ``w0``.
    steps
        Number of time steps taken.
    dt
        The time step used.
    max_cfl
        Largest advective CFL number met (over steps and samples).
    """

    w: Array
    steps: int
    dt: float
    max_cfl: float


class NavierStokesDataset(NamedTuple):
    """A dataset read by :func:`load_dataset`.

    Attributes
    ----------
    inputs
        Initial vorticity ``w0``, float32, shape ``(samples, n, n)``.
    outputs
        Vorticity ``w(T)``, float32, shape ``(samples, n, n)``.
    grid
        Grid points ``i / n`` of both axes, shape ``(n,)``.
    samples
        The sample indices read, shape ``(samples,)``.
    resolutions
        All stored resolutions of the file.
    attrs
        The root attributes of the file (:data:`DATASET_ATTRS` and the writer's).
    """

    inputs: np.ndarray
    outputs: np.ndarray
    grid: np.ndarray
    samples: np.ndarray
    resolutions: tuple[int, ...]
    attrs: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# grid, operators and data


def dealias_cutoff(n: int) -> int:
    """Largest wavenumber ``k_c = (n - 1) // 3`` kept by the 2/3 rule on ``n`` points.

    Products of two fields with ``|k| <= k_c`` alias only to ``|k| > k_c`` when ``3 k_c < n``.
    """
    return (_grid_size(n, "n") - 1) // 3


def cfl_limit(n: int) -> float:
    """Linear stability bound of the CFL number ``dt n max(|u| + |v|)`` on ``n`` points.

    RK4 is stable on the imaginary axis up to ``2 sqrt(2)``; the largest advective rate of the
    dealiased system is ``2 pi k_c max(|u| + |v|)`` (:func:`dealias_cutoff`), so the bound is
    ``2 sqrt(2) n / (2 pi k_c)``, about 1.37 (1.372 for n = 128).
    """
    return 2.0 * math.sqrt(2.0) * n / (2.0 * math.pi * dealias_cutoff(n))


def time_steps(t_end: float, dt: float) -> tuple[int, float]:
    """Number of steps and step size: ``ceil(t_end / dt)`` equal steps of at most ``dt``.

    Raises
    ------
    ValueError
        If ``t_end`` or ``dt`` is not a positive finite number.
    """
    t_end, dt = _positive_number(t_end, "t_end"), _positive_number(dt, "dt")
    steps = max(1, math.ceil(t_end / dt * (1.0 - 1e-12)))
    return steps, t_end / steps


def _grid_size(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 4:
        raise ValueError(f"{name}: expected an integer number of grid points >= 4, got {n!r}")
    return int(n)


def _positive_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


def _grid(n: int, xp: ModuleType, dtype: Any, dev: Any) -> Array:
    """Grid points ``i / n``, shape ``(n,)``."""
    return xp.arange(n, dtype=dtype, device=dev) / n


def _wavenumbers(n: int, xp: ModuleType, dtype: Any, dev: Any) -> tuple[Array, Array]:
    """Integer wavenumbers: ``k_x`` of the full axis ``(n, 1)``, ``k_y`` of the half ``(1, m)``."""
    kx = xp.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=dev)
    ky = xp.fft.rfftfreq(n, d=1.0 / n, dtype=dtype, device=dev)
    return kx[:, None], ky[None, :]


def _resolved(kx: Array, ky: Array, cutoff: int, xp: ModuleType) -> Array:
    """Real mask of the modes ``|k_x|, |k_y| <= cutoff``, shape ``(n, m)``."""
    keep = (xp.abs(kx) <= cutoff) & (ky <= cutoff)
    return xp.astype(keep, kx.dtype)


def forcing_field(
    n: int,
    amplitude: float = 0.1,
    *,
    xp: ModuleType | None = None,
    dtype: Any = None,
    device: Any = None,
) -> Array:
    """The forcing ``A (sin 2 pi (x + y) + cos 2 pi (x + y))`` on the ``n x n`` grid.

    Parameters
    ----------
    n
        Grid points per direction.
    amplitude
        ``A`` (0.1 in arXiv 2010.08895).
    xp, dtype, device
        Namespace (NumPy when None), dtype (float64 when None) and device of the result.

    Returns
    -------
    Array
        Shape ``(n, n)``, ``f[i, j] = f(i / n, j / n)``.
    """
    n = _grid_size(n, "n")
    xp = default_namespace() if xp is None else xp
    dtype = xp.float64 if dtype is None else dtype
    x = _grid(n, xp, dtype, device)
    phase = 2.0 * math.pi * (x[:, None] + x[None, :])
    return float(amplitude) * (xp.sin(phase) + xp.cos(phase))


def gaussian_random_field(
    noise: Array, *, alpha: float = 2.5, tau: float = 7.0, cutoff: int | None = None
) -> Array:
    r"""Colour white noise into ``N(0, tau^(2 alpha - 2) (-Delta + tau^2 I)^(-alpha))``.

    The field is ``w = sum_k sqrt(mu_k) xi_k exp(2 pi i k . x)`` with
    ``mu_k = tau^(2 alpha - 2) (4 pi^2 |k|^2 + tau^2)^(-alpha)``, ``mu_0 = 0`` (zero mean) and
    ``xi_k`` the unitary DFT of the noise, so its covariance is exactly the truncated
    Karhunen-Loeve sum of the operator (variance ``sum_k mu_k`` at every point).

    Parameters
    ----------
    noise
        I.i.d. standard normal values, shape ``(..., n, n)``, real floating.
    alpha, tau
        Smoothness and inverse length scale (2.5 and 7 in arXiv 2010.08895).
    cutoff
        If given, keep only the modes ``|k_x|, |k_y| <= cutoff`` (a band-limited field).

    Returns
    -------
    Array
        The field, same shape, namespace and dtype as ``noise``.

    Notes
    -----
    The FNO reference generator takes the real part of a complex field instead, which doubles
    the variance; this function has the nominal covariance.
    """
    xp = array_namespace(noise)
    n = _square_size(noise, "noise")
    if not xp.isdtype(noise.dtype, "real floating"):
        raise TypeError(f"noise: expected a real floating array, got {noise.dtype}")
    alpha, tau = _positive_number(alpha, "alpha"), _positive_number(tau, "tau")
    kx, ky = _wavenumbers(n, xp, noise.dtype, device(noise))
    k2 = (2.0 * math.pi) ** 2 * (kx**2 + ky**2)
    sqrt_mu = tau ** (alpha - 1.0) * (k2 + tau**2) ** (-alpha / 2.0)
    sqrt_mu = xp.where(k2 == 0.0, xp.zeros_like(sqrt_mu), sqrt_mu)
    if cutoff is not None:
        sqrt_mu = sqrt_mu * _resolved(kx, ky, cutoff, xp)
    spectrum = xp.fft.rfftn(noise, axes=(-2, -1), norm="ortho") * sqrt_mu
    return xp.fft.irfftn(spectrum, s=(n, n), axes=(-2, -1), norm="forward")


def initial_vorticity(
    n: int,
    indices: Sequence[int],
    *,
    seed: int,
    alpha: float = 2.5,
    tau: float = 7.0,
    xp: ModuleType | None = None,
    device: Any = None,
) -> Array:
    """Initial vorticity of the given samples, band-limited to the modes the solver keeps.

    Sample ``s`` colours the white noise ``default_rng([seed, s]).standard_normal((n, n))``
    (drawn on the host, float64) with :func:`gaussian_random_field`, keeping the modes
    ``|k_x|, |k_y| <= dealias_cutoff(n)``.

    Parameters
    ----------
    n
        Grid points per direction.
    indices
        Sample indices (non-negative integers).
    seed
        Base seed (non-negative integer).
    alpha, tau
        Parameters of the Gaussian random field.
    xp, device
        Namespace (NumPy when None) and device of the result.

    Returns
    -------
    Array
        float64, shape ``(len(indices), n, n)``.
    """
    n = _grid_size(n, "n")
    xp = default_namespace() if xp is None else xp
    seed = _index(seed, "seed")
    fields = [
        xp.asarray(
            np.random.default_rng([seed, _index(s, "indices")]).standard_normal((n, n)),
            device=device,
        )
        for s in indices
    ]
    if not fields:
        raise ValueError("indices: expected at least one sample index")
    return gaussian_random_field(xp.stack(fields), alpha=alpha, tau=tau, cutoff=dealias_cutoff(n))


def _index(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name}: expected non-negative integers, got {value!r}")
    return int(value)


def taylor_green(
    n: int,
    t: float,
    *,
    mode: int = 1,
    viscosity: float,
    xp: ModuleType | None = None,
    dtype: Any = None,
    device: Any = None,
) -> Array:
    """The Taylor-Green vortex, an exact unforced solution, on the ``n x n`` grid.

    ``w = 2 kappa cos(kappa x) cos(kappa y) exp(-2 nu kappa^2 t)`` with ``kappa = 2 pi mode``:
    its stream function ``psi = w / (2 kappa^2)`` makes ``u . grad w = 0``, so only viscosity
    acts, and ``Delta w = -2 kappa^2 w``.

    Parameters
    ----------
    n
        Grid points per direction.
    t
        Time (>= 0).
    mode
        Wavenumber (positive integer).
    viscosity
        ``nu``.
    xp, dtype, device
        Namespace (NumPy when None), dtype (float64 when None) and device.

    Returns
    -------
    Array
        Shape ``(n, n)``.
    """
    n = _grid_size(n, "n")
    if isinstance(mode, bool) or not isinstance(mode, int) or mode < 1:
        raise ValueError(f"mode: expected a positive integer, got {mode!r}")
    nu = _positive_number(viscosity, "viscosity")
    xp = default_namespace() if xp is None else xp
    dtype = xp.float64 if dtype is None else dtype
    kappa = 2.0 * math.pi * mode
    x = kappa * _grid(n, xp, dtype, device)
    decay = 2.0 * kappa * math.exp(-2.0 * nu * kappa**2 * float(t))
    return decay * (xp.cos(x)[:, None] * xp.cos(x)[None, :])


def subsample(w: Array, n: int) -> Array:
    """The field on the coarser ``n x n`` grid: every ``N / n``-th point of ``(..., N, N)``.

    Grid point ``i / n`` of the result is grid point ``(i N / n) / N`` of ``w``.

    Raises
    ------
    ValueError
        If ``n`` does not divide the resolution ``N`` of ``w``.
    """
    big = _square_size(w, "w")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    if big % n:
        raise ValueError(f"n: {n} does not divide the resolution {big} of w")
    stride = big // n
    return w[..., ::stride, ::stride]


def _square_size(w: Any, name: str) -> int:
    shape = getattr(w, "shape", None)
    if shape is None or len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name}: expected an array of shape (..., n, n), got shape {shape}")
    return int(shape[-1])


# ---------------------------------------------------------------------------------------------
# the solver


@dataclass(frozen=True)
class _Operators:
    """Spectral operators on the half spectrum ``(n, n // 2 + 1)`` of an ``n x n`` grid."""

    n: int
    u_of_w: Array  # w_hat -> u_hat = d_y psi_hat, psi_hat = w_hat / |2 pi k|^2
    v_of_w: Array  # w_hat -> v_hat = -d_x psi_hat
    d_x: Array  # 2 pi i k_x
    d_y: Array  # 2 pi i k_y
    mask: Array  # 1 on the resolved modes, 0 elsewhere
    half: Array  # exp(-nu |2 pi k|^2 h / 2)
    full: Array  # exp(-nu |2 pi k|^2 h)


def _operators(n: int, viscosity: float, h: float, xp: ModuleType, dtype: Any, dev: Any):
    kx, ky = _wavenumbers(n, xp, dtype, dev)
    cdtype = xp.complex64 if dtype == xp.float32 else xp.complex128
    i2pi = xp.asarray(2j * math.pi, dtype=cdtype, device=dev)
    d_x, d_y = xp.astype(kx, cdtype) * i2pi, xp.astype(ky, cdtype) * i2pi
    k2 = (2.0 * math.pi) ** 2 * (kx**2 + ky**2)
    inv_k2 = xp.where(k2 == 0.0, xp.zeros_like(k2), 1.0 / xp.where(k2 == 0.0, 1.0, k2))
    half = xp.exp(-0.5 * viscosity * h * k2)
    return _Operators(
        n=n,
        u_of_w=d_y * inv_k2,
        v_of_w=-d_x * inv_k2,
        d_x=d_x,
        d_y=d_y,
        mask=_resolved(kx, ky, dealias_cutoff(n), xp),
        half=half,
        full=half * half,
    )


def _tendency(
    w_hat: Array, ops: _Operators, f_hat: Array | None, xp: ModuleType, *, speed: bool = False
) -> tuple[Array, Array | None]:
    """Dealiased ``-u . grad w + f`` (spectral), and ``max(|u| + |v|)`` per sample if asked.

    The advection is formed as ``div(u w)`` (equal to ``u . grad w`` for the divergence-free
    ``u``): three inverse and two forward transforms.
    """
    n = ops.n
    parts = xp.stack([ops.u_of_w * w_hat, ops.v_of_w * w_hat, w_hat])
    u, v, w = xp.unstack(xp.fft.irfftn(parts, s=(n, n), axes=(-2, -1)))
    flux_x, flux_y = xp.unstack(xp.fft.rfftn(xp.stack([u * w, v * w]), axes=(-2, -1)))
    advection = (ops.d_x * flux_x + ops.d_y * flux_y) * ops.mask
    out = -advection if f_hat is None else f_hat - advection
    if not speed:
        return out, None
    return out, xp.max(xp.abs(u) + xp.abs(v), axis=(-2, -1))


def _check_cfl(speed: Array, h: float, n: int, max_cfl: float, step: int, xp: ModuleType):
    """Return the CFL number of the step; raise if it exceeds ``max_cfl`` or is not finite."""
    cfl = h * n * to_float(xp.max(speed))
    if not math.isfinite(cfl):
        raise FloatingPointError(f"the vorticity became NaN or infinite at step {step}")
    if cfl > max_cfl:
        sample = int(to_float(xp.argmax(speed)))
        raise ValueError(
            f"dt: the advective CFL number dt n max(|u| + |v|) reached {cfl:.3g} > max_cfl = "
            f"{max_cfl:g} at step {step} (t = {step * h:.4g}, batch entry {sample}) with "
            f"dt = {h:.4g} on {n} x {n} points; use dt <= {h * max_cfl / cfl:.3g}"
        )
    return cfl


def solve(
    w0: Array,
    *,
    viscosity: float,
    t_end: float,
    dt: float,
    forcing: Array | None = None,
    max_cfl: float = 1.0,
) -> Solution:
    """Advance the vorticity ``w0`` to ``t_end`` (pseudo-spectral, integrating-factor RK4).

    ``w0`` is first projected onto the resolved modes ``|k_x|, |k_y| <= dealias_cutoff(n)``
    (a no-op for :func:`initial_vorticity` and :func:`taylor_green` with small ``mode``).

    Parameters
    ----------
    w0
        Initial vorticity on the ``n x n`` grid, shape ``(n, n)`` or ``(batch, n, n)``, real
        floating; any array namespace. Its spatial mean is conserved (the forcing has none).
    viscosity
        ``nu > 0``.
    t_end
        Final time (> 0).
    dt
        Largest time step; ``ceil(t_end / dt)`` equal steps are taken (:func:`time_steps`).
    forcing
        Forcing field ``f`` on the grid, shape ``(n, n)`` (e.g. :func:`forcing_field`), of
        the namespace of ``w0``; None for none.
    max_cfl
        Largest advective CFL number ``dt n max(|u| + |v|)``, in ``(0, cfl_limit(n)]``.

    Returns
    -------
    Solution
        ``w(t_end)`` (namespace, dtype and shape of ``w0``), steps, step size, largest CFL.

    Raises
    ------
    ValueError
        On a bad argument (named in the message), including a step whose CFL number exceeds
        ``max_cfl``: the message names ``dt`` and the step size that would pass.
    TypeError
        If ``w0`` is not real floating.
    FloatingPointError
        If the solution becomes NaN or infinite.

    References
    ----------
    arXiv 2010.08895 (the benchmark); J. D. Lawson, SIAM J. Numer. Anal. 4 (1967) 372.
    """
    xp = array_namespace(w0, forcing)
    n = _square_size(w0, "w0")
    if w0.ndim not in (2, 3):
        raise ValueError(f"w0: expected shape (n, n) or (batch, n, n), got {w0.shape}")
    if not xp.isdtype(w0.dtype, "real floating"):
        raise TypeError(f"w0: expected a real floating array, got {w0.dtype}")
    n = _grid_size(n, "w0 size")
    nu = _positive_number(viscosity, "viscosity")
    steps, h = time_steps(t_end, dt)
    max_cfl = _positive_number(max_cfl, "max_cfl")
    if max_cfl > cfl_limit(n):
        raise ValueError(
            f"max_cfl: expected at most the RK4 stability limit {cfl_limit(n):.3f} on {n} "
            f"points, got {max_cfl!r}"
        )
    ops = _operators(n, nu, h, xp, w0.dtype, device(w0))
    f_hat = None
    if forcing is not None:
        if tuple(forcing.shape) != (n, n):
            raise ValueError(f"forcing: expected shape ({n}, {n}), got {tuple(forcing.shape)}")
        f_hat = xp.fft.rfftn(xp.astype(forcing, w0.dtype), axes=(-2, -1)) * ops.mask
    w_hat = xp.fft.rfftn(w0, axes=(-2, -1)) * ops.mask
    largest = 0.0
    for step in range(steps):
        k1, speed = _tendency(w_hat, ops, f_hat, xp, speed=True)
        largest = max(largest, _check_cfl(speed, h, n, max_cfl, step, xp))
        k2, _ = _tendency(ops.half * (w_hat + (0.5 * h) * k1), ops, f_hat, xp)
        k3, _ = _tendency(ops.half * w_hat + (0.5 * h) * k2, ops, f_hat, xp)
        k4, _ = _tendency(ops.full * w_hat + h * (ops.half * k3), ops, f_hat, xp)
        w_hat = ops.full * (w_hat + (h / 6.0) * k1) + (h / 6.0) * (2.0 * ops.half * (k2 + k3) + k4)
    w = xp.fft.irfftn(w_hat, s=(n, n), axes=(-2, -1))
    if not to_float(xp.all(xp.isfinite(w))):
        raise FloatingPointError(f"the vorticity became NaN or infinite by step {steps}")
    return Solution(w, steps, h, largest)


def solve_samples(
    params: NavierStokesParams,
    indices: Sequence[int],
    *,
    seed: int,
    xp: ModuleType | None = None,
    device: Any = None,
) -> tuple[Array, Solution]:
    """Draw the initial vorticity of the samples ``indices`` and solve to ``params.t_end``.

    Parameters
    ----------
    params
        The problem.
    indices
        Sample indices (seeded by ``(seed, index)``, see :func:`initial_vorticity`).
    seed
        Base seed.
    xp, device
        Namespace (NumPy when None) and device of the computation.

    Returns
    -------
    w0 : Array
        float64, shape ``(len(indices), n, n)``.
    solution : Solution
        From :func:`solve`.
    """
    xp = default_namespace() if xp is None else xp
    n = params.resolution
    w0 = initial_vorticity(
        n, indices, seed=seed, alpha=params.alpha, tau=params.tau, xp=xp, device=device
    )
    forcing = None
    if params.forcing != 0.0:
        forcing = forcing_field(n, params.forcing, xp=xp, dtype=w0.dtype, device=device)
    solution = solve(
        w0,
        viscosity=params.viscosity,
        t_end=params.t_end,
        dt=params.dt,
        forcing=forcing,
        max_cfl=params.max_cfl,
    )
    return w0, solution


# ---------------------------------------------------------------------------------------------
# dataset files


def variable_names(n: int) -> tuple[str, str, str, str]:
    """Names ``(input_n, output_n, xn, yn)`` of the variables and coordinates at resolution n."""
    return f"input_{n}", f"output_{n}", f"x{n}", f"y{n}"


def load_dataset(
    path: str | os.PathLike[str], resolution: int | None = None, *, samples: slice | None = None
) -> NavierStokesDataset:
    """Read the pairs ``(w0, w(T))`` stored at ``resolution`` from a dataset file.

    Parameters
    ----------
    path
        A file written by ``python -m drivers.navier_stokes generate``.
    resolution
        One of the stored resolutions (the file's ``resolutions`` attribute); the finest
        when None.
    samples
        A slice of the ``sample`` dimension to read (e.g. ``slice(0, 1000)`` for the training
        samples); all when None.

    Returns
    -------
    NavierStokesDataset
        ``inputs`` and ``outputs`` (float32, ``(samples, n, n)``), ``grid``, ``samples``,
        the stored ``resolutions`` and the root ``attrs``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is unfinished, lacks an attribute of :data:`DATASET_ATTRS`, lacks the
        variables of ``resolution`` (the message names them and the stored resolutions), or
        a variable has the wrong dimensions, shape or dtype.
    """
    import xarray

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such dataset file: {p}")
    with xarray.open_dataset(p, engine="h5netcdf") as ds:
        attrs = dict(ds.attrs)
        stored = _check_attrs(p, attrs)
        n = max(stored) if resolution is None else resolution
        names = variable_names(n)
        data = [_checked_variable(p, ds, name, names, n, stored) for name in names[:2]]
        grid = ds[names[2]].to_numpy()
        selection = slice(None) if samples is None else samples
        inputs, outputs = (d.isel(sample=selection).to_numpy() for d in data)
        indices = ds["sample"].isel(sample=selection).to_numpy()
    return NavierStokesDataset(inputs, outputs, grid, indices, tuple(stored), attrs)


def _check_attrs(path: Path, attrs: dict[str, Any]) -> list[int]:
    """Check the root attributes; return the stored resolutions."""
    missing = [name for name in DATASET_ATTRS if name not in attrs]
    if missing:
        raise ValueError(
            f"{path} is not a Navier-Stokes dataset: attribute(s) {', '.join(missing)} missing"
        )
    if int(attrs.get("finished", 0)) != 1:
        raise ValueError(f"{path}: the dataset is unfinished (attribute finished != 1)")
    stored = attrs["resolutions"]
    stored = stored.tolist() if hasattr(stored, "tolist") else stored
    return [int(r) for r in (stored if isinstance(stored, list) else [stored])]


def _checked_variable(
    path: Path, ds: Any, name: str, names: tuple[str, ...], n: int, stored: list[int]
) -> Any:
    if name not in ds.variables:
        raise ValueError(
            f"{path}: no variable {name!r} for resolution {n} (stored resolutions: "
            f"{', '.join(map(str, stored))})"
        )
    var = ds[name]
    dims = ("sample", names[2], names[3])
    if var.dims != dims or var.shape[1:] != (n, n) or str(var.dtype) != "float32":
        raise ValueError(
            f"{path}: variable {name!r} has dims {var.dims}, shape {var.shape} and dtype "
            f"{var.dtype}; expected dims {dims}, shape (samples, {n}, {n}) and float32"
        )
    return var
