"""solvers.adapters: pretraining, adapter variants, measured runs, LoQT pretraining."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from solvers import adapters  # noqa: E402
from solvers.adapters import (  # noqa: E402
    PRETRAIN_MODES,
    VARIANTS,
    LoQTPretrainParams,
    TrainingParams,
    adapt_run,
    adapt_variant,
    model_bytes,
    pretrain,
    pretrain_run,
    pretrained_model,
    pretrained_state,
    trainable_count,
)
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.nn.adapters import refresh_steps  # noqa: E402
from tensorsim.nn.models.mlp import build_mlp  # noqa: E402

WIDTH = 8


@dataclass
class _Task:
    """Two random 4-class problems on 6 features (part B: the features negated)."""

    data: dict[str, dict[str, tuple[Any, Any]]]

    def build(self, generator: torch.Generator) -> torch.nn.Module:
        return build_mlp(in_features=6, width=WIDTH, depth=2, classes=4, generator=generator)

    def batches(self, part: str, seed: int):
        sign = 1.0 if part == "a" else -1.0

        def batch(step: int):
            g = torch.Generator().manual_seed(seed * 1000 + step)
            x = torch.randn(16, 6, generator=g)
            return sign * x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()

        return batch


def _task() -> _Task:
    data = {}
    for part, sign in (("a", 1.0), ("b", -1.0)):
        x = torch.randn(32, 6, generator=torch.Generator().manual_seed(99))
        y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
        data[part] = {"val": (sign * x[:16], y[:16]), "test": (sign * x[16:], y[16:])}
    return _Task(data)


TRAIN = TrainingParams(steps=6, lr=1e-2, warmup=2)


def test_training_params_check_the_warmup():
    with pytest.raises(ConfigError, match="warmup.*at most steps=3"):
        TrainingParams(steps=3, warmup=4)


def test_pretrain_is_seeded_and_learns():
    task = _task()
    model, metrics = pretrain(task, TrainingParams(steps=40, lr=1e-2, warmup=2), seed=1)
    again, same = pretrain(task, TrainingParams(steps=40, lr=1e-2, warmup=2), seed=1)
    assert metrics == same and set(metrics) == {
        "val_loss", "val_accuracy", "test_loss", "test_accuracy"
    }  # fmt: skip
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)
    fresh = task.build(torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(fresh(task.data["a"]["val"][0]),
                                                   task.data["a"]["val"][1])  # fmt: skip
    assert metrics["val_loss"] < float(before)


def test_pretrained_state_rebuilds_the_pretrained_model():
    task = _task()
    reference, metrics = pretrain(task, TRAIN, seed=2)
    state, metrics0 = pretrained_state(task, TRAIN, seed=2)
    model0 = pretrained_model(task, state, seed=2)
    assert metrics0 == metrics
    for p, r in zip(model0.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, r)


def test_full_variant_trains_only_the_targeted_weights_of_a_copy():
    pretrained = _task().build(torch.Generator().manual_seed(0))
    model = adapt_variant(pretrained, "full", [r"hidden\d+"], 1, seed=0)
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["hidden1.weight", "hidden2.weight"]
    assert trainable_count(model) == 2 * WIDTH * WIDTH
    assert all(p.requires_grad for p in pretrained.parameters())  # the original untouched
    with pytest.raises(ValueError, match="variant"):
        adapt_variant(pretrained, "dora", [r"hidden\d+"], 1, seed=0)


def test_lora_counts_and_zero_start():
    task = _task()
    pretrained = task.build(torch.Generator().manual_seed(0))
    model = adapt_variant(pretrained, "lora", [r"hidden\d+"], 2, seed=3)
    assert trainable_count(model) == 2 * (2 * WIDTH * 2)  # A and B of two layers
    x = task.data["b"]["val"][0]
    with torch.no_grad():
        assert torch.equal(model(x), pretrained(x))  # B = 0: the pretrained function


def test_adapt_run_measures_curves_and_bytes():
    task = _task()
    pretrained = task.build(torch.Generator().manual_seed(0))
    out = adapt_run(pretrained, task, "lora", [r"hidden\d+"], 2, TRAIN, eval_every=3, seed=0,
                    loqt_gap=100)  # fmt: skip
    np.testing.assert_array_equal(out["steps"], [0, 3, 6])
    assert out["val_loss"].shape == out["test_accuracy"].shape == out["train_loss"].shape == (3,)
    assert np.isnan(out["train_loss"][0]) and np.all(np.isfinite(out["train_loss"][1:]))
    assert out["trainable"] == 64 and out["step_seconds"] > 0
    # AdamW: two float32 moments per trainable value and a step counter per tensor
    assert 8 * 64 <= out["optimizer_bytes"] <= 8 * 64 + 4 * 8
    model = adapt_variant(pretrained, "lora", [r"hidden\d+"], 2, seed=0)
    assert out["weight_bytes"] == model_bytes(model)


def test_loqt_variants_refresh_on_the_exponential_schedule(monkeypatch):
    import tensorsim.nn.adapters as nn_adapters

    calls: list[int] = []
    original = nn_adapters.refresh_loqt

    def counting(model: Any, closure: Any) -> None:
        calls.append(1)
        original(model, closure)

    monkeypatch.setattr(nn_adapters, "refresh_loqt", counting)
    task = _task()
    pretrained = task.build(torch.Generator().manual_seed(0))
    steps = TrainingParams(steps=12, lr=1e-2, warmup=2)
    adapt_run(pretrained, task, "loqt_nq", [r"hidden\d+"], 2, steps, eval_every=12, seed=0,
              loqt_gap=2)  # fmt: skip
    assert len(calls) == len(refresh_steps("exponential", 2, 11)) > 2
    calls.clear()
    adapt_run(pretrained, task, "lora", [r"hidden\d+"], 2, steps, eval_every=12, seed=0,
              loqt_gap=2)  # fmt: skip
    assert calls == []


def test_pretrain_run_modes():
    task = _task()
    loqt = LoQTPretrainParams(targets=(r"hidden\d+",), rank=2, gap=2, eval_every=3)
    runs = {mode: pretrain_run(task, mode, loqt, TRAIN, seed=0) for mode in PRETRAIN_MODES}
    n_all = 6 * WIDTH + WIDTH + 2 * (WIDTH * WIDTH + WIDTH) + 4 * WIDTH + 4
    assert runs["full"]["trainable"] == n_all
    # under LoQT: B (rank x in) in place of each targeted weight and bias; the rest in full
    assert runs["loqt"]["trainable"] == runs["loqt_nq"]["trainable"]
    assert runs["loqt"]["trainable"] == n_all - 2 * (WIDTH * WIDTH + WIDTH - 2 * WIDTH)
    assert runs["loqt"]["weight_bytes"] < runs["loqt_nq"]["weight_bytes"]  # NF4 base
    np.testing.assert_array_equal(runs["full"]["steps"], [0, 3, 6])
    with pytest.raises(ValueError, match="mode"):
        pretrain_run(task, "galore", loqt, TRAIN, seed=0)


def test_variants_and_curves_tables():
    assert VARIANTS["pissa"] == ("lora", {"init": "pissa"}) and "full" in VARIANTS
    assert list(adapters.CURVES) == [
        "val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_loss"
    ]  # fmt: skip
