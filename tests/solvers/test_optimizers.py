"""The optimizer comparison runs (:mod:`solvers.optimizers`) on the tasks of :mod:`problems`."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("pytorch_optimizer")

from problems.adaptation import digits_model_task  # noqa: E402
from problems.language import char_model_task  # noqa: E402
from solvers.optimizers import (  # noqa: E402
    OPTIMIZERS,
    STEP_COSTS,
    OptimParams,
    make_optimizer,
    predicted_state_bytes,
    tensor_table,
    train_run,
)
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.nn.models.small import build_digits_cnn  # noqa: E402
from tensorsim.optim import SMMF, smmf_state_bytes, state_bytes  # noqa: E402


def test_transformer_state_bytes_and_learning():
    task = char_model_task(
        corpus="python_source",
        max_chars=20_000,
        context=8,
        batch_size=8,
        eval_windows=8,
        width=16,
        layers=1,
        heads=2,
    )
    out = train_run(
        task,
        "smmf",
        1e-2,
        0,
        steps=20,
        warmup=0,
        eval_every=20,
        weight_decay=0.0,
        decay_rate=-0.8,
    )
    assert out["state_bytes"] == out["formula_bytes"] > 0
    assert out["val_loss"][-1] < out["val_loss"][0] - 0.5


def test_a_diverging_run_gives_nan_curves_not_an_error():
    task = digits_model_task("mlp", batch_size=8, val_fraction=0.2, data_seed=0)
    task.sample = lambda seed, step: (torch.full((8, 64), float("nan")), torch.zeros(8).long())
    out = train_run(
        task, "smmf", 1e-3, 0, steps=4, warmup=0, eval_every=2, weight_decay=0.0, decay_rate=-0.5
    )
    assert out["diverged"] and list(out["steps"]) == [0, 2, 4]
    assert np.all(np.isnan(out["val_loss"])) and np.isnan(out["step_seconds"])
    assert out["formula_bytes"] > 0


def test_make_optimizer_kinds_and_errors():
    params = [torch.nn.Parameter(torch.zeros(3, 4))]
    kinds = {name: type(make_optimizer(name, params, 1e-3)).__name__ for name in OPTIMIZERS}
    assert kinds == {
        "adam": "Adam",
        "adamw": "AdamW",
        "adafactor": "Adafactor",
        "came": "CAME",
        "sm3": "SM3",
        "smmf": "SMMF",
    }
    smmf = make_optimizer("smmf", params, 2e-3, weight_decay=0.1, decay_rate=-0.8)
    assert isinstance(smmf, SMMF) and smmf.defaults["lr"] == 2e-3
    assert smmf.defaults["weight_decay"] == 0.1 and smmf.defaults["decay_rate"] == -0.8
    assert make_optimizer("adam", params, 1e-3, weight_decay=0.5).defaults["weight_decay"] == 0.5
    with pytest.raises(ValueError, match="name"):
        make_optimizer("lion", params, 1e-3)
    with pytest.raises(ValueError, match="weight_decay"):
        make_optimizer("sm3", params, 1e-3, weight_decay=0.1)
    assert set(STEP_COSTS) == set(OPTIMIZERS)


def test_adam_state_bytes_match_the_formula_after_a_step():
    model = build_digits_cnn(seed=0)
    params = list(model.parameters())
    opt = make_optimizer("adam", params, 1e-3)
    model(torch.rand(4, 64)).sum().backward()
    opt.step()
    # two float32 moments per entry and a float32 step counter per tensor: 8 * 9930 + 4 * 6
    assert state_bytes(opt) == predicted_state_bytes("adam", params) == 8 * 9930 + 4 * 6
    assert math.isnan(predicted_state_bytes("came", params))


def test_tensor_table_of_the_cnn():
    table = tensor_table(build_digits_cnn(seed=0))
    assert table["names"] == ["1.weight", "1.bias", "3.weight", "3.bias", "7.weight", "7.bias"]
    np.testing.assert_array_equal(table["size"], [144, 16, 4608, 32, 5120, 10])
    assert table["size"].dtype == np.int64 and table["size"].sum() == 9930
    np.testing.assert_array_equal(table["rows"] * table["cols"], table["size"])
    np.testing.assert_array_equal(table["adam_bytes"], 8 * table["size"] + 4)
    assert table["smmf_bytes"][2] == smmf_state_bytes((32, 16, 3, 3))
    assert (table["rows"][2], table["cols"][2]) == (72, 64)


def test_lr_grid_and_config_errors():
    optim = OptimParams(lr_factors=(1.0, 3.0))
    assert optim.lrs("came") == [2e-4, 6e-4] and optim.lrs("sm3") == [0.1, 0.3]
    with pytest.raises(ConfigError, match="lr_factors"):
        OptimParams(lr_factors=())
    with pytest.raises(ConfigError, match="lr_factors"):
        OptimParams(lr_factors=(2.0, 2.0))
