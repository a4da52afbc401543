import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.linalg as sla

from tensorsim._array_api import to_numpy
from tensorsim.linalg import (
    Truncation,
    augment_basis,
    expm,
    expm_multiply,
    orth,
    rk4_step,
    truncated_svd,
)


def _spectrum_matrix(rng, s, m=30, n=20):
    u, _ = np.linalg.qr(rng.standard_normal((m, len(s))))
    v, _ = np.linalg.qr(rng.standard_normal((n, len(s))))
    return (u * s) @ v.T


class TestTruncation:
    def test_rank_rule_on_known_spectrum(self, xp):
        s = xp.asarray([10.0, 1.0, 0.1, 0.01, 0.001], dtype=xp.float64)
        tail = lambda r: float(np.sqrt(np.sum(np.asarray([10.0, 1.0, 0.1, 0.01, 0.001])[r:] ** 2)))  # noqa: E731
        # fewest values with the discarded tail within atol
        assert Truncation(atol=0.0101).rank(s) == (3, pytest.approx(tail(3)))
        assert Truncation(atol=0.01).rank(s)[0] == 4
        assert Truncation(max_rank=2).rank(s) == (2, pytest.approx(tail(2)))
        assert Truncation(atol=1e-9, max_rank=3).rank(s)[0] == 3
        assert Truncation(atol=100.0, min_rank=2).rank(s)[0] == 2
        assert Truncation().rank(s) == (5, 0.0)
        norm = float(np.linalg.norm([10.0, 1.0, 0.1, 0.01, 0.001]))
        assert Truncation(rtol=0.0101 / norm).rank(s)[0] == 3

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"max_rank": 0}, "max_rank"),
            ({"min_rank": 0}, "min_rank"),
            ({"max_rank": 2, "min_rank": 3}, "smaller than min_rank"),
            ({"rtol": -1.0}, "rtol"),
            ({"atol": float("nan")}, "atol"),
            ({"max_rank": 2.5}, "max_rank"),
        ],
    )
    def test_bad_values(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            Truncation(**kwargs)

    def test_split_divides_tolerance(self):
        t = Truncation(rtol=0.1, max_rank=7).split(norm=3.0, parts=4)
        assert t.atol == pytest.approx(0.15) and t.max_rank == 7 and t.rtol is None


class TestTruncatedSVD:
    def test_error_equals_discarded(self, xp, rng):
        s = np.logspace(0, -6, 12)
        a_np = _spectrum_matrix(rng, s)
        res = truncated_svd(xp.asarray(a_np), Truncation(rtol=1e-3))
        expected_rank = int(
            np.sum([np.sqrt(np.sum(s[r:] ** 2)) > 1e-3 * np.linalg.norm(s) for r in range(12)])
        )
        assert res.s.shape[0] == expected_rank
        recon = to_numpy(res.u) * to_numpy(res.s) @ to_numpy(res.vh)
        err = np.linalg.norm(a_np - recon)
        assert err == pytest.approx(res.discarded, rel=1e-8)
        assert res.discarded <= 1e-3 * np.linalg.norm(a_np)

    def test_rejects_non_matrix(self, xp):
        with pytest.raises(ValueError, match="a: expected a matrix"):
            truncated_svd(xp.ones((2, 2, 2)))


class TestBases:
    def test_orth_spans_range(self, xp, rng):
        a_np = rng.standard_normal((10, 3)) @ rng.standard_normal((3, 6))
        q = to_numpy(orth(xp.asarray(a_np)))
        assert q.shape == (10, 3)
        np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(q @ (q.T @ a_np), a_np, atol=1e-12)

    def test_augment_keeps_old_columns_bitwise(self, xp, rng):
        old_np, _ = np.linalg.qr(rng.standard_normal((40, 4)))
        # new: two directions inside span(old), three outside, one repeated
        inside = old_np @ rng.standard_normal((4, 2))
        outside = rng.standard_normal((40, 3))
        new_np = np.concatenate([inside, outside, outside[:, :1] * 2.0], axis=1)
        old = xp.asarray(old_np)
        out = augment_basis(old, xp.asarray(new_np))
        out_np = to_numpy(out)
        assert out_np.shape == (40, 7)
        assert np.array_equal(out_np[:, :4], old_np)  # bit for bit
        np.testing.assert_allclose(out_np.T @ out_np, np.eye(7), atol=1e-13)
        span = out_np @ (out_np.T @ new_np)
        np.testing.assert_allclose(span, new_np, atol=1e-12)

    def test_augment_tiny_directions_stay_orthogonal(self, rng):
        old, _ = np.linalg.qr(rng.standard_normal((30, 3)))
        new = old @ rng.standard_normal((3, 2)) + 1e-11 * rng.standard_normal((30, 2))
        out = augment_basis(old, new)
        np.testing.assert_allclose(out.T @ out, np.eye(out.shape[1]), atol=1e-12)

    def test_augment_bad_input(self, rng):
        old, _ = np.linalg.qr(rng.standard_normal((10, 2)))
        with pytest.raises(ValueError, match="orthonormal"):
            augment_basis(2.0 * old, rng.standard_normal((10, 1)))
        with pytest.raises(ValueError, match="rows"):
            augment_basis(old, rng.standard_normal((9, 1)))


class TestExpm:
    def test_dense_expm_matches_scipy(self, xp, rng):
        a = rng.standard_normal((12, 12)) * 1.5
        np.testing.assert_allclose(
            to_numpy(expm(xp.asarray(a))), scipy.linalg.expm(a), rtol=1e-12, atol=1e-12
        )

    def test_generic_pade_matches_scipy(self, rng):
        import array_api_strict as xs

        a = rng.standard_normal((15, 15)) * 4 + 1j * rng.standard_normal((15, 15))
        np.testing.assert_allclose(
            to_numpy(expm(xs.asarray(a))), scipy.linalg.expm(a), rtol=1e-11, atol=1e-11
        )

    @pytest.mark.parametrize("t", [-3.0j, 0.8, -25.0j])
    def test_krylov_hermitian_matches_scipy(self, xp, rng, t):
        n = 200
        a = rng.standard_normal((n, n))
        h = (a + a.T) / (2 * np.sqrt(n)) * 5
        v = rng.standard_normal(n)
        ref = sla.expm_multiply(t * h, v.astype(complex) if isinstance(t, complex) else v)
        for hermitian in (True, False):
            out = to_numpy(expm_multiply(xp.asarray(h), xp.asarray(v), t, hermitian=hermitian))
            assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-10

    def test_krylov_non_hermitian_matches_scipy(self, xp, rng):
        n = 150
        a = rng.standard_normal((n, n)) / np.sqrt(n) * 3 + 1j * rng.standard_normal((n, n)) / n
        v = rng.standard_normal((n, 2)) + 0j
        ref = sla.expm_multiply(1.7 * a, v)
        out = to_numpy(expm_multiply(xp.asarray(a), xp.asarray(v), 1.7))
        assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-10

    def test_krylov_stiff_callable(self, rng):
        n = 200
        lap = (np.eye(n, k=1) + np.eye(n, k=-1) - 2 * np.eye(n)) * n**2 / 50
        v = rng.standard_normal(n)
        for t in (1e-3, 0.2):
            out = expm_multiply(lambda x: lap @ x, v, t, hermitian=True)
            ref = sla.expm_multiply(t * lap, v)
            assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-10

    def test_krylov_small_space_breakdown(self, rng):
        a = rng.standard_normal((4, 4))
        v = rng.standard_normal(4)
        np.testing.assert_allclose(
            expm_multiply(a, v, 2.5), scipy.linalg.expm(2.5 * a) @ v, rtol=1e-12
        )

    def test_krylov_differentiable_in_torch(self):
        torch = pytest.importorskip("torch")
        a = torch.tensor([[0.0, 1.0], [-2.0, -0.3]], dtype=torch.float64)
        v = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
        out = expm_multiply(a, v, 0.7)
        out.sum().backward()
        expected = torch.linalg.matrix_exp(0.7 * a).sum(dim=0)
        torch.testing.assert_close(v.grad, expected, rtol=1e-10, atol=1e-12)

    def test_krylov_bad_input(self, rng):
        with pytest.raises(ValueError, match="op: expected a square"):
            expm_multiply(np.ones((3, 2)), np.ones(3))
        with pytest.raises(ValueError, match="v: expected shape"):
            expm_multiply(np.eye(3), np.ones(4))
        with pytest.raises(ValueError, match="tol"):
            expm_multiply(np.eye(3), np.ones(3), tol=0.0)


def test_rk4_fourth_order(xp):
    a = xp.asarray([[0.0, 1.0], [-1.0, 0.0]], dtype=xp.float64)
    y0 = xp.asarray([1.0, 0.0], dtype=xp.float64)
    errors = []
    for n in (10, 20):
        y = y0
        h = 1.0 / n
        for i in range(n):
            y = rk4_step(lambda t, y: a @ y, i * h, y, h)
        errors.append(np.linalg.norm(to_numpy(y) - [np.cos(1.0), -np.sin(1.0)]))
    assert 14 < errors[0] / errors[1] < 18  # 2^4 = 16
