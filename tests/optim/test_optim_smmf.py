"""SMMF optimizer (arXiv 2412.08894): shapes, factorization, packing, moments, state, training."""

from __future__ import annotations

import copy
import io
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from tensorsim.optim import (  # noqa: E402
    SMMF,
    pack_bits,
    rank1_nnmf,
    smmf_matrix_shape,
    smmf_state_bytes,
    state_bytes,
    unpack_bits,
)
from tensorsim.optim._bits import pack_signbits  # noqa: E402

torch.set_num_threads(1)


# --- square-matricization ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((768, 3072), (1536, 1536)),
        ((3, 3, 64, 128), (288, 256)),
        ((50304, 768), (6288, 6144)),
        ((7919,), (7919, 1)),  # prime: no saving
        ((13, 1), (13, 1)),
        ((), (1, 1)),
        ((10,), (5, 2)),
    ],
)
def test_matrix_shape(shape, expected):
    assert smmf_matrix_shape(shape) == expected


# --- rank-1 nonnegative factorization ---------------------------------------------------


def test_rank1_nnmf_exact_on_rank1_nonnegative():
    gen = torch.Generator().manual_seed(0)
    for n, m in [(6, 4), (4, 6), (5, 5), (1, 7)]:
        a = torch.rand(3, n, 1, generator=gen, dtype=torch.float64)
        b = torch.rand(3, 1, m, generator=gen, dtype=torch.float64)
        x = a * b
        r, c = rank1_nnmf(x)
        assert r.shape == (3, n) and c.shape == (3, m)
        torch.testing.assert_close(r[..., :, None] * c[..., None, :], x, rtol=1e-13, atol=0)
        shorter = c if m <= n else r
        torch.testing.assert_close(shorter.sum(-1), torch.ones(3, dtype=torch.float64))
    r, c = rank1_nnmf(torch.zeros(4, 3))
    assert not r.any() and not c.any() and torch.isfinite(c).all()


def test_rank1_nnmf_bad_input():
    with pytest.raises(ValueError, match="x"):
        rank1_nnmf(torch.ones(3))
    with pytest.raises(TypeError, match="x"):
        rank1_nnmf(torch.ones(3, 3, dtype=torch.complex64))


# --- sign packing -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
def test_bit_packing_round_trip(n):
    gen = torch.Generator().manual_seed(n)
    mask = torch.rand(3, n, generator=gen) > 0.5
    packed = pack_bits(mask)
    assert packed.dtype == torch.uint8 and packed.shape == (3, -(-n // 8))
    assert torch.equal(unpack_bits(packed, n), mask)
    # bit 7 of byte 0 is entry 0 (most significant bit first)
    first = pack_bits(torch.tensor([True] + [False] * 7))
    assert first.tolist() == [128]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("n", [16, 13])
def test_pack_signbits_matches_generic(dtype, n):
    x = torch.randn(4, n, generator=torch.Generator().manual_seed(1)).to(dtype)
    x[0, 0] = -0.0
    x[1, 1] = 0.0
    assert torch.equal(pack_signbits(x), pack_bits(torch.signbit(x)))


def test_packing_bad_input():
    with pytest.raises(TypeError, match="mask"):
        pack_bits(torch.ones(8))
    with pytest.raises(TypeError, match="packed"):
        unpack_bits(torch.ones(2), 8)
    with pytest.raises(ValueError, match="n"):
        unpack_bits(torch.zeros(2, dtype=torch.uint8), 17)


# --- moments against a dense reference ---------------------------------------------------


def dense_reference(grads, *, lr, beta1, eps, decay_rate, growth_rate, theta0):
    """Adam-style EMA with SMMF's schedules, dense, no bias correction, no weight decay."""
    theta = theta0.clone()
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        b2 = 1.0 - t**decay_rate
        v = b2 * v + (1.0 - b2) * g * g
        if beta1 is None:
            num = g
        else:
            b1 = beta1 * growth_rate ** (t - 1)
            m = b1 * m + (1.0 - b1) * g
            num = m
        theta = theta - lr * num / (v.sqrt() + eps)
    return theta, (None if beta1 is None else m), v


@pytest.mark.parametrize("beta1", [0.9, None])
@pytest.mark.parametrize("signed", [False, True])
def test_factored_moments_equal_dense_ema_on_rank1_stream(beta1, signed):
    gen = torch.Generator().manual_seed(2)
    shape = (4, 3, 6)  # matricized 9 x 8
    n, m = smmf_matrix_shape(shape)
    a = torch.rand(n, 1, generator=gen, dtype=torch.float64) + 0.1
    b = torch.rand(1, m, generator=gen, dtype=torch.float64) + 0.1
    pattern = torch.ones(n, m, dtype=torch.float64)
    if signed:  # fixed signs keep |M| rank 1
        pattern = torch.where(torch.rand(n, m, generator=gen) > 0.5, 1.0, -1.0).double()
    scales = torch.rand(8, generator=gen, dtype=torch.float64) + 0.5
    grads = [(s * a * b * pattern).reshape(shape) for s in scales]
    theta0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    hyper = {"lr": 1e-2, "beta1": beta1, "eps": 1e-8, "decay_rate": -0.8, "growth_rate": 0.99}
    p = torch.nn.Parameter(theta0.clone())
    opt = SMMF([p], weight_decay=0.0, **hyper)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    theta, m_ref, v_ref = dense_reference(grads, theta0=theta0, **hyper)
    m_got, v_got = opt.moments(p)
    torch.testing.assert_close(v_got, v_ref, rtol=1e-12, atol=0)
    if beta1 is None:
        assert m_got is None and set(opt.state[p]) == {"step", "row_v", "col_v"}
    else:
        torch.testing.assert_close(m_got, m_ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(p.detach(), theta, rtol=1e-12, atol=1e-14)


def test_unfactored_vectors_follow_dense_reference():
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(5, generator=gen, dtype=torch.float64) for _ in range(4)]
    theta0 = torch.randn(5, generator=gen, dtype=torch.float64)
    hyper = {"lr": 1e-2, "beta1": 0.9, "eps": 1e-8, "decay_rate": -0.5, "growth_rate": 0.999}
    p = torch.nn.Parameter(theta0.clone())
    opt = SMMF([p], weight_decay=0.0, vector_reshape=False, **hyper)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    theta, _, _ = dense_reference(grads, theta0=theta0, **hyper)
    torch.testing.assert_close(p.detach(), theta, rtol=1e-12, atol=1e-14)
    assert set(opt.state[p]) == {"step", "exp_avg", "exp_avg_sq"}


def test_decoupled_and_l2_weight_decay():
    theta0 = torch.tensor([[1.0, -2.0], [3.0, 4.0]], dtype=torch.float64)
    grad = torch.full((2, 2), 0.5, dtype=torch.float64)
    p = torch.nn.Parameter(theta0.clone())
    opt = SMMF([p], lr=0.1, weight_decay=0.01, eps=0.0)
    p.grad = grad.clone()
    opt.step()
    # first step: V = G^2, M = (1 - beta1) G, so the step is lr (1 - beta1) sign(G)
    expected = theta0 * (1 - 0.1 * 0.01) - 0.1 * 0.1 * torch.sign(grad)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-14, atol=0)
    q = torch.nn.Parameter(theta0.clone())
    opt = SMMF([q], lr=0.1, weight_decay=0.01, eps=0.0, weight_decay_mode="adam")
    q.grad = grad.clone()
    opt.step()
    g = grad + 0.01 * theta0
    torch.testing.assert_close(q.detach(), theta0 - 0.1 * 0.1 * torch.sign(g), rtol=1e-14, atol=0)


# --- state: bytes, devices, dtypes, state_dict ------------------------------------------

SHAPES = [(8, 3, 3, 3), (8,), (10, 16), (16,), (7, 11), (13,), ()]


def make_params(dtype=torch.float32, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype=dtype, device=device))
        for s in SHAPES
    ]


def random_grads(params, step):
    gen = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)


@pytest.mark.parametrize(
    ("dtype", "beta1", "vector_reshape"),
    [
        (torch.float32, 0.9, True),
        (torch.bfloat16, None, True),
        (torch.float64, 0.9, False),
    ],
)
def test_state_bytes_match_formula(dtype, beta1, vector_reshape):
    params = make_params(dtype)
    opt = SMMF(params, beta1=beta1, vector_reshape=vector_reshape)
    assert state_bytes(opt) == 0
    random_grads(params, 0)
    opt.step()
    float_bytes = 8 if dtype == torch.float64 else 4
    formula = sum(
        smmf_state_bytes(
            p.shape,
            first_moment=beta1 is not None,
            vector_reshape=vector_reshape,
            float_bytes=float_bytes,
        )
        for p in params
    )
    assert state_bytes(opt) == formula
    # the signs are bits, not bytes: 8 * 3 * 3 * 3 = 216 signs in 27 bytes
    if beta1 is not None:
        assert opt.state[params[0]]["sign"].nbytes == 27
        assert opt.state[params[0]]["sign"].dtype == torch.uint8
    # formula by hand for the conv kernel 8x3x3x3 -> 18 x 12
    assert smmf_state_bytes((8, 3, 3, 3)) == 2 * (18 + 12) * 4 + 27
    adam = torch.optim.Adam(make_params(torch.float32))
    assert state_bytes(adam) == 0
    with pytest.raises(TypeError, match="optimizer"):
        state_bytes(params)


def test_state_lives_on_parameter_device_and_dtypes():
    params = make_params(torch.bfloat16)
    opt = SMMF(params)
    random_grads(params, 0)
    opt.step()
    for p in params:
        assert p.dtype == torch.bfloat16
        for key, value in opt.state[p].items():
            if key == "step":
                assert value == 1
            elif key == "sign":
                assert value.dtype == torch.uint8 and value.device == p.device
            else:
                assert value.dtype == torch.float32 and value.device == p.device
    # meta tensors: the state is created where the parameter is
    meta = [torch.nn.Parameter(torch.empty(6, 4, device="meta"))]
    opt = SMMF(meta)
    meta[0].grad = torch.empty(6, 4, device="meta")
    opt.step()
    assert all(v.device.type == "meta" for k, v in opt.state[meta[0]].items() if k != "step")


@pytest.mark.gpu
def test_state_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    params = make_params(torch.float32, device="cuda")
    opt = SMMF(params)
    random_grads(params, 0)
    opt.step()
    assert all(
        v.device.type == "cuda" for p in params for k, v in opt.state[p].items() if k != "step"
    )
    cpu = make_params(torch.float32)
    ref = SMMF(cpu)
    random_grads(cpu, 0)
    ref.step()
    for p, q in zip(params, cpu, strict=True):
        torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_dict_round_trip_continues_bitwise(dtype):
    def run(params, opt, steps):
        for t in steps:
            random_grads(params, t)
            opt.step()

    params = make_params(dtype)
    opt = SMMF(params, lr=1e-2)
    run(params, opt, range(6))

    first = make_params(dtype)
    opt1 = SMMF(first, lr=1e-2)
    run(first, opt1, range(3))
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in first], "opt": opt1.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert saved["opt"]["state"][0]["sign"].dtype == torch.uint8
    second = [torch.nn.Parameter(t.clone()) for t in saved["params"]]
    opt2 = SMMF(second, lr=1e-2)
    opt2.load_state_dict(saved["opt"])
    assert opt2.state[second[0]]["row_v"].dtype == torch.float32
    run(second, opt2, range(3, 6))
    for p, q in zip(params, second, strict=True):
        assert torch.equal(p.detach(), q.detach())
    assert state_bytes(opt2) == state_bytes(opt)


def test_fused_equals_unfused():
    shapes = [(6, 4), (6, 4), (6, 4), (3, 8), (24,), (24,)]
    gen = torch.Generator().manual_seed(4)
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    a = [torch.nn.Parameter(t.clone()) for t in start]
    b = [torch.nn.Parameter(t.clone()) for t in start]
    opt_a = SMMF(a, fused=True)
    opt_b = SMMF(b, fused=False)
    for t in range(4):
        random_grads(a, t)
        random_grads(b, t)
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
        for key in opt_a.state[p]:
            if key == "sign":
                assert torch.equal(opt_a.state[p][key], opt_b.state[q][key])


def test_gradient_accumulation_equals_full_batch():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(32, 6, generator=gen)
    y = torch.randn(32, 2, generator=gen)
    base = torch.nn.Linear(6, 2)
    full, accum = copy.deepcopy(base), copy.deepcopy(base)
    opt_full = SMMF(full.parameters(), lr=1e-2)
    opt_accum = SMMF(accum.parameters(), lr=1e-2)
    for _ in range(3):
        opt_full.zero_grad()
        torch.nn.functional.mse_loss(full(x), y).backward()
        opt_full.step()
        opt_accum.zero_grad()
        for half in (slice(0, 16), slice(16, 32)):
            (torch.nn.functional.mse_loss(accum(x[half]), y[half]) / 2).backward()
        opt_accum.step()
    for p, q in zip(full.parameters(), accum.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


# --- it optimizes ----------------------------------------------------------------------


def test_least_squares_reaches_low_loss():
    gen = torch.Generator().manual_seed(6)
    a = torch.randn(64, 12, generator=gen)
    w_true = torch.randn(12, 6, generator=gen)
    b = a @ w_true
    w = torch.nn.Parameter(torch.zeros(12, 6))
    opt = SMMF([w], lr=3e-2, weight_decay=0.0)
    loss0 = torch.nn.functional.mse_loss(a @ w, b).item()
    for _ in range(400):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(a @ w, b)
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3 * loss0


def test_tiny_mlp_learns_with_closure():
    torch.manual_seed(7)
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(128, 2, generator=gen) * 2 - 1
    y = torch.sin(3 * x[:, :1]) * x[:, 1:]
    model = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = SMMF(model.parameters(), lr=1e-2, decay_rate=-0.8)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    loss0 = closure().item()
    for _ in range(300):
        loss = opt.step(closure)
    assert loss.item() < 0.05 * loss0


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": -1e-3}, "lr"),
        ({"eps": -1.0}, "eps"),
        ({"decay_rate": 0.0}, "decay_rate"),
        ({"decay_rate": 0.5}, "decay_rate"),
        ({"beta1": 1.0}, "beta1"),
        ({"growth_rate": 0.0}, "growth_rate"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"weight_decay_mode": "l1"}, "weight_decay_mode"),
        ({"fused": "yes"}, "fused"),
    ],
)
def test_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SMMF([torch.nn.Parameter(torch.ones(2, 2))], **kwargs)


def test_bad_parameters_and_gradients():
    with pytest.raises(TypeError, match="params"):
        SMMF([torch.nn.Parameter(torch.ones(2, 2, dtype=torch.complex64))])
    opt = SMMF([torch.nn.Parameter(torch.ones(2, 2))])
    with pytest.raises(ValueError, match="lr"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(3))], "lr": -1.0})
    assert len(opt.param_groups) == 1
    emb = torch.nn.Embedding(10, 4, sparse=True)
    opt = SMMF(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(TypeError, match="sparse"):
        opt.step()
    with pytest.raises(ValueError, match="p"):
        opt.moments(torch.nn.Parameter(torch.ones(2)))


def test_import_tensorsim_does_not_import_torch():
    code = "import sys, tensorsim; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_empty_parameter_is_skipped():
    empty = torch.nn.Parameter(torch.zeros(0, 3))
    full = torch.nn.Parameter(torch.ones(2, 3))
    opt = SMMF([empty, full])
    empty.grad = torch.zeros(0, 3)
    full.grad = torch.ones(2, 3)
    opt.step()
    assert not opt.state[empty] and smmf_state_bytes((0, 3)) == 0
    assert state_bytes(opt) == smmf_state_bytes((2, 3))
