"""The kernels on GPU arrays (CuPy and torch CUDA): same results, and nothing leaves the device.

Marked ``gpu``: skipped without a CUDA device. The ``xp``-parametrized tests of the other
files also run on CuPy there (``pytest -m gpu``).
"""

from __future__ import annotations

import numpy as np
import pytest

import tensorsim as ts
from tensorsim._array_api import device, to_numpy

pytestmark = pytest.mark.gpu


def _cupy():
    cp = pytest.importorskip("cupy")
    if not cp.is_available():
        pytest.skip("no CUDA device for CuPy")
    import array_api_compat.cupy as xp

    return xp, None  # CuPy arrays live on the current device


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for torch")
    import array_api_compat.torch as xp

    return xp, torch.device("cuda")


@pytest.fixture(params=["cupy", "torch-cuda"])
def gpu(request):
    """(namespace, device) of a GPU backend."""
    return _cupy() if request.param == "cupy" else _torch_cuda()


def _on(gpu, a):
    xp, dev = gpu
    return xp.asarray(a) if dev is None else xp.asarray(a, device=dev)


def _same_device(out, ref):
    assert str(device(out)) == str(device(ref)), f"result moved to {device(out)}"


def test_svd_augment_and_krylov(gpu, rng):
    a = _on(gpu, rng.standard_normal((40, 30)))
    res = ts.truncated_svd(a, ts.Truncation(max_rank=5))
    _same_device(res.u, a)
    s_ref = np.linalg.svd(to_numpy(a), compute_uv=False)
    np.testing.assert_allclose(to_numpy(res.s), s_ref[:5], rtol=1e-12)
    old = ts.orth(_on(gpu, rng.standard_normal((40, 3))))
    out = ts.augment_basis(old, _on(gpu, rng.standard_normal((40, 2))))
    _same_device(out, old)
    assert np.array_equal(to_numpy(out)[:, :3], to_numpy(old))
    h = rng.standard_normal((60, 60))
    h = (h + h.T) / 10
    v = rng.standard_normal(60)
    import scipy.linalg

    ref = scipy.linalg.expm(-0.7j * h) @ v
    for hermitian in (True, False):
        w = ts.expm_multiply(_on(gpu, h), _on(gpu, v), -0.7j, hermitian=hermitian)
        _same_device(w, a)
        assert np.linalg.norm(to_numpy(w) - ref) / np.linalg.norm(ref) < 1e-10


def test_decompositions(gpu, rng):
    factors = [rng.standard_normal((n, 3)) for n in (12, 11, 10)]
    x_np = np.einsum("ir,jr,kr->ijk", *factors)
    x = _on(gpu, x_np)
    t = ts.sthosvd(x, ts.Truncation(rtol=1e-10))
    _same_device(t.core, x)
    assert t.ranks == (3, 3, 3)
    np.testing.assert_allclose(to_numpy(t.to_dense()), x_np, atol=1e-10)
    tt = ts.tt_svd(x, ts.Truncation(rtol=1e-10))
    np.testing.assert_allclose(to_numpy(tt.to_dense()), x_np, atol=1e-10)
    cp = ts.cp_als(x, 3, tol=1e-14, max_iter=300)
    _same_device(cp.weights, x)
    assert np.linalg.norm(to_numpy(cp.to_dense()) - x_np) / np.linalg.norm(x_np) < 1e-8


def test_tubal_and_kron(gpu, rng):
    a_np = rng.standard_normal((5, 4, 6))
    b_np = rng.standard_normal((4, 3, 6))
    c = ts.t_product(_on(gpu, a_np), _on(gpu, b_np))
    ref = np.fft.irfft(
        np.einsum("ijk,jlk->ilk", np.fft.rfft(a_np, axis=2), np.fft.rfft(b_np, axis=2)),
        n=6,
        axis=2,
    )
    np.testing.assert_allclose(to_numpy(c), ref, atol=1e-12)
    svd = ts.t_svd(_on(gpu, a_np))
    _same_device(svd.u, c)
    np.testing.assert_allclose(to_numpy(svd.to_dense()), a_np, atol=1e-12)
    w_np = np.kron(rng.standard_normal((3, 2)), rng.standard_normal((4, 5)))
    k = ts.kpsvd(_on(gpu, w_np), (3, 2), trunc=ts.Truncation(rtol=1e-12))
    assert k.rank == 1
    np.testing.assert_allclose(to_numpy(k.to_dense()), w_np, atol=1e-12)
    mats = [rng.standard_normal((2, 3)), rng.standard_normal((4, 2))]
    x = rng.standard_normal(6)
    y = ts.kron_matvec([_on(gpu, m) for m in mats], _on(gpu, x))
    np.testing.assert_allclose(to_numpy(y), np.kron(*mats) @ x, rtol=1e-12)
