"""Findings and figures of SMMF output files (analysis.smmf) on a constructed data set."""

from __future__ import annotations

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from analysis.smmf import analyse, plots, summary_lines  # noqa: E402

CURVES = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def _dataset(model: str = "cnn") -> xr.Dataset:
    """Adam at lr 1e-3 and 1e-2 (2 seeds each), SMMF at 1e-3 (2 seeds); 3 evaluations."""
    optimizer = ["adam"] * 4 + ["smmf"] * 2
    lr = [1e-3, 1e-3, 1e-2, 1e-2, 1e-3, 1e-3]
    final = {  # per run: final val_loss, val_accuracy, test_loss, test_accuracy
        "val_loss": [0.5, 0.7, 0.4, np.nan],
        "val_accuracy": [0.90, 0.80, 0.95, np.nan],
        "test_loss": [0.6, 0.8, 0.3, np.nan],
        "test_accuracy": [0.85, 0.75, 0.97, np.nan],
    }
    smmf = {"val_loss": [0.3, 0.5], "val_accuracy": [0.84, 0.86],
            "test_loss": [0.2, 0.4], "test_accuracy": [0.90, 0.94]}  # fmt: skip
    data = {}
    for name in CURVES:
        values = np.zeros((6, 3))
        values[:, 0] = np.nan if name == "train_loss" else 2.3
        values[:, 1] = 1.0
        values[:, 2] = [*final.get(name, [0.1] * 4), *smmf.get(name, [0.2, 0.2])]
        data[name] = (("run", "eval_step"), values)
    data |= {
        "optimizer": ("run", optimizer),
        "lr": ("run", lr),
        "seed": ("run", [0, 1, 0, 1, 0, 1]),
        "diverged": ("run", np.array([0, 0, 0, 1, 0, 0], dtype=np.int8)),
        "state_bytes": ("run", [800, 800, 800, 800, 40, 40]),
        "formula_bytes": ("run", [800.0] * 4 + [40.0, 40.0]),
        "step_seconds": ("run", [1.0, 3.0, 2.0, np.nan, 4.0, 6.0]),
        "tensor_size": ("tensor", [10, 1000]),
        "tensor_smmf_bytes": ("tensor", [30, 10]),
        "tensor_adam_bytes": ("tensor", [60, 790]),
    }
    return xr.Dataset(
        data,
        coords={"eval_step": [0, 5, 10], "tensor": ["b", "w"]},
        attrs={"model": model, "parameters": 1010},
    )


def test_selection_by_validation_accuracy_and_smmf_against_adam():
    found = analyse(_dataset())
    assert found["model"] == "cnn" and found["parameters"] == 1010
    adam, smmf = found["table"]["adam"], found["table"]["smmf"]
    # lr 1e-2 has a diverged seed (NaN mean): lr 1e-3 (mean val accuracy 0.85) wins
    assert adam["lr"] == 1e-3 and adam["lr_at_edge"] and adam["seeds"] == 2
    assert adam["diverged_runs"] == 1 and smmf["diverged_runs"] == 0
    assert adam["test_accuracy"] == pytest.approx(0.80)
    assert adam["test_accuracy_std"] == pytest.approx(0.05)
    assert smmf["test_accuracy"] == pytest.approx(0.92) and not smmf["lr_at_edge"]
    assert adam["step_seconds"] == 2.0 and smmf["state_ratio"] == 40 / 800
    np.testing.assert_allclose(adam["curves"]["test_loss"], [2.3, 1.0, 0.7])
    cmp = found["smmf_vs_adam"]
    assert cmp["accuracy_gap_points"] == pytest.approx(12.0) and cmp["met"]
    assert cmp["loss_gap_nats"] == pytest.approx(-0.4) and cmp["formula_match"]
    assert cmp["criterion"] == "test accuracy within 1 point"
    t = found["tensors"]
    assert t["count"] == 2 and t["model_ratio"] == pytest.approx(40 / 850)
    assert t["largest"] == (1000, pytest.approx(10 / 790)) and t["smallest"] == (10, 0.5)
    lines = summary_lines(found)
    assert lines[0].startswith("  adam      lr 1e-03*") and "diverged runs" in lines[2]
    assert "measured == formula: True; test accuracy within 1 point: met" in lines[-2]


def test_the_transformer_is_selected_by_validation_loss():
    found = analyse(_dataset("transformer"))
    # mean final validation loss: lr 1e-3 0.6, lr 1e-2 NaN (counts as infinite)
    assert found["table"]["adam"]["lr"] == 1e-3
    cmp = found["smmf_vs_adam"]
    assert cmp["criterion"] == "test loss within 0.05 nats" and cmp["met"]


def test_plots(tmp_path):
    paths = plots(_dataset(), tmp_path / "run")
    assert [p.name for p in paths] == ["run_curves.png", "run_state.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
