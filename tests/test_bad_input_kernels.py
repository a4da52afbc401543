"""Bad input at the kernel entry points: one clear ValueError naming the argument, never a hang.

Each row of ``BAD`` is one call (a kernel and its bad input), the exception expected and a
pattern its message must match: the message starts with the argument's name. Every test
here runs under a 5 s timeout in pytest-timeout's ``thread`` mode, which also ends a call
stuck inside LAPACK (a signal is only handled once control comes back to Python): a hang
ends the run at once with the stacks printed, instead of blocking it. ``ZERO`` holds the
documented results of all-zero (and empty, where allowed) input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg  # noqa: F401 - imported here, not under the per-test timeout
import scipy.optimize  # noqa: F401

from tensorsim import (
    CP,
    Truncation,
    augment_basis,
    cp_als,
    expm,
    expm_multiply,
    hosvd,
    kpsvd,
    orth,
    sthosvd,
    t_norm,
    t_svd,
    truncated_svd,
    tt_svd,
    tubal_rank,
)
from tensorsim._checks import check_finite, check_nonempty
from tensorsim.decomp import core_consistency, fms, nonneg_cp
from tensorsim.linalg import lowest_eigenpair

try:
    import torch
except ImportError:  # the torch rows are skipped
    torch = None

try:
    import array_api_strict
except ImportError:
    array_api_strict = None

timeout = pytest.mark.timeout(5, method="thread")
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
needs_strict = pytest.mark.skipif(array_api_strict is None, reason="no array_api_strict")

RNG = np.random.default_rng(21)
X = RNG.standard_normal((4, 5, 6))  # a tensor
M = RNG.standard_normal((6, 6))  # a matrix
H = M + M.T  # a symmetric matrix
Q = np.linalg.qr(RNG.standard_normal((6, 2)))[0]  # orthonormal columns


def put(a, index, value):
    """A copy of ``a`` with ``a[index] = value``."""
    a = np.array(a, dtype=np.result_type(a, type(value)))
    a[index] = value
    return a


def finite(name, nan, inf):
    """The message of :func:`check_finite` for ``name`` with these counts."""
    return rf"^{name}: expected finite values, found {nan} NaN and {inf} Inf among"


def empty(name):
    """The message of :func:`check_nonempty` for ``name``."""
    return rf"^{name}: expected no dimension of length 0, got shape"


def cp_of(x, rank=2):
    return cp_als(x, rank, max_iter=3, tol=0.0)


NAN, INF = math.nan, math.inf
X_NAN, X_INF = put(X, (0, 0, 1), NAN), put(X, (1, 2, 3), INF)
M_NAN, M_INF = put(M, (1, 0), NAN), put(M, (2, 2), INF)
ONES6 = np.ones(6)
CP_NAN = CP(np.ones(2), (np.ones((4, 2)), np.full((5, 2), NAN), np.ones((6, 2))))


def _torch_cases():
    if torch is None:
        return {}
    x_nan = torch.as_tensor(X_NAN).requires_grad_(True)
    m_inf = torch.as_tensor(put(M.astype(complex), (3, 1), complex(0.0, INF)))
    return {
        "torch-sthosvd-nan-autograd": lambda: sthosvd(x_nan, Truncation(rtol=1e-2)),
        "torch-cp_als-inf": lambda: cp_als(torch.as_tensor(X_INF), 2),
        "torch-truncated_svd-complex-inf": lambda: truncated_svd(m_inf),
    }


_TORCH = _torch_cases()


def torch_row(key, exc, pattern):
    return pytest.param(lambda: _TORCH[key](), exc, pattern, id=key, marks=needs_torch)


def strict_row(key, call, exc, pattern):
    return pytest.param(call, exc, pattern, id=key, marks=needs_strict)


BAD = [
    # --- Tucker, TT, CP: NaN and Inf in x
    pytest.param(lambda: hosvd(X_NAN), ValueError, finite("x", 1, 0), id="hosvd-nan"),
    pytest.param(lambda: hosvd(X_INF, Truncation(rtol=0.1)), ValueError, finite("x", 0, 1),
                 id="hosvd-inf"),
    pytest.param(lambda: sthosvd(X_NAN), ValueError, finite("x", 1, 0), id="sthosvd-nan"),
    # the case: Truncation.atol used to be blamed
    pytest.param(lambda: sthosvd(X_INF, Truncation(rtol=1e-2)), ValueError,
                 finite("x", 0, 1) + r".*\(the first at index \(1, 2, 3\)\)$",
                 id="sthosvd-inf-rtol"),
    pytest.param(lambda: sthosvd(put(X, (3, 4, 5), -INF), order=[2, 1, 0]), ValueError,
                 finite("x", 0, 1), id="sthosvd-minus-inf"),
    pytest.param(lambda: tt_svd(X_NAN), ValueError, finite("x", 1, 0), id="tt_svd-nan"),
    pytest.param(lambda: tt_svd(X_INF, Truncation(rtol=1e-3)), ValueError, finite("x", 0, 1),
                 id="tt_svd-inf"),
    pytest.param(lambda: cp_als(X_NAN, 2, init="random", rng=0), ValueError,
                 finite("x", 1, 0), id="cp_als-nan-random"),
    pytest.param(lambda: cp_als(X_INF, 2), ValueError, finite("x", 0, 1), id="cp_als-inf-svd"),
    pytest.param(lambda: cp_als(X, 2, init=CP_NAN), ValueError,
                 finite(r"init\.factors\[1\]", 10, 0), id="cp_als-init-nan"),
    pytest.param(lambda: nonneg_cp(np.abs(X_INF), 2), ValueError,
                 r"^x: 1 \(first at index \(1, 2, 3\)\) NaN/Inf entries", id="nonneg_cp-inf"),
    pytest.param(lambda: nonneg_cp(np.abs(X), 2, init=CP_NAN), ValueError,
                 finite(r"init\.factors\[1\]", 10, 0), id="nonneg_cp-init-nan"),
    pytest.param(lambda: core_consistency(X_NAN, cp_of(X)), ValueError, finite("x", 1, 0),
                 id="core_consistency-nan"),
    pytest.param(lambda: fms(cp_of(X), CP_NAN), ValueError,
                 finite(r"b\.factors\[1\]", 10, 0), id="fms-nan"),
    # --- tubal and Kronecker kernels
    pytest.param(lambda: t_svd(X_NAN), ValueError, finite("a", 1, 0), id="t_svd-nan"),
    pytest.param(lambda: t_svd(X_INF), ValueError, finite("a", 0, 1), id="t_svd-inf"),
    pytest.param(lambda: t_svd(put(X.astype(complex), (0, 1, 2), complex(NAN, 0))),
                 ValueError, finite("a", 1, 0), id="t_svd-complex-nan"),
    pytest.param(lambda: tubal_rank(X_INF), ValueError, finite("a", 0, 1), id="tubal_rank-inf"),
    pytest.param(lambda: t_norm(X_NAN, "spectral"), ValueError, finite("a", 1, 0),
                 id="t_norm-spectral-nan"),
    pytest.param(lambda: kpsvd(M_NAN, (2, 3)), ValueError, finite("w", 1, 0), id="kpsvd-nan"),
    pytest.param(lambda: kpsvd(M_INF, (3, 2), trunc=Truncation(rtol=0.1)), ValueError,
                 finite("w", 0, 1), id="kpsvd-inf"),
    # --- matrix kernels
    pytest.param(lambda: truncated_svd(M_NAN), ValueError, finite("a", 1, 0),
                 id="truncated_svd-nan"),
    pytest.param(lambda: truncated_svd(M_INF, Truncation(max_rank=2)), ValueError,
                 finite("a", 0, 1), id="truncated_svd-inf"),
    pytest.param(lambda: truncated_svd(put(M.astype(complex), (0, 5), complex(1.0, INF))),
                 ValueError, finite("a", 0, 1), id="truncated_svd-complex-inf"),
    pytest.param(lambda: orth(M_INF), ValueError, finite("a", 0, 1), id="orth-inf"),
    pytest.param(lambda: augment_basis(Q, M_NAN[:, :2]), ValueError, finite("new", 1, 0),
                 id="augment_basis-new-nan"),
    pytest.param(lambda: augment_basis(put(Q, (4, 1), INF), M[:, :2]), ValueError,
                 finite("old", 0, 1), id="augment_basis-old-inf"),
    pytest.param(lambda: expm(M_NAN), ValueError, finite("a", 1, 0), id="expm-nan"),
    pytest.param(lambda: expm_multiply(M_NAN, ONES6), ValueError, finite("op", 1, 0),
                 id="expm_multiply-op-nan"),
    pytest.param(lambda: expm_multiply(lambda v: M_INF @ v, ONES6, 0.5), ValueError,
                 r"^op: expected finite values from op\(x\), got NaN or Inf at Krylov step 1",
                 id="expm_multiply-callable-inf",
                 marks=pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")),
    pytest.param(lambda: expm_multiply(lambda v: put(H, (1, 1), NAN) @ v, ONES6, -0.1j,
                                       hermitian=True), ValueError,
                 r"^op: expected finite values from op\(x\)", id="expm_multiply-lanczos-nan"),
    pytest.param(lambda: expm_multiply(M, put(ONES6, 3, INF)), ValueError, finite("v", 0, 1),
                 id="expm_multiply-v-inf"),
    pytest.param(lambda: expm_multiply(M, ONES6, complex(0.0, NAN)), ValueError,
                 r"^t: expected a finite time", id="expm_multiply-t-nan"),
    pytest.param(lambda: lowest_eigenpair(lambda v: put(H, (0, 5), NAN) @ v, ONES6),
                 ValueError, r"^op: expected finite values from op\(x\)",
                 id="lowest_eigenpair-op-nan"),
    pytest.param(lambda: lowest_eigenpair(lambda v: H @ v, put(ONES6, 2, NAN)), ValueError,
                 r"^v0: expected a nonzero finite start vector", id="lowest_eigenpair-v0-nan"),
    pytest.param(lambda: Truncation(rtol=0.1).split(INF, 3), ValueError,
                 r"^norm: expected a finite norm", id="Truncation.split-inf-norm"),
    # --- empty tensors and degenerate shapes
    pytest.param(lambda: sthosvd(np.zeros((0, 3, 4)), Truncation(rtol=0.1)), ValueError,
                 empty("x"), id="sthosvd-empty"),
    pytest.param(lambda: hosvd(np.zeros((3, 0))), ValueError, empty("x"), id="hosvd-empty"),
    pytest.param(lambda: tt_svd(np.zeros((3, 4, 0))), ValueError, empty("x"), id="tt_svd-empty"),
    pytest.param(lambda: cp_als(np.zeros((2, 0, 3)), 1), ValueError, empty("x"),
                 id="cp_als-empty"),
    pytest.param(lambda: nonneg_cp(np.zeros((0, 3)), 1), ValueError, empty("x"),
                 id="nonneg_cp-empty"),
    pytest.param(lambda: t_svd(np.zeros((3, 4, 0))), ValueError, empty("a"),
                 id="t_svd-empty-tubes"),
    pytest.param(lambda: t_svd(np.zeros((0, 4, 2))), ValueError, empty("a"),
                 id="t_svd-empty-rows"),
    pytest.param(lambda: tubal_rank(np.zeros((2, 2, 0))), ValueError, empty("a"),
                 id="tubal_rank-empty"),
    pytest.param(lambda: kpsvd(np.zeros((0, 6)), (1, 3)), ValueError, empty("w"),
                 id="kpsvd-empty"),
    pytest.param(lambda: kpsvd(np.ones((4, 6)), (0, 3)), ValueError,
                 r"^shape_a: expected a pair of positive integers", id="kpsvd-shape_a-zero"),
    pytest.param(lambda: kpsvd(np.ones((4, 6)), (2, 3), (2, 3, 1)), ValueError,
                 r"^shape_b: expected a pair of positive integers", id="kpsvd-shape_b-triple"),
    # --- all-zero tensors where nothing can be fitted
    pytest.param(lambda: cp_als(np.zeros((3, 4, 5)), 2), ValueError,
                 r"^x: the tensor is zero; nothing to fit", id="cp_als-zero"),
    pytest.param(lambda: nonneg_cp(np.zeros((3, 4)), 2), ValueError,
                 r"^x: the tensor \(its observed cells\) is zero", id="nonneg_cp-zero"),
    # --- other backends: torch (with autograd) and array_api_strict
    torch_row("torch-sthosvd-nan-autograd", ValueError, finite("x", 1, 0)),
    torch_row("torch-cp_als-inf", ValueError, finite("x", 0, 1)),
    torch_row("torch-truncated_svd-complex-inf", ValueError, finite("a", 0, 1)),
    strict_row("strict-hosvd-inf",
               lambda: hosvd(array_api_strict.asarray(X_INF)), ValueError, finite("x", 0, 1)),
    strict_row("strict-tt_svd-empty",
               lambda: tt_svd(array_api_strict.zeros((2, 0))), ValueError, empty("x")),
]  # fmt: skip


@timeout
@pytest.mark.parametrize(("call", "exc", "pattern"), BAD)
def test_bad_input_is_refused_naming_the_argument(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def _zero_tucker(decompose):
    z = np.zeros((4, 5, 6))
    t = decompose(z, Truncation(rtol=1e-2))
    assert t.ranks == (1, 1, 1) and t.error_bound == 0.0
    assert np.array_equal(t.to_dense(), z)


def _zero_tt():
    z = np.zeros((4, 5, 6))
    t = tt_svd(z, Truncation(rtol=1e-2))
    assert t.ranks == (1, 1) and t.error_bound == 0.0
    assert np.array_equal(t.to_dense(), z)


def _zero_untruncated():
    z = np.zeros((3, 4, 2))
    t = hosvd(z)  # no rule: nothing is cut, every (zero) singular value is kept
    assert t.ranks == (3, 4, 2) and np.array_equal(t.to_dense(), z)


def _zero_svd():
    res = truncated_svd(np.zeros((3, 5)), Truncation(rtol=0.1, min_rank=2))
    assert res.s.shape == (2,) and np.all(res.s == 0) and res.discarded == 0.0
    assert truncated_svd(np.zeros((0, 4))).s.shape == (0,)  # empty: rank 0


def _zero_kpsvd():
    k = kpsvd(np.zeros((4, 6)), (2, 3), trunc=Truncation(atol=1e-12))
    assert k.rank == 1 and float(k.s[0]) == 0.0
    assert np.array_equal(k.to_dense(), np.zeros((4, 6)))


def _zero_tubal():
    z = np.zeros((3, 2, 4))
    res = t_svd(z)
    assert np.all(res.s == 0) and np.array_equal(res.to_dense(), z)
    assert tubal_rank(z) == 0 and t_norm(z, "spectral") == 0.0


def _zero_matrix_functions():
    z = np.zeros((4, 4))
    assert np.array_equal(expm(z), np.eye(4))
    v = np.arange(4.0)
    assert np.array_equal(expm_multiply(z, v, 2.0), v)
    assert np.array_equal(expm_multiply(M, np.zeros(6)), np.zeros(6))
    assert orth(z).shape == (4, 0)


ZERO = [
    pytest.param(lambda: _zero_tucker(sthosvd), id="sthosvd"),
    pytest.param(lambda: _zero_tucker(hosvd), id="hosvd"),
    pytest.param(_zero_tt, id="tt_svd"),
    pytest.param(_zero_untruncated, id="hosvd-untruncated"),
    pytest.param(_zero_svd, id="truncated_svd"),
    pytest.param(_zero_kpsvd, id="kpsvd"),
    pytest.param(_zero_tubal, id="t_svd-tubal_rank-t_norm"),
    pytest.param(_zero_matrix_functions, id="expm-expm_multiply-orth"),
]


@timeout
@pytest.mark.parametrize("check", ZERO)
def test_all_zero_input_gives_the_documented_result(check):
    check()


@timeout
def test_check_helpers_pass_good_input_through():
    x = X.astype(np.complex64)
    assert check_finite("x", x) is x and check_nonempty("x", x) is x
    assert check_finite("n", np.arange(3)) is not None  # integers are always finite
    if torch is not None:
        t = torch.ones(3, requires_grad=True)
        assert check_finite("t", t) is t
        with pytest.raises(ValueError, match=finite("t", 1, 1)):
            check_finite("t", torch.tensor([1.0, NAN, -INF]))


def test_compress_refuses_an_all_zero_tensor(tmp_path):
    from drivers.compress import InputParams, load_tensor

    np.save(tmp_path / "z.npy", np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"^input\.source: .*z\.npy is all zero"):
        load_tensor(InputParams(source=str(tmp_path / "z.npy")))
