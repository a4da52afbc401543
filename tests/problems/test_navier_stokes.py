"""Tests of problems.navier_stokes: exact decay, convergence, backends, initial data, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from problems import navier_stokes as ns
from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError

#: A short forced run on 32 x 32 points (8 samples take well under a second).
SMALL = ns.NavierStokesParams(resolution=32, t_end=1.0, dt=0.05)


def _relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _band_limited(n, modes, seed):
    """A smooth random initial field: the GRF on n points keeping |k_x|, |k_y| <= modes."""
    return to_numpy(ns.gaussian_random_field(
        np.random.default_rng(seed).standard_normal((n, n)), cutoff=modes
    ))  # fmt: skip


def _fourier_pad(w, n):
    """The band-limited field ``w`` (modes below the Nyquist one) on n x n points."""
    big = w.shape[-1]
    spec = np.fft.rfft2(w)
    out = np.zeros((n, n // 2 + 1), dtype=complex)
    k = big // 2 - 1
    out[: k + 1, : k + 1] = spec[: k + 1, : k + 1]
    out[-k:, : k + 1] = spec[-k:, : k + 1]
    return np.fft.irfft2(out, s=(n, n)) * (n / big) ** 2


@pytest.mark.parametrize("mode", [1, 3])
def test_taylor_green_vortex_decays_exactly(xp, mode):
    nu, t_end = 1e-2, 1.0
    w0 = ns.taylor_green(32, 0.0, mode=mode, viscosity=nu, xp=xp)
    exact = to_numpy(ns.taylor_green(32, t_end, mode=mode, viscosity=nu, xp=xp))
    solution = ns.solve(w0, viscosity=nu, t_end=t_end, dt=0.02)
    assert solution.steps == 50 and solution.dt == pytest.approx(0.02)
    assert solution.max_cfl == pytest.approx(0.64, rel=1e-6)  # dt n max(|u| + |v|), max = 1
    w = to_numpy(solution.w)
    # exp(-2 nu kappa^2 t): 0.45 for mode 1, 8e-4 for mode 3; measured error 1e-15
    decay = math.exp(-2 * nu * (2 * math.pi * mode) ** 2 * t_end)
    assert np.max(np.abs(w)) == pytest.approx(2 * 2 * math.pi * mode * decay, rel=1e-12)
    assert np.max(np.abs(w - exact)) / np.max(np.abs(exact)) < 1e-8


def test_time_step_convergence_is_fourth_order():
    w0 = ns.initial_vorticity(32, [0, 1], seed=5)
    f = ns.forcing_field(32)

    def run(dt):
        return ns.solve(w0, viscosity=1e-3, t_end=2.0, dt=dt, forcing=f).w

    reference = run(0.2 / 16)
    errors = [_relative(run(dt), reference) for dt in (0.2, 0.1, 0.05)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(3.7 < p < 4.3 for p in orders), (errors, orders)  # measured 3.99, 4.00
    assert errors[-1] < 1e-8


def test_resolution_convergence_is_spectral():
    # a smooth (band-limited) initial field evolves into an analytic solution: the error at
    # the 16 x 16 points falls exponentially with n; measured 1.2e-3, 5.7e-7, 1.6e-10
    w0 = _band_limited(16, 4, seed=3)
    solutions = {}
    for n in (16, 32, 48, 96):
        w = ns.solve(
            _fourier_pad(w0, n), viscosity=1e-3, t_end=2.0, dt=0.02, forcing=ns.forcing_field(n)
        ).w
        solutions[n] = ns.subsample(w, 16)
    errors = {n: _relative(solutions[n], solutions[96]) for n in (16, 32, 48)}
    assert errors[16] > 1e-4 and errors[32] < 1e-5 and errors[48] < 1e-9, errors
    rates = [math.log(errors[16] / errors[32]) / 16, math.log(errors[32] / errors[48]) / 16]
    assert min(rates) > 0.4, rates  # measured 0.48 and 0.51 per grid point


def test_backends_agree(xp):
    w0, reference = ns.solve_samples(SMALL, [0, 1, 2], seed=4)
    w0_xp, solution = ns.solve_samples(SMALL, [0, 1, 2], seed=4, xp=xp)
    np.testing.assert_allclose(to_numpy(w0_xp), w0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(to_numpy(solution.w), reference.w, rtol=0, atol=1e-12)
    assert solution.max_cfl == pytest.approx(reference.max_cfl, rel=1e-10)


def test_single_precision_follows_double():
    w0 = ns.initial_vorticity(32, [0, 1], seed=0)
    f = ns.forcing_field(32)
    double = ns.solve(w0, viscosity=1e-3, t_end=1.0, dt=0.05, forcing=f).w
    single = ns.solve(np.astype(w0, np.float32), viscosity=1e-3, t_end=1.0, dt=0.05, forcing=f).w
    assert single.dtype == np.float32
    assert _relative(single, double) < 1e-5


def test_samples_do_not_depend_on_their_batch():
    _, together = ns.solve_samples(SMALL, [0, 1, 2, 3], seed=7)
    for k in (0, 3):
        _, alone = ns.solve_samples(SMALL, [k], seed=7)
        np.testing.assert_array_equal(alone.w[0], together.w[k])


def test_initial_field_statistics():
    n, samples = 32, 400
    w = ns.initial_vorticity(n, range(samples), seed=11)
    kx = np.fft.fftfreq(n, 1 / n)[:, None]
    ky = np.fft.fftfreq(n, 1 / n)[None, :]
    k2 = 4 * np.pi**2 * (kx**2 + ky**2)
    cutoff = ns.dealias_cutoff(n)
    keep = (np.abs(kx) <= cutoff) & (np.abs(ky) <= cutoff) & (k2 > 0)
    variance = np.sum(np.where(keep, 7.0**3 * (k2 + 49.0) ** -2.5, 0.0))  # tau^(2 alpha - 2)
    assert np.var(w) == pytest.approx(variance, rel=0.05)  # 400 samples: about 2 % scatter
    np.testing.assert_allclose(w.mean(axis=(1, 2)), 0.0, atol=1e-15)  # no mean mode
    spectrum = np.abs(np.fft.fft2(w[0]))
    assert np.max(spectrum[~keep & (k2 > 0)]) < 1e-12 * np.max(spectrum)  # band-limited
    # each sample has its own generator (seed, index)
    np.testing.assert_array_equal(ns.initial_vorticity(n, [5], seed=11)[0], w[5])
    assert not np.allclose(ns.initial_vorticity(n, [5], seed=12)[0], w[5])


def test_forcing_and_subsampling():
    f = ns.forcing_field(8, 0.5)
    x = np.arange(8) / 8
    phase = 2 * np.pi * (x[:, None] + x[None, :])
    np.testing.assert_allclose(f, 0.5 * (np.sin(phase) + np.cos(phase)), atol=1e-15)
    w = np.arange(2 * 12 * 12, dtype=float).reshape(2, 12, 12)
    np.testing.assert_array_equal(ns.subsample(w, 4), w[:, ::3, ::3])
    np.testing.assert_array_equal(ns.subsample(w, 12), w)
    assert ns.dealias_cutoff(128) == 42 and ns.dealias_cutoff(96) == 31
    assert ns.cfl_limit(128) == pytest.approx(1.3719, abs=1e-4)
    assert ns.time_steps(10.0, 0.01) == (1000, pytest.approx(0.01))
    assert ns.time_steps(1.0, 0.3) == (4, 0.25)


def test_nonlinear_term_transports_vorticity():
    # without viscosity and forcing the dealiased (Galerkin) system conserves energy and
    # enstrophy; RK4 loses 5e-9 of them at this step (1.6e-7 at twice the step)
    w0 = ns.initial_vorticity(32, [0], seed=2)[0] * 20.0
    w = ns.solve(w0, viscosity=1e-12, t_end=0.5, dt=0.0025).w
    assert _relative(w, w0) > 0.5  # it moved
    assert np.sum(w**2) == pytest.approx(np.sum(w0**2), rel=5e-8)
    k2 = np.fft.fftfreq(32, 1 / 32)[:, None] ** 2 + np.fft.fftfreq(32, 1 / 32)[None, :] ** 2
    energy = [np.sum(np.abs(np.fft.fft2(v)) ** 2 / np.where(k2 > 0, k2, 1.0)) for v in (w, w0)]
    assert energy[0] == pytest.approx(energy[1], rel=5e-8)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"viscosity": 0.0}, ValueError, "viscosity"),
        ({"viscosity": -1e-3}, ValueError, "viscosity"),
        ({"t_end": 0.0}, ValueError, "t_end"),
        ({"dt": float("nan")}, ValueError, "dt"),
        ({"dt": 1.0}, ValueError, r"dt: the advective CFL number .* use dt <= 0\.093"),
        ({"max_cfl": 1.5}, ValueError, "max_cfl: expected at most"),
        ({"forcing": np.zeros((16, 16))}, ValueError, r"forcing: expected shape \(32, 32\)"),
    ],
)
def test_solve_rejects_bad_input(kwargs, error, match):
    w0 = ns.taylor_green(32, 0.0, viscosity=1e-2) / 3.0  # max(|u| + |v|) = 1/3
    args = {"viscosity": 1e-2, "t_end": 1.0, "dt": 0.02, **kwargs}
    with pytest.raises(error, match=match):
        ns.solve(w0, **args)


def test_solve_rejects_bad_arrays():
    with pytest.raises(ValueError, match=r"w0: expected an array of shape \(..., n, n\)"):
        ns.solve(np.zeros((8, 6)), viscosity=1e-3, t_end=1.0, dt=0.1)
    with pytest.raises(ValueError, match=r"w0: expected shape \(n, n\) or \(batch, n, n\)"):
        ns.solve(np.zeros((2, 2, 8, 8)), viscosity=1e-3, t_end=1.0, dt=0.1)
    with pytest.raises(TypeError, match="w0: expected a real floating array"):
        ns.solve(np.zeros((8, 8), dtype=complex), viscosity=1e-3, t_end=1.0, dt=0.1)
    with pytest.raises(FloatingPointError, match="NaN or infinite at step 0"):
        ns.solve(np.full((8, 8), np.nan), viscosity=1e-3, t_end=1.0, dt=0.1)
    with pytest.raises(ValueError, match="n: 5 does not divide the resolution 32"):
        ns.subsample(np.zeros((32, 32)), 5)
    with pytest.raises(ValueError, match="indices: expected non-negative integers"):
        ns.initial_vorticity(16, [-1], seed=0)
    with pytest.raises(ValueError, match="indices: expected at least one"):
        ns.initial_vorticity(16, [], seed=0)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"viscosity": 0.0}, "'viscosity': expected a float > 0.0"),
        ({"resolution": 4}, "'resolution'"),
        ({"max_cfl": 1.4}, "'max_cfl': expected at most the RK4 stability limit 1.372"),
        ({"alpha": 1.0}, "'alpha'"),
        ({"resolutions": (48, 128)}, "'resolutions': 48 does not divide the solver resolution"),
        ({"resolutions": (64, 64)}, "'resolutions': expected distinct values"),
        ({"resolutions": ()}, "'resolutions': expected at least one"),
        ({"samples": 0}, "'samples'"),
    ],
)
def test_parameters_reject_bad_values(changes, match):
    with pytest.raises(ConfigError, match=match):
        ns.DatasetParams(**changes)


@pytest.mark.gpu
def test_torch_cuda_stays_on_the_device():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for torch")
    import array_api_compat.torch as xp

    from tensorsim._array_api import device

    _, reference = ns.solve_samples(SMALL, [0, 1], seed=4)
    w0, solution = ns.solve_samples(SMALL, [0, 1], seed=4, xp=xp, device=torch.device("cuda"))
    assert device(w0).type == "cuda" and device(solution.w).type == "cuda"
    np.testing.assert_allclose(to_numpy(solution.w), reference.w, rtol=0, atol=1e-12)
