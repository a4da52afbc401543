"""Tests of the multi-identity Gaussian tensor (tensorsim.nn.gaussians, MIGS)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from solvers.gaussians import fit_identity  # noqa: E402
from tensorsim.nn.gaussians import (  # noqa: E402
    DEFAULT_LRS,
    PARAM_BLOCKS,
    MultiIdentityGaussians,
    activate,
    pose_gaussians,
)

N_I, N_G, M = 5, 7, sum(PARAM_BLOCKS.values())


def _model(form, rank, seed=0, **kw):
    return MultiIdentityGaussians(
        N_I, N_G, form=form, rank=rank, generator=torch.Generator().manual_seed(seed), **kw
    )


def _numpy_reference(model):
    """Full tensor from the factors by numpy einsum (independent of the module's products)."""
    u_id = model.identity.detach().numpy()
    u_g = model.gaussian.detach().numpy()
    u_p = np.concatenate([model.param[k].detach().numpy() for k in PARAM_BLOCKS])
    if model.form == "cp":
        return np.einsum("ir,gr,mr->igm", u_id, u_g, u_p)
    return np.einsum("abc,ia,gb,mc->igm", model.core.detach().numpy(), u_id, u_g, u_p)


@pytest.mark.parametrize(("form", "rank"), [("cp", 4), ("cp", 16), ("tucker", (3, 5, 6))])
def test_identity_rebuild_equals_the_dense_reconstruction(form, rank):
    model = _model(form, rank, noise=0.3)
    ref = _numpy_reference(model)
    dense = model.to_dense().detach().numpy()  # tensorsim.decomp cp_to_dense/tucker_to_dense
    np.testing.assert_allclose(dense, ref, rtol=1e-12, atol=1e-13)
    for i in range(N_I):
        np.testing.assert_allclose(
            model.identity_tensor(i).detach().numpy(), ref[i], rtol=1e-12, atol=1e-13
        )
        row = model.identity[i].detach()
        np.testing.assert_allclose(
            model.identity_tensor(row=row).detach().numpy(), ref[i], rtol=1e-12, atol=1e-13
        )


def test_counts_of_stored_numbers():
    assert _model("cp", 4).count() == 4 * (N_I + N_G + M)
    assert _model("cp", 4).count(per_identity=True) == 4
    assert _model("tucker", (2, 3, 4)).count() == 2 * 3 * 4 + N_I * 2 + N_G * 3 + M * 4
    assert _model("dense", None).count() == N_I * N_G * M
    assert _model("dense", None).count(per_identity=True) == N_G * M


def test_init_is_reproduced_by_every_identity():
    init = torch.randn(N_G, M, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for form, rank in (("cp", M), ("tucker", (1, N_G, M)), ("dense", None)):
        model = _model(form, rank, init=init, noise=0.0)
        for i in range(N_I):
            np.testing.assert_allclose(
                model.identity_tensor(i).detach().numpy(), init.numpy(), atol=1e-12
            )


@pytest.mark.parametrize(("form", "rank"), [("cp", 6), ("tucker", (3, 4, 5)), ("dense", None)])
def test_gradients_reach_only_the_right_blocks_and_identity_row(form, rank):
    model = _model(form, rank, noise=0.5)
    start = sum(list(PARAM_BLOCKS.values())[:3])  # the colour block's columns
    loss = (model.identity_tensor(3)[:, start : start + 3] ** 2).sum()
    loss.backward()
    blocks = model.dense if form == "dense" else model.param
    for name, p in blocks.items():
        g = p.grad if form != "dense" else p.grad[3]
        assert (g.abs().max() > 0) == (name == "color"), name
        if form == "dense":  # other identities' blocks untouched
            assert torch.count_nonzero(p.grad[[0, 1, 2, 4]]) == 0
    if form != "dense":
        grad = model.identity.grad
        assert torch.count_nonzero(grad[[0, 1, 2, 4]]) == 0 and grad[3].abs().max() > 0
        assert model.gaussian.grad.abs().max() > 0


@pytest.mark.parametrize(("form", "rank"), [("cp", 6), ("tucker", (3, 4, 5)), ("dense", None)])
def test_param_groups_give_each_block_its_learning_rate(form, rank):
    model = _model(form, rank, noise=0.5)
    lrs = {"xyz": 1e-3, "color": 3e-2, "opacity": 2e-2, "scaling": 5e-3, "rotation": 7e-4}
    groups = model.param_groups(lrs)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter once
    rate = {g["name"]: g["lr"] for g in groups}
    for name in PARAM_BLOCKS:
        assert rate[name] == lrs[name]
    for shared in ("identity", "gaussian", "core"):
        assert rate.get(shared, lrs["xyz"]) == lrs["xyz"]
    # Adam's first step moves every entry with a non-zero gradient by its group's lr
    before = [p.detach().clone() for g in groups for p in g["params"]]
    opt = torch.optim.Adam(groups, eps=1e-15)  # MIGS: eps 1e-15
    model.to_dense().square().sum().backward()
    opt.step()
    k = 0
    for g in groups:
        for p in g["params"]:
            moved = (p.detach() - before[k]).abs()[p.grad != 0]
            np.testing.assert_allclose(moved.numpy(), g["lr"], rtol=1e-6)
            k += 1
    assert model.param_groups()[-1]["lr"] == DEFAULT_LRS["opacity"]


@pytest.mark.parametrize(("form", "rank"), [("cp", 5), ("tucker", (3, 5, 6))])
def test_unseen_identity_row_is_recovered_with_shared_factors_frozen(form, rank):
    model = _model(form, rank, noise=0.5)
    shared = {n: p.detach().clone() for n, p in model.named_parameters()}
    r = model.identity.shape[1]
    true_row = torch.randn(r, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    target = model.identity_tensor(row=true_row).detach()
    row, losses = fit_identity(model, lambda x: ((x - target) ** 2).sum(), steps=1500, lr=0.05)
    np.testing.assert_allclose(row.numpy(), true_row.numpy(), atol=1e-4)
    assert losses[-1] < 1e-8 * losses[0]
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), shared[n]) and p.requires_grad, n


def test_activate_and_pose_match_numpy():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(4, M))
    g = activate(torch.as_tensor(raw))
    np.testing.assert_allclose(g.means.numpy(), raw[:, :3])
    np.testing.assert_allclose(g.scales.numpy(), np.exp(raw[:, 3:6]))
    np.testing.assert_allclose(g.colors.numpy(), 1 / (1 + np.exp(-raw[:, 10:13])))
    np.testing.assert_allclose(g.opacities.numpy(), 1 / (1 + np.exp(-raw[:, 13])))
    rot = g.rotations.numpy()
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-14)  # fmt: skip
    c, s = np.cos(0.7), np.sin(0.7)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    rots, trans = np.stack([np.eye(3), rz]), np.array([[0, 0, 0], [1.0, 2.0, 3.0]])
    parts = np.array([0, 1, 1, 0])
    posed = pose_gaussians(
        g, torch.as_tensor(parts), torch.as_tensor(rots), torch.as_tensor(trans)
    )
    ref = np.einsum("nij,nj->ni", rots[parts], raw[:, :3]) + trans[parts]
    np.testing.assert_allclose(posed.means.numpy(), ref, atol=1e-14)
    np.testing.assert_allclose(posed.rotations.numpy(), rots[parts] @ rot, atol=1e-14)
    np.testing.assert_allclose(
        posed.covariances().numpy(),
        rots[parts] @ g.covariances().numpy() @ rots[parts].transpose(0, 2, 1),
        atol=1e-14,
    )


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="rank: expected an integer >= 1"):
        _model("cp", 0)
    with pytest.raises(ValueError, match=r"rank\[1\]: expected an integer >= 1"):
        _model("tucker", (2, 0, 3))
    with pytest.raises(ValueError, match="form: expected"):
        _model("tt", 3)
    with pytest.raises(ValueError, match="rank: the dense form takes no rank"):
        _model("dense", 3)
    model = _model("cp", 3)
    with pytest.raises(ValueError, match=r"index: expected an identity in \[0, 5\), got 5"):
        model.identity_tensor(5)
    with pytest.raises(ValueError, match=r"index: expected an identity in \[0, 5\), got -1"):
        model.gaussians(-1)
    with pytest.raises(TypeError, match="index: expected an int"):
        model.identity_tensor(1.0)
    with pytest.raises(ValueError, match=r"row: expected a tensor of shape \(3,\)"):
        model.identity_tensor(row=torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="lrs: unknown names"):
        model.param_groups({"colour": 1e-3})
    with pytest.raises(ValueError, match=r"lrs\['xyz'\]: expected a positive rate"):
        model.param_groups({"xyz": -1.0})
    with pytest.raises(ValueError, match="init: expected a tensor of shape"):
        _model("cp", 3, init=torch.zeros(3, 3))
    g = activate(torch.zeros(2, M, dtype=torch.float64) + 0.1)
    with pytest.raises(ValueError, match=r"parts: expected indices in \[0, 1\)"):
        pose_gaussians(g, torch.tensor([0, 1]), torch.eye(3)[None].double(), torch.zeros(1, 3))
    reflect = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))[None]
    with pytest.raises(ValueError, match=r"rotations\[0\]: expected a proper rotation"):
        pose_gaussians(g, torch.tensor([0, 0]), reflect, torch.zeros(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"params: expected a tensor of shape \(N, 14\)"):
        activate(torch.zeros(2, 13))
