"""Model and training tables of the completion pipeline (solvers.completion.ModelParams, ...)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from problems.completion_data import synthetic_completion  # noqa: E402
from solvers.completion import (  # noqa: E402
    MODEL_FIELDS,
    RESULTS,
    TIMED,
    CompletionParams,
    ModelParams,
    TrainingParams,
    run_pipeline,
    time_pipeline,
)
from tensorsim.io.sparse import split_cells  # noqa: E402
from tensorsim.nn.models.completion import MODELS  # noqa: E402


def test_every_model_has_its_fields_and_every_field_a_model():
    assert set(MODEL_FIELDS) == set(MODELS)
    fields = {f for names in MODEL_FIELDS.values() for f in names}
    assert fields == set(ModelParams.__dataclass_fields__)


def test_settings_of_each_model():
    model = ModelParams(embed_dim=4, hidden=(8,), mlp_lr=0.1, costco_rank=5, costco_channels=6,
                        costco_lr=0.2, cp_rank=3, cp_lr=0.3, tucker_rank=2, tucker_lr=0.4,
                        factor_epochs=7, factor_patience=2)  # fmt: skip
    training = TrainingParams(epochs=9, batch_size=32, patience=4, weight_decay=0.01)
    expected = {
        "dain_mlp": ({"embed_dim": 4, "hidden": (8,)}, 0.1, 9, 4),
        "costco": ({"rank": 5, "channels": 6}, 0.2, 9, 4),
        "cp": ({"rank": 3}, 0.3, 7, 2),
        "tucker": ({"ranks": 2}, 0.4, 7, 2),
    }
    for name, (options, lr, epochs, patience) in expected.items():
        got, params = model.settings(name, training)
        assert got == options, name
        assert params == CompletionParams(
            epochs=epochs, batch_size=32, lr=lr, weight_decay=0.01, patience=patience
        ), name
        assert model.schedule(name, training) == (epochs, patience)
    _, fixed = model.settings("cp", training, epochs=3, patience=0)
    assert (fixed.epochs, fixed.patience, fixed.lr) == (3, 0, 0.3)
    with pytest.raises(ValueError, match="name: expected one of"):
        model.settings("ntf", training)


def test_unused_fields_of_a_set_of_models():
    model, training = ModelParams(), TrainingParams()
    assert model.unused(["dain_mlp", "cp"]) == [
        "costco_rank", "costco_channels", "costco_lr", "tucker_rank", "tucker_lr"
    ]  # fmt: skip
    assert "factor_epochs" in model.unused(["costco"]) and model.unused(list(MODELS)) == []
    assert training.unused(["cp", "tucker"]) == ["epochs", "patience"]
    assert training.unused(["cp", "dain_mlp"]) == []


def test_time_pipeline_times_one_dain_run_of_the_pipeline():
    tensor = synthetic_completion((10, 9, 8), rank=2, density=0.3, seed=1).tensor
    split = split_cells(tensor, seed=0)
    params = CompletionParams(epochs=2, lr=3e-2, patience=0)
    out = time_pipeline("cp", split, ratio=0.5, seed=0, params=params, model_options={"rank": 2})
    ref = run_pipeline(
        "cp", split, methods=("dain",), ratio=0.5, seed=0, params=params,
        model_options={"rank": 2},
    )  # fmt: skip
    assert list(out) == list(TIMED)
    assert out["test_rmse"] == ref["dain"]["test_rmse"]
    parts = ("train_seconds", "influence_seconds", "augment_seconds", "retrain_seconds")
    assert all(out[k] >= 0 for k in parts) and out["seconds"] >= out["train_seconds"]
    assert set(ref["none"]) == set(RESULTS)
