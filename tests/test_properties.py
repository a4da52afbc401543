"""Property-based checks (hypothesis) of the rules every kernel relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorsim import Truncation, near_square_shape, sthosvd, truncated_svd, tt_svd


@given(st.integers(min_value=1, max_value=10**7))
def test_near_square_shape_is_the_most_square_factorization(n):
    rows, cols = near_square_shape(n)
    assert rows * cols == n and cols <= rows
    # no divisor of n lies strictly between cols and sqrt(n)
    assert all(n % d for d in range(cols + 1, math.isqrt(n) + 1))


spectra = st.lists(st.floats(min_value=1e-12, max_value=1e3), min_size=1, max_size=12).map(
    lambda v: np.sort(np.asarray(v))[::-1].copy()
)


@given(spectra, st.floats(min_value=0.0, max_value=2.0), st.integers(1, 12), st.integers(1, 3))
def test_truncation_keeps_the_fewest_values_within_tolerance(s, rtol, max_rank, min_rank):
    min_rank = min(min_rank, max_rank)
    rule = Truncation(rtol=rtol, max_rank=max_rank, min_rank=min_rank)
    r, discarded = rule.rank(s)
    tail = [math.sqrt(float(np.sum(s[k:] ** 2))) for k in range(len(s) + 1)]
    tol = rtol * tail[0]
    assert discarded == pytest.approx(tail[r], rel=1e-12, abs=1e-300)
    assert min(min_rank, len(s)) <= r <= min(max_rank, len(s))
    if min_rank < r < max_rank:  # the tolerance decided: fewest values within it
        assert tail[r] <= tol * (1 + 1e-12)
        assert tail[r - 1] > tol * (1 - 1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.floats(1e-6, 0.5), st.integers(0, 2**31))
def test_svd_truncation_error_is_exact_and_within_tolerance(m, n, rtol, seed):
    a = np.random.default_rng(seed).standard_normal((m, n))
    res = truncated_svd(a, Truncation(rtol=rtol))
    err = np.linalg.norm(a - (res.u * res.s) @ res.vh)
    assert err == pytest.approx(res.discarded, rel=1e-9, abs=1e-12)
    assert err <= rtol * np.linalg.norm(a) * (1 + 1e-12) + 1e-12


def test_untruncated_decompositions_have_identity_jacobian():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(4, 3, 5, dtype=torch.float64, generator=gen)
    for decompose in (sthosvd, tt_svd):
        x.grad = None
        (decompose(x).to_dense() * w).sum().backward()
        torch.testing.assert_close(x.grad, w, rtol=1e-9, atol=1e-10)
