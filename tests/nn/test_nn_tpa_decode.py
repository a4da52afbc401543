"""The hand-ordered factor contraction of TPA decoding (tensorsim.nn.attention, arXiv 2501.06425).

The module's own forward uses :func:`tpa_factor_attention` for one new token only; these
tests call it directly with several queries, cached past tokens and both contraction orders.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.attention import tpa_factor_attention, tpa_materialize  # noqa: E402

F64 = torch.float64


def _reference(q, k, v, past):
    """Softmax attention of ``q (B, T, h, d)`` on ``k, v (B, past + T, h, d)``, by loops."""
    b, t, h, d = q.shape
    out = torch.zeros_like(q)
    for i in range(t):
        for j in range(h):
            s = torch.einsum("zd,zsd->zs", q[:, i, j], k[:, : past + i + 1, j]) / math.sqrt(d)
            out[:, i, j] = torch.einsum(
                "zs,zsd->zd", torch.softmax(s, -1), v[:, : past + i + 1, j]
            )
    return out


@pytest.mark.parametrize(
    ("h", "d", "r_q"),
    [(3, 8, 4), (14, 16, 6)],  # R_Q (d + h) above / below h d: query formed / b_q . b_k first
)
@pytest.mark.parametrize(("t", "past"), [(1, 7), (4, 3), (5, 0)])
@pytest.mark.parametrize("kv_only", [False, True])
def test_factor_attention_equals_reference(h, d, r_q, t, past, kv_only):
    g = torch.Generator().manual_seed(h * 100 + t)
    b, s = 2, past + t
    a_q = torch.randn(b, t, h, r_q, generator=g, dtype=F64)
    b_q = torch.randn(b, t, r_q, d, generator=g, dtype=F64)
    a_k, a_v = (torch.randn(b, s, h, r, generator=g, dtype=F64) for r in (2, 3))
    b_k, b_v = (torch.randn(b, s, r, d, generator=g, dtype=F64) for r in (2, 3))
    q = tpa_materialize(a_q, b_q)
    ref = _reference(q, tpa_materialize(a_k, b_k), tpa_materialize(a_v, b_v), past)
    out = tpa_factor_attention(q if kv_only else (a_q, b_q), (a_k, b_k), (a_v, b_v), past=past)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_factor_attention_gradients_equal_materialized():
    g = torch.Generator().manual_seed(5)
    b, t, h, d = 2, 4, 5, 6
    leaves = [
        torch.randn(shape, generator=g, dtype=F64, requires_grad=True)
        for shape in ((b, t, h, 3), (b, t, 3, d), (b, t, h, 2), (b, t, 2, d))
        + ((b, t, h, 2), (b, t, 2, d))
    ]
    grads = []
    for factor in (True, False):
        for x in leaves:
            x.grad = None
        aq, bq, ak, bk, av, bv = leaves
        if factor:
            out = tpa_factor_attention((aq, bq), (ak, bk), (av, bv))
        else:
            q, k, v = tpa_materialize(aq, bq), tpa_materialize(ak, bk), tpa_materialize(av, bv)
            out = _reference(q, k, v, 0)
        out.square().sum().backward()
        grads.append([x.grad.clone() for x in leaves])
    for g1, g2 in zip(*grads, strict=True):
        torch.testing.assert_close(g1, g2, rtol=0, atol=1e-12)
