import numpy as np
import pytest

from tensorsim import (
    f_diagonal,
    t_fft,
    t_identity,
    t_ifft,
    t_norm,
    t_product,
    t_svd,
    t_transpose,
    tubal_rank,
)
from tensorsim._array_api import to_numpy
from tensorsim.testing import bcirc, unfold_slices


@pytest.mark.parametrize("k", [1, 4, 7])
def test_t_product_equals_block_circulant(xp, rng, k):
    a = rng.standard_normal((3, 5, k))
    b = rng.standard_normal((5, 2, k))
    c = to_numpy(t_product(xp.asarray(a), xp.asarray(b)))
    assert c.shape == (3, 2, k)
    np.testing.assert_allclose(unfold_slices(c), bcirc(a) @ unfold_slices(b), atol=1e-12)


def test_t_product_complex(rng):
    a = rng.standard_normal((3, 4, 5)) + 1j * rng.standard_normal((3, 4, 5))
    b = rng.standard_normal((4, 2, 5))
    np.testing.assert_allclose(
        unfold_slices(t_product(a, b)), bcirc(a) @ unfold_slices(b.astype(complex)), atol=1e-12
    )


def test_fft_roundtrip_and_transpose_rule(xp, rng):
    for k in (5, 6):
        a = xp.asarray(rng.standard_normal((3, 4, k)))
        b = xp.asarray(rng.standard_normal((4, 2, k)))
        assert t_fft(a).shape == (k // 2 + 1, 3, 4)
        np.testing.assert_allclose(to_numpy(t_ifft(t_fft(a), k)), to_numpy(a), atol=1e-14)
        lhs = t_transpose(t_product(a, b))
        rhs = t_product(t_transpose(b), t_transpose(a))
        np.testing.assert_allclose(to_numpy(lhs), to_numpy(rhs), atol=1e-12)
        np.testing.assert_allclose(bcirc(to_numpy(t_transpose(a))), bcirc(to_numpy(a)).T)


def test_identity(xp, rng):
    a = xp.asarray(rng.standard_normal((4, 3, 6)))
    eye = t_identity(4, 6, xp=xp, dtype=a.dtype)
    np.testing.assert_allclose(to_numpy(t_product(eye, a)), to_numpy(a), atol=1e-14)


@pytest.mark.parametrize(("shape", "k"), [((6, 4), 5), ((4, 6), 6), ((5, 5), 1)])
def test_t_svd_reconstructs_with_orthogonal_factors(xp, rng, shape, k):
    a_np = rng.standard_normal((*shape, k))
    res = t_svd(xp.asarray(a_np))
    p = min(shape)
    np.testing.assert_allclose(to_numpy(res.to_dense()), a_np, atol=1e-12)
    eye = to_numpy(t_identity(p, k))
    for q in (res.u, res.v):
        gram = to_numpy(t_product(t_transpose(q), q))
        np.testing.assert_allclose(gram, eye, atol=1e-12)
    s = to_numpy(res.s_fourier)
    assert np.all(np.diff(s, axis=1) <= 1e-12)  # descending in every slice
    # Fourier singular values agree with a direct SVD of each full-spectrum slice
    full = np.fft.fft(a_np, axis=2)
    for j in range(s.shape[0]):
        np.testing.assert_allclose(
            s[j], np.linalg.svd(full[:, :, j], compute_uv=False), rtol=1e-12
        )


def test_tubal_rank_and_norms(xp, rng):
    u = rng.standard_normal((7, 2, 4))
    v = rng.standard_normal((6, 2, 4))
    x_np = t_product(u, t_transpose(v))
    x = xp.asarray(x_np)
    assert tubal_rank(x) == 2
    assert tubal_rank(xp.asarray(rng.standard_normal((5, 3, 4)))) == 3
    assert t_norm(x) == pytest.approx(np.linalg.norm(x_np))
    assert t_norm(x, "spectral") == pytest.approx(np.linalg.norm(bcirc(x_np), 2))
    with pytest.raises(ValueError, match="ord"):
        t_norm(x, "nuclear")


def test_f_diagonal(xp):
    tubes = xp.asarray([[1.0, 2.0], [3.0, 4.0]])
    d = to_numpy(f_diagonal(tubes, 3, 2))
    assert d.shape == (3, 2, 2)
    np.testing.assert_array_equal(d[0, 0], [1.0, 2.0])
    np.testing.assert_array_equal(d[1, 1], [3.0, 4.0])
    assert np.count_nonzero(d) == 4


def test_bad_shapes(rng):
    with pytest.raises(ValueError, match="a: expected a third-order"):
        t_product(np.ones((2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="b: expected shape"):
        t_product(np.ones((2, 3, 4)), np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="Fourier slices"):
        t_ifft(np.ones((2, 2, 2), dtype=complex), 8)


def test_gradient_through_t_product():
    torch = pytest.importorskip("torch")
    a = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 2, 5, dtype=torch.float64)
    w = torch.randn(3, 2, 5, dtype=torch.float64)
    (t_product(a, b) * w).sum().backward()
    # d<W, A*B>/dA = W * B^T (t-product algebra)
    torch.testing.assert_close(a.grad, t_product(w, t_transpose(b)))
