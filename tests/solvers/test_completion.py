"""Training loop (early stopping, checkpoints, restart), augmentation and the DAIN pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from problems.completion_data import synthetic_completion  # noqa: E402
from solvers.completion import (  # noqa: E402
    SERIES,
    CompletionParams,
    augment,
    cp_wopt,
    evaluate,
    predict,
    run_pipeline,
    to_torch,
    train_completion,
)
from tensorsim.io.sparse import cell_keys, sparse_tensor, split_cells  # noqa: E402
from tensorsim.nn.models.completion import build_model  # noqa: E402


@pytest.fixture(scope="module")
def split():
    prob = synthetic_completion((16, 14, 12), rank=2, density=0.25, noise=0.05, seed=0)
    return split_cells(prob.tensor, seed=0)


@pytest.fixture(scope="module")
def low_rank_split():
    """Exact CP rank-2 values (no nonlinearity): CP completion must fit them."""
    g = np.random.default_rng(0)
    shape = (15, 12, 10)
    a = [g.standard_normal((n, 2)) for n in shape]
    keys = g.choice(math.prod(shape), size=900, replace=False)
    idx = np.stack(np.unravel_index(keys, shape), axis=1)
    vals = np.einsum("ir,ir,ir->i", a[0][idx[:, 0]], a[1][idx[:, 1]], a[2][idx[:, 2]])
    return split_cells(sparse_tensor(idx, vals, shape), seed=1)


def test_cp_completion_recovers_a_low_rank_tensor(low_rank_split):
    s = low_rank_split
    model = build_model("cp", s.train.shape, seed=0, rank=2)
    params = CompletionParams(epochs=150, batch_size=128, lr=5e-2, patience=30)
    seen = []
    out = train_completion(model, s.train, s.val, params, callback=lambda *a: seen.append(a))
    err = evaluate(model, s.test)
    std = float(s.test.values.std())
    assert err["rmse"] < 1e-3 * std, (err, std)
    assert [a[0] for a in seen] == list(range(1, len(out.val_rmse) + 1))
    # the model holds the best epoch's weights
    assert math.isclose(evaluate(model, s.val)["rmse"], out.best_val_rmse, rel_tol=1e-6)
    assert out.val_rmse[out.best_epoch - 1] == out.best_val_rmse == min(out.val_rmse)


def test_cp_wopt_fits_observed_cells_with_sparse_mttkrp_gradients(low_rank_split):
    from tensorsim.decomp import cp_to_dense

    s = low_rank_split
    res = cp_wopt(s.train, 2, seed=0)
    dense = cp_to_dense(res.cp)
    rel = np.linalg.norm(dense[tuple(s.test.indices.T)] - s.test.values)
    assert rel / np.linalg.norm(s.test.values) < 1e-4, res
    # the gradient (sparse MTTKRP of the residual) agrees with torch autograd
    model = build_model("cp", s.train.shape, seed=3, rank=2)
    with torch.no_grad():
        model.head.weight.fill_(1.0)
    idx, y = torch.from_numpy(s.train.indices), torch.from_numpy(s.train.values)
    model.double()
    loss = 0.5 * torch.sum((model(idx) - y) ** 2)
    loss.backward()
    from tensorsim.decomp._cpkernels import as_sparse, mttkrp, sparse_cp_values

    factors = [a.detach().numpy() for a in model.factors]
    coo = as_sparse((s.train.indices, s.train.values), s.train.shape)
    resid = sparse_cp_values(coo, factors) - s.train.values
    for n, a in enumerate(model.factors):
        g = mttkrp(as_sparse((s.train.indices, resid), s.train.shape), factors, n)
        np.testing.assert_allclose(g, a.grad.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="rank: expected a positive integer"):
        cp_wopt(s.train, 0)


def test_evaluate_is_the_root_of_the_mean_square(split):
    model = build_model("dain_mlp", split.train.shape, seed=1)
    idx, y = to_torch(split.test)
    err = (predict(model, idx).double() - y.double()).numpy()
    got = evaluate(model, split.test)
    # float32 predictions: the difference is formed in float32 inside evaluate
    assert math.isclose(got["rmse"], float(np.sqrt(np.mean(err**2))), rel_tol=1e-6)
    assert math.isclose(got["mae"], float(np.mean(np.abs(err))), rel_tol=1e-6)


def test_early_stopping_stops_after_patience(split):
    model = build_model("dain_mlp", split.train.shape, seed=0)
    params = CompletionParams(epochs=200, lr=3e-2, patience=3)
    out = train_completion(model, split.train, split.val, params)
    assert len(out.val_rmse) == out.best_epoch + 3 < 200
    assert all(v >= out.best_val_rmse for v in out.val_rmse[out.best_epoch :])


def test_influence_importance_is_normalized_per_training_cell(split):
    model = build_model("cp", split.train.shape, seed=0, rank=4)
    out = train_completion(
        model, split.train, split.val, CompletionParams(epochs=4), influence=True
    )
    imp = out.importance
    assert imp.shape == (split.train.nnz,) and imp.dtype == torch.float64
    assert float(imp.max()) == 1.0 and float(imp.min()) >= 0.0
    assert out.influence_bytes == 2 * 8 * split.train.nnz  # running sum + best copy only


def test_checkpoint_restart_gives_the_uninterrupted_run(split, tmp_path):
    from tensorsim.io import Writer, read_checkpoint

    params = CompletionParams(epochs=6, patience=0, batch_size=128)
    small = {"embed_dim": 4, "hidden": (16, 8)}
    full = build_model("dain_mlp", split.train.shape, seed=2, **small)
    ref = train_completion(full, split.train, split.val, params, seed=5, influence=True)
    path = tmp_path / "train.nc"
    part = build_model("dain_mlp", split.train.shape, seed=2, **small)
    with Writer(path, record_dim="epoch") as w:
        for name, (units, long_name) in SERIES.items():
            w.define_series(name, units=units, long_name=long_name)
        train_completion(
            part, split.train, split.val, params, seed=5, influence=True, max_epochs=4,
            record=lambda epoch, values: w.append(epoch, **values), save=w.checkpoint,
        )  # fmt: skip
    w, ckpt = Writer.resume(path)
    assert ckpt is not None and ckpt.attrs["epoch"] == 4
    again = build_model(
        "dain_mlp", split.train.shape, seed=99, **small
    )  # weights come from the file
    with w:
        out = train_completion(
            again, split.train, split.val, params, seed=5, influence=True, resume=ckpt,
            record=lambda epoch, values: w.append(epoch, **values), save=w.checkpoint,
        )  # fmt: skip
    assert out.val_rmse == ref.val_rmse[4:]
    torch.testing.assert_close(out.importance, ref.importance, rtol=0, atol=0)
    for a, b in zip(full.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert read_checkpoint(path).attrs["epoch"] == 6
    with pytest.raises(ValueError, match="not a checkpoint of this trainer"):
        ckpt.attrs["format"] = "other"
        train_completion(again, split.train, split.val, params, resume=ckpt)


def test_bad_training_input_is_rejected(split):
    model = build_model("cp", split.train.shape)
    idx, y = to_torch(split.train)
    bad = y.clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="train: values must be finite"):
        train_completion(model, (idx, bad), split.val)
    out_of_range = idx.clone()
    out_of_range[0, 1] = split.train.shape[1]
    with pytest.raises(ValueError, match="mode 1 holds indices"):
        train_completion(model, (out_of_range, y), split.val)
    with pytest.raises(ValueError, match="val: expected at least one cell"):
        train_completion(model, split.train, (idx[:0], y[:0]))
    with pytest.raises(ValueError, match="tensor shape"):
        train_completion(build_model("cp", (3, 3, 3)), split.train, split.val)


def test_augment_draws_exact_new_cells_valued_by_the_predictor(split):
    model = build_model("dain_mlp", split.train.shape, seed=0)
    imp = torch.rand(split.train.nnz, generator=torch.Generator().manual_seed(0)).double()
    taken = np.concatenate([cell_keys(p.indices, split.train.shape) for p in split])
    for method in ("dain", "uniform", "frequency"):
        cells, values = augment(model, split, method, ratio=0.5, importance=imp, seed=3)
        n = round(0.5 * split.train.nnz)
        keys = cell_keys(cells.numpy(), split.train.shape)
        assert cells.shape == (n, 3) and np.unique(keys).size == n
        assert not np.isin(keys, taken).any()
        torch.testing.assert_close(values, predict(model, cells))
    cells, values = augment(model, split, "none", ratio=0.5)
    assert cells.shape == (0, 3) and values.shape == (0,)
    assert augment(model, split, "uniform", ratio=0.0)[0].shape == (0, 3)
    with pytest.raises(ValueError, match="ratio: expected a number >= 0, got -0.1"):
        augment(model, split, "dain", ratio=-0.1, importance=imp)
    with pytest.raises(ValueError, match="ratio: expected a number >= 0"):
        augment(model, split, "dain", ratio=float("nan"), importance=imp)
    with pytest.raises(ValueError, match="method: expected one of"):
        augment(model, split, "mixup", importance=imp)
    with pytest.raises(ValueError, match="importance: required"):
        augment(model, split, "dain")


@pytest.mark.parametrize("name", ["dain_mlp", "cp"])
def test_pipeline_is_paired_and_model_agnostic(split, name):
    params = CompletionParams(epochs=3, patience=0)
    opts = {"rank": 4} if name == "cp" else {"embed_dim": 4, "hidden": (16, 8)}
    res = run_pipeline(name, split, ratio=0.5, seed=1, params=params, model_options=opts)
    assert list(res) == ["none", "dain", "uniform", "frequency"]
    n_aug = round(0.5 * split.train.nnz)
    for method, r in res.items():
        assert r["n_aug"] == (0 if method == "none" else n_aug)
        assert r["n_train"] == split.train.nnz + r["n_aug"]
        assert math.isfinite(r["test_rmse"]) and r["test_mae"] <= r["test_rmse"]
    # "none" is the model trained directly with the same seed
    model = build_model(name, split.train.shape, seed=1, **opts)
    train_completion(model, split.train, split.val, params, seed=1)
    assert math.isclose(evaluate(model, split.test)["rmse"], res["none"]["test_rmse"])
    with pytest.raises(ValueError, match="ratio"):
        run_pipeline(name, split, ratio=-1.0, params=params, model_options=opts)
    with pytest.raises(ValueError, match=r"methods: unknown \['mixup'\]"):
        run_pipeline(name, split, methods=("mixup",), params=params, model_options=opts)
