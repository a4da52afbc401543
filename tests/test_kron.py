import numpy as np
import pytest

from tensorsim import Truncation, kpsvd, kron_matvec, near_square_shape
from tensorsim._array_api import to_numpy


def test_kron_matvec_matches_numpy_kron(xp, rng):
    mats = [rng.standard_normal(s) for s in [(2, 3), (4, 2), (3, 5)]]
    dense = np.kron(np.kron(mats[0], mats[1]), mats[2])
    x = rng.standard_normal((7, 30))
    out = kron_matvec([xp.asarray(m) for m in mats], xp.asarray(x))
    np.testing.assert_allclose(to_numpy(out), x @ dense.T, rtol=1e-12)
    single = kron_matvec([xp.asarray(m) for m in mats], xp.asarray(x[0]))
    np.testing.assert_allclose(to_numpy(single), dense @ x[0], rtol=1e-12)


def test_kpsvd_exact_on_sum_of_kronecker_products(xp, rng):
    r = 3
    a = [rng.standard_normal((4, 3)) for _ in range(r)]
    b = [rng.standard_normal((5, 6)) for _ in range(r)]
    w = sum(np.kron(ai, bi) for ai, bi in zip(a, b, strict=True))
    res = kpsvd(xp.asarray(w), (4, 3), trunc=Truncation(rtol=1e-12))
    assert res.rank == r
    np.testing.assert_allclose(to_numpy(res.to_dense()), w, atol=1e-12 * np.abs(w).max())
    full = kpsvd(xp.asarray(w), (4, 3), (5, 6))
    s = to_numpy(full.s)
    assert s.shape == (12,) and np.all(s[r:] < 1e-12 * s[0])


def test_kpsvd_truncation_is_optimal_error(rng):
    w = rng.standard_normal((12, 20))
    res = kpsvd(w, (3, 4), trunc=Truncation(max_rank=2))
    err = np.linalg.norm(w - res.to_dense())
    assert err == pytest.approx(res.discarded, rel=1e-10)
    s_all = kpsvd(w, (3, 4)).s
    assert res.discarded == pytest.approx(np.sqrt(np.sum(s_all[2:] ** 2)))


def test_kpsvd_bad_shapes(rng):
    with pytest.raises(ValueError, match="shape_a"):
        kpsvd(rng.standard_normal((12, 20)), (5, 4))
    with pytest.raises(ValueError, match="shape_a, shape_b"):
        kpsvd(rng.standard_normal((12, 20)), (3, 4), (4, 4))


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (768 * 3072, (1536, 1536)),
        (3 * 3 * 64 * 128, (288, 256)),
        (50304 * 768, (6288, 6144)),
        (16, (4, 4)),
        (13, (13, 1)),
        (1, (1, 1)),
    ],
)
def test_near_square_shape(n, expected):
    assert near_square_shape(n) == expected


def test_near_square_shape_bad_input():
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="n: expected a positive integer"):
            near_square_shape(bad)
