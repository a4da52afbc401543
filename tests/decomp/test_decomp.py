import numpy as np
import pytest

from tensorsim import CP, Truncation, cp_als, hosvd, sthosvd, tt_svd
from tensorsim._array_api import to_numpy
from tensorsim.decomp import TT, Tucker
from tensorsim.tensor_ops import fold, mode_dot, mttkrp, unfold


def _low_rank_tucker(rng, shape, ranks, noise=0.0):
    core = rng.standard_normal(ranks)
    x = core
    for n, (size, r) in enumerate(zip(shape, ranks, strict=True)):
        x = np.moveaxis(np.tensordot(rng.standard_normal((size, r)), x, axes=([1], [n])), 0, n)
    return x + noise * np.linalg.norm(x) / np.sqrt(x.size) * rng.standard_normal(shape)


def _singular_values(x, mode):
    return np.linalg.svd(np.moveaxis(x, mode, 0).reshape(x.shape[mode], -1), compute_uv=False)


class TestTensorOps:
    def test_unfold_fold_and_mode_dot(self, xp, rng):
        x_np = rng.standard_normal((3, 4, 5))
        x = xp.asarray(x_np)
        for mode in range(3):
            np.testing.assert_array_equal(
                to_numpy(unfold(x, mode)), np.moveaxis(x_np, mode, 0).reshape(x_np.shape[mode], -1)
            )
            np.testing.assert_array_equal(to_numpy(fold(unfold(x, mode), mode, x.shape)), x_np)
        m = rng.standard_normal((6, 4))
        np.testing.assert_allclose(
            to_numpy(mode_dot(x, xp.asarray(m), 1)), np.einsum("ij,ajb->aib", m, x_np), rtol=1e-13
        )

    def test_mttkrp_matches_khatri_rao(self, xp, rng):
        x_np = rng.standard_normal((4, 5, 6, 3))
        factors = [rng.standard_normal((n, 2)) for n in x_np.shape]
        for mode in range(4):
            others = [f for m, f in enumerate(factors) if m != mode]
            kr = others[0]
            for f in others[1:]:
                kr = np.einsum("ir,jr->ijr", kr, f).reshape(-1, 2)
            ref = np.moveaxis(x_np, mode, 0).reshape(x_np.shape[mode], -1) @ kr
            out = mttkrp(xp.asarray(x_np), [xp.asarray(f) for f in factors], mode)
            np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-12)


class TestTucker:
    @pytest.mark.parametrize("method", [hosvd, sthosvd])
    def test_error_obeys_bound(self, xp, rng, method):
        x_np = _low_rank_tucker(rng, (12, 10, 8), (4, 3, 5), noise=1e-2)
        norm = np.linalg.norm(x_np)
        for rtol in (1e-1, 1e-2, 3e-3):
            t = method(xp.asarray(x_np), Truncation(rtol=rtol))
            err = np.linalg.norm(x_np - to_numpy(t.to_dense()))
            bound = t.error_bound
            assert err <= bound * (1 + 1e-10) + 1e-12 * norm  # plus rounding
            assert bound <= rtol * norm * (1 + 1e-12)
            # each discarded value is the tail of the singular values of the right matrix
            if method is hosvd:
                for n in range(3):
                    s = _singular_values(x_np, n)
                    assert t.discarded[n] == pytest.approx(np.sqrt(np.sum(s[t.ranks[n] :] ** 2)))

    def test_exact_multilinear_rank_recovered(self, xp, rng):
        x_np = _low_rank_tucker(rng, (9, 8, 7), (3, 2, 4))
        t = sthosvd(xp.asarray(x_np), Truncation(rtol=1e-10))
        assert t.ranks == (3, 2, 4)
        np.testing.assert_allclose(to_numpy(t.to_dense()), x_np, atol=1e-11 * np.abs(x_np).max())
        for u in t.factors:
            u = to_numpy(u)
            np.testing.assert_allclose(u.T @ u, np.eye(u.shape[1]), atol=1e-12)

    def test_max_rank_and_per_mode_rules(self, rng):
        x = _low_rank_tucker(rng, (10, 10, 10), (6, 6, 6))
        assert sthosvd(x, Truncation(max_rank=3)).ranks == (3, 3, 3)
        rules = [Truncation(max_rank=2), Truncation(max_rank=3), Truncation(max_rank=4)]
        assert hosvd(x, rules).ranks == (2, 3, 4)
        with pytest.raises(ValueError, match="trunc"):
            hosvd(x, rules[:2])

    def test_bad_input(self, rng):
        with pytest.raises(ValueError, match="at least 2 modes"):
            sthosvd(np.ones(3))
        with pytest.raises(ValueError, match="order"):
            sthosvd(np.ones((2, 2, 2)), order=[0, 0, 1])
        with pytest.raises(ValueError, match="factors"):
            Tucker(np.ones((2, 2)), (np.ones((3, 2)),))


class TestCP:
    def test_recovers_exact_rank(self, xp, rng):
        factors = [rng.standard_normal((n, 4)) for n in (15, 12, 10)]
        x_np = np.einsum("ir,jr,kr->ijk", *factors)
        cp = cp_als(xp.asarray(x_np), 4, tol=1e-14, max_iter=500)
        err = np.linalg.norm(x_np - to_numpy(cp.to_dense())) / np.linalg.norm(x_np)
        assert err < 1e-8
        assert cp.errors[-1] == pytest.approx(err, abs=1e-12)

    def test_random_init_four_way(self, rng):
        factors = [rng.standard_normal((n, 3)) for n in (6, 7, 5, 4)]
        x = np.einsum("ir,jr,kr,lr->ijkl", *factors)
        cp = cp_als(x, 3, init="random", rng=3, tol=1e-15, max_iter=2000)
        assert np.linalg.norm(x - cp.to_dense()) / np.linalg.norm(x) < 1e-8

    def test_error_history_is_monotone_and_callback_called(self, rng):
        x = rng.standard_normal((8, 9, 10))
        seen = []
        cp = cp_als(x, 3, tol=0.0, max_iter=20, callback=lambda i, e: seen.append((i, e)))
        errs = np.asarray(cp.errors)
        assert len(errs) == 20 and [i for i, _ in seen] == list(range(20))
        assert np.all(np.diff(errs) <= 1e-12)  # ALS never increases the error

    def test_given_init_and_bad_input(self, rng):
        x = rng.standard_normal((4, 5, 6))
        init = CP(np.ones(2), tuple(rng.standard_normal((n, 2)) for n in x.shape))
        assert cp_als(x, 2, init=init, max_iter=3).rank == 2
        with pytest.raises(ValueError, match="rank"):
            cp_als(x, 0)
        with pytest.raises(ValueError, match="init"):
            cp_als(x, 3, init=init)
        with pytest.raises(ValueError, match="init"):
            cp_als(x, 2, init="magic")
        with pytest.raises(ValueError, match="zero"):
            cp_als(np.zeros((2, 2)), 1)

    def test_differentiable_reconstruction(self):
        torch = pytest.importorskip("torch")
        a = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
        b = torch.randn(3, 2, dtype=torch.float64)
        w = torch.ones(2, dtype=torch.float64)
        dense = CP(w, (a, b)).to_dense()
        dense.sum().backward()
        torch.testing.assert_close(a.grad, b.sum(0).expand(4, 2))


class TestTT:
    def test_error_obeys_bound(self, xp, rng):
        x_np = rng.standard_normal((4, 5, 6, 5)) + 0.0
        for rtol in (0.5, 0.2, 0.05):
            tt = tt_svd(xp.asarray(x_np), Truncation(rtol=rtol))
            err = np.linalg.norm(x_np - to_numpy(tt.to_dense()))
            assert err <= tt.error_bound * (1 + 1e-10) + 1e-12 * np.linalg.norm(x_np)
            assert tt.error_bound <= rtol * np.linalg.norm(x_np) * (1 + 1e-12)

    def test_exact_tt_rank(self, xp, rng):
        cores = [rng.standard_normal(s) for s in [(1, 5, 2), (2, 6, 3), (3, 4, 2), (2, 5, 1)]]
        x_np = TT(tuple(cores)).to_dense()
        tt = tt_svd(xp.asarray(x_np), Truncation(rtol=1e-12))
        assert tt.ranks == (2, 3, 2)
        np.testing.assert_allclose(to_numpy(tt.to_dense()), x_np, atol=1e-11 * np.abs(x_np).max())
        assert tt.size == sum(np.prod(c.shape) for c in tt.cores)

    def test_bad_cores(self, rng):
        with pytest.raises(ValueError, match="cores\\[1\\]"):
            TT((np.ones((1, 2, 3)), np.ones((2, 2, 1))))
        with pytest.raises(ValueError, match="last rank"):
            TT((np.ones((1, 2, 3)),))
