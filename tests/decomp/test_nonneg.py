import warnings

import numpy as np
import pytest

from tensorsim._array_api import to_numpy
from tensorsim.decomp import CP, _cpkernels, fms, nonneg_cp
from tensorsim.decomp._cpkernels import SparseCOO, mttkrp


def planted(shape, rank, noise, seed):
    """Uniform rank-``rank`` factors plus Gaussian noise of norm ``noise * ||x||``, clipped at 0.

    Returns the noisy tensor, the planted CP and the realized relative noise level.
    """
    rng = np.random.default_rng(seed)
    factors = [rng.uniform(size=(n, rank)) for n in shape]
    clean = CP(np.ones(rank), tuple(factors)).to_dense()
    e = rng.standard_normal(shape)
    x = np.maximum(clean + noise * np.linalg.norm(clean) / np.linalg.norm(e) * e, 0.0)
    level = np.linalg.norm(x - clean) / np.linalg.norm(x)
    return x, CP(np.ones(rank), tuple(factors)), level


def to_np(cp):
    return CP(to_numpy(cp.weights), tuple(to_numpy(a) for a in cp.factors), cp.errors)


def uniform_init(shape, rank, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(size=(n, rank)) for n in shape]


class TestKernels:
    def test_sparse_mttkrp_matches_dense(self, xp, rng):
        dense = rng.uniform(size=(5, 4, 6)) * (rng.uniform(size=(5, 4, 6)) < 0.3)
        idx = np.argwhere(dense != 0)
        sp = SparseCOO(xp.asarray(idx), xp.asarray(dense[dense != 0]), dense.shape)
        factors = [xp.asarray(rng.standard_normal((n, 3))) for n in dense.shape]
        for mode in range(3):
            np.testing.assert_allclose(
                to_numpy(mttkrp(sp, factors, mode)),
                to_numpy(mttkrp(xp.asarray(dense), factors, mode)),
                rtol=1e-12,
                atol=1e-14,
            )

    def test_cp_als_uses_the_shared_kernel(self, monkeypatch, rng):
        from tensorsim import cp_als
        from tensorsim.decomp import cp as cp_module

        assert cp_module.SweepMTTKRP is _cpkernels.SweepMTTKRP
        passes = []
        contract = _cpkernels._contract_mode
        monkeypatch.setattr(
            _cpkernels, "_contract_mode", lambda *a, **k: passes.append(1) or contract(*a, **k)
        )
        cp_als(rng.standard_normal((4, 5, 3)), 3, max_iter=2)
        assert len(passes) == 6  # R = 3 > 4 / 2: no shared contraction, 3 passes per sweep
        passes.clear()
        cp_als(rng.standard_normal((4, 5, 6)), 2, max_iter=2)
        assert len(passes) == 4  # the last mode's contraction serves the two others

    def test_shared_sweep_matches_plain_mttkrp(self, xp, rng):
        x = xp.asarray(rng.standard_normal((7, 6, 8, 9)))
        factors = [xp.asarray(rng.standard_normal((n, 3))) for n in x.shape]
        for order in ([0, 1, 2, 3], [1, 2, 3, 0], [3, 0, 1, 2], [2, 1]):
            sweep = _cpkernels.SweepMTTKRP(x, order, 3)
            assert sweep.shared
            sweep.start(factors)
            for mode in order:
                np.testing.assert_allclose(
                    to_numpy(sweep(factors, mode)),
                    to_numpy(mttkrp(x, factors, mode)),
                    rtol=1e-10,
                    atol=1e-12,
                )


class TestPlanted:
    @pytest.mark.parametrize("method", ["hals", "mu"])
    def test_small_planted_fit_on_every_backend(self, xp, method):
        x, truth, level = planted((12, 10, 8), 3, 0.01, seed=0)
        cp = nonneg_cp(xp.asarray(x), 3, method=method, rng=7, max_iter=400, tol=1e-10)
        errs = np.asarray(cp.errors)
        assert np.all(np.isfinite(errs))
        assert np.all(np.diff(errs) <= 1e-12 * errs[:-1])  # both monotone here
        got = to_np(cp)
        err = np.linalg.norm(x - got.to_dense()) / np.linalg.norm(x)
        assert errs[-1] == pytest.approx(err, rel=1e-8)
        if method == "hals":
            assert abs(err - level) <= 0.1 * level
            assert fms(got, truth) >= 0.99
        for a in got.factors:
            assert np.all(a >= 0)

    @pytest.mark.slow
    @pytest.mark.parametrize(
        "shape, rank", [((50, 50, 50), 5), ((100, 100, 100), 10), ((1000, 60, 8), 10)]
    )
    def test_acceptance_shapes(self, shape, rank):
        x, truth, level = planted(shape, rank, 0.01, seed=0)
        cp = nonneg_cp(x, rank, rng=1, max_iter=500, tol=1e-9)
        assert abs(cp.errors[-1] - level) <= 0.1 * level
        assert fms(cp, truth) >= 0.99
        mu = nonneg_cp(x, rank, method="mu", rng=1, max_iter=200, tol=0)
        assert np.all(np.diff(mu.errors) <= 0)

    def test_projected_is_monotone_and_needs_torch(self):
        torch = pytest.importorskip("torch")
        x, truth, level = planted((10, 9, 8), 3, 0.01, seed=1)
        cp = nonneg_cp(torch.as_tensor(x), 3, method="projected", rng=2, max_iter=300, tol=0)
        errs = np.asarray(cp.errors)
        assert np.all(np.diff(errs) <= 1e-12)
        assert errs[-1] < 2 * level
        with pytest.raises(NotImplementedError, match="torch autograd"):
            nonneg_cp(x, 3, method="projected")

    def test_projected_orthogonality_penalty(self):
        torch = pytest.importorskip("torch")
        x, _, _ = planted((10, 9, 8), 3, 0.01, seed=1)
        xt = torch.as_tensor(x)

        def offdiag(cp):
            a = to_numpy(cp.factors[0])
            c = a.T @ a
            return np.abs(c - np.diag(np.diag(c))).sum()

        plain = nonneg_cp(xt, 3, method="projected", rng=2, max_iter=200)
        ortho = nonneg_cp(xt, 3, method="projected", ortho={0: 10.0}, rng=2, max_iter=200)
        assert offdiag(ortho) < 0.5 * offdiag(plain)
        seen = []
        nonneg_cp(xt, 3, method="projected", penalty=lambda fs: seen.append(1) or fs[1].sum() * 0)
        assert seen


class TestMUandKL:
    def test_kl_divergence_non_increasing(self, xp):
        rng = np.random.default_rng(3)
        rate = CP(np.ones(3), tuple(rng.uniform(size=(n, 3)) for n in (9, 8, 7))).to_dense()
        x = rng.poisson(5 * rate).astype(float)
        cp = nonneg_cp(xp.asarray(x), 3, method="mu", loss="kl", rng=1, max_iter=200, tol=0)
        errs = np.asarray(cp.errors)
        assert np.all(np.diff(errs) <= 1e-12 * errs[:-1])
        xhat = to_np(cp).to_dense()
        ref = np.sum(np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / xhat), 0) - x + xhat)
        assert errs[-1] == pytest.approx(ref / x.sum(), rel=1e-8)

    def test_masked_fit_recovers_missing_cells(self, xp):
        x, truth, _ = planted((8, 7, 6), 2, 0.0, seed=4)
        observed = np.random.default_rng(5).uniform(size=x.shape) > 0.3
        x_nan = np.where(observed, x, np.nan)
        cp = nonneg_cp(
            xp.asarray(x_nan), 2, method="mu", mask=xp.asarray(observed), rng=1, max_iter=400
        )
        errs = np.asarray(cp.errors)
        assert np.all(np.diff(errs) <= 1e-12 * errs[:-1])
        xhat = to_np(cp).to_dense()
        on_obs = np.linalg.norm((x - xhat)[observed]) / np.linalg.norm(x[observed])
        assert errs[-1] == pytest.approx(on_obs, rel=1e-8)
        held_out = np.linalg.norm((x - xhat)[~observed]) / np.linalg.norm(x[~observed])
        assert held_out < 0.05

    def test_il2_masked_fit(self):
        from problems.shipped_data import load_arrays  # TensorLy's IL-2 tensor, bit for bit

        x = np.asarray(load_arrays("il2.npz", ["tensor"])["tensor"], dtype=float)
        mask = ~np.isnan(x)
        assert (~mask).sum() == 192
        with pytest.raises(ValueError, match="NaN"):
            nonneg_cp(x, 3, method="mu")
        cp = nonneg_cp(x, 3, method="mu", mask=mask, init="svd", max_iter=300, tol=1e-9)
        errs = np.asarray(cp.errors)
        assert np.all(np.diff(errs) <= 1e-12) and errs[-1] < 0.26  # measured 0.2498


class TestTensorLyAgreement:
    def test_mu_curve_and_hals_final_error(self):
        tl_dec = pytest.importorskip("tensorly.decomposition")
        from tensorly.cp_tensor import CPTensor

        x, _, _ = planted((20, 15, 10), 4, 0.01, seed=6)
        init = uniform_init(x.shape, 4, seed=8)

        def tl_init():
            return CPTensor((np.ones(4), [a.copy() for a in init]))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, tl_mu = tl_dec.non_negative_parafac(
                x, 4, init=tl_init(), n_iter_max=60, tol=1e-300, return_errors=True
            )
            _, tl_hals = tl_dec.non_negative_parafac_hals(
                x, 4, init=tl_init(), n_iter_max=500, tol=1e-10, return_errors=True
            )
        mu = nonneg_cp(x, 4, method="mu", init=(None, init), max_iter=60, tol=0)
        np.testing.assert_allclose(mu.errors, np.asarray(tl_mu, dtype=float), rtol=1e-6)
        hals = nonneg_cp(x, 4, init=(None, init), max_iter=500, tol=1e-10)
        assert hals.errors[-1] == pytest.approx(float(tl_hals[-1]), rel=0.01)


class TestOptions:
    def test_sparse_input_matches_dense(self, xp):
        x, _, _ = planted((8, 7, 6), 2, 0.0, seed=9)
        x = np.where(x > 0.3, x, 0.0)
        idx = np.argwhere(x > 0)
        sp = (xp.asarray(idx), xp.asarray(x[x > 0]))
        for method, loss in [("hals", "l2"), ("mu", "l2"), ("mu", "kl")]:
            a = nonneg_cp(sp, 2, method=method, loss=loss, shape=x.shape, rng=1, max_iter=20)
            b = nonneg_cp(xp.asarray(x), 2, method=method, loss=loss, rng=1, max_iter=20)
            np.testing.assert_allclose(a.errors, b.errors, rtol=1e-9)

    def test_fixed_and_unconstrained_modes_and_penalties(self, rng):
        x, truth, _ = planted((9, 8, 7), 2, 0.0, seed=10)
        init = [np.asarray(a) for a in truth.factors]
        init[1] = init[1] + 0.1
        cp = nonneg_cp(x, 2, init=(None, init), fixed_modes=[2], max_iter=20)
        direction = to_numpy(cp.factors[2])
        np.testing.assert_allclose(direction, init[2] / np.linalg.norm(init[2], axis=0))
        y = x - 0.5  # needs a negative offset in an unconstrained mode
        free = nonneg_cp(y, 3, nn_modes=[0, 1], rng=1, max_iter=300)
        assert np.any(to_numpy(free.factors[2]) < 0)
        dense = nonneg_cp(x, 4, rng=1, max_iter=200)
        sparse = nonneg_cp(x, 4, l1=2.0, rng=1, max_iter=200)
        zeros = [np.mean(to_numpy(c.factors[0]) == 0) for c in (dense, sparse)]
        assert zeros[1] > zeros[0]
        ridge = nonneg_cp(x, 2, l2=[0.0, 1.0, 0.0], rng=1, max_iter=50)
        assert np.isfinite(ridge.errors[-1])

    def test_zero_column_and_zero_slice_are_safe(self, xp):
        x, truth, _ = planted((6, 5, 4), 2, 0.0, seed=11)
        x[2] = 0.0  # an all-zero slice: its factor row becomes zero
        init = uniform_init(x.shape, 3, seed=1)
        init[1][:, 2] = 0.0  # a dead column: weight 0, no NaN
        for method in ("hals", "mu"):
            cp = to_np(nonneg_cp(xp.asarray(x), 3, method=method, init=(None, init)))
            assert all(np.all(np.isfinite(a)) for a in (cp.weights, *cp.factors))
            assert np.allclose(cp.factors[0][2] * cp.weights, 0, atol=1e-8)
            if method == "mu":  # multiplicative: the column stays dead, with weight 0
                assert cp.weights[2] == 0 and np.all(cp.factors[1][:, 2] == 0)
            # (HALS revives it: the exact column update in mode 1 sees nonzero data)

    def test_callback_and_history(self):
        x, _, _ = planted((6, 5, 4), 2, 0.01, seed=12)
        seen = []
        cp = nonneg_cp(x, 2, rng=1, max_iter=7, tol=0, callback=lambda i, e: seen.append((i, e)))
        assert [i for i, _ in seen] == list(range(7)) and [e for _, e in seen] == list(cp.errors)
        assert np.allclose(np.linalg.norm(cp.factors[0], axis=0), 1)


class TestBadInput:
    def test_messages_name_the_argument(self):
        x, _, _ = planted((5, 4, 3), 2, 0.0, seed=13)
        with pytest.raises(ValueError, match="rank"):
            nonneg_cp(x, 0)
        neg = x.copy()
        neg[1, 2, 0] = -1.0
        neg[3, 0, 1] = -2.0
        with pytest.raises(ValueError, match=r"x: 2 \(first at index \(1, 2, 0\)\) negative"):
            nonneg_cp(neg, 2, method="mu")
        with pytest.raises(ValueError, match="x: .*negative.*loss=kl"):
            nonneg_cp(neg, 2, method="projected", loss="kl") if False else nonneg_cp(
                neg, 2, method="mu", loss="kl"
            )
        with pytest.raises(ValueError, match="mask: expected the shape"):
            nonneg_cp(x, 2, method="mu", mask=np.ones((5, 4), bool))
        with pytest.raises(TypeError, match="mask: expected a boolean"):
            nonneg_cp(x, 2, method="mu", mask=np.ones(x.shape))
        hole = np.ones(x.shape, bool)
        hole[:, 3, :] = False
        with pytest.raises(ValueError, match="mask: mode 1 has 1 slices with no observed"):
            nonneg_cp(x, 2, method="mu", mask=hole)
        nan = x.copy()
        nan[0, 1, 2] = np.nan
        with pytest.raises(ValueError, match=r"x: 1 \(first at index \(0, 1, 2\)\) NaN"):
            nonneg_cp(nan, 2)
        with pytest.raises(ValueError, match="x: .*zero"):
            nonneg_cp(np.zeros((3, 3, 3)), 1)
        with pytest.raises(ValueError, match="mask: method='hals'"):
            nonneg_cp(x, 2, mask=np.ones(x.shape, bool))
        with pytest.raises(ValueError, match="loss"):
            nonneg_cp(x, 2, loss="kl")
        with pytest.raises(ValueError, match="ortho"):
            nonneg_cp(x, 2, ortho={0: 1.0})
        with pytest.raises(ValueError, match="method"):
            nonneg_cp(x, 2, method="als")
        with pytest.raises(ValueError, match=r"init: factors\[1\] has 1"):
            init = uniform_init(x.shape, 2, 0)
            init[1][0, 0] = -1
            nonneg_cp(x, 2, init=(None, init))
        with pytest.raises(ValueError, match="init: expected 3 factors"):
            nonneg_cp(x, 3, init=(None, uniform_init(x.shape, 2, 0)))
        with pytest.raises(ValueError, match="fixed_modes"):
            nonneg_cp(x, 2, fixed_modes=[0, 1, 2])
        with pytest.raises(ValueError, match="l1"):
            nonneg_cp(x, 2, l1=[1.0, 0.0, 0.0], nn_modes=[1, 2])
        with pytest.raises(TypeError, match="x"):
            nonneg_cp(np.ones((3, 3), dtype=int), 1)
        with pytest.raises(ValueError, match="shape"):
            nonneg_cp((np.array([[0, 5]]), np.array([1.0])), 1, shape=(2, 2))

    def test_nan_during_the_fit_raises_floating_point_error(self, monkeypatch):
        x, _, _ = planted((5, 4, 3), 2, 0.01, seed=14)
        calls = {"n": 0}
        real = _cpkernels._contract_mode

        def poisoned(*args, **kwargs):  # two passes over x per sweep
            calls["n"] += 1
            out = real(*args, **kwargs)
            return out * np.nan if calls["n"] == 3 else out

        monkeypatch.setattr(_cpkernels, "_contract_mode", poisoned)
        with pytest.raises(FloatingPointError, match="iteration 1"):
            nonneg_cp(x, 2, rng=1, tol=0, max_iter=10)
