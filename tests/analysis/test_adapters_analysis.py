"""Tables of adapter output files (analysis.adapters) on constructed data sets."""

from __future__ import annotations

import pytest

xr = pytest.importorskip("xarray")

from analysis.adapters import (  # noqa: E402
    analyse,
    label,
    pretrain_lines,
    pretrain_table,
    sweep_lines,
)


def _sweep(task: str = "digits") -> xr.Dataset:
    runs = [
        # variant, rank, lr, trainable, final val acc, test acc, val loss curve
        ("lora", 4, 1e-3, 1000, 0.80, 0.81, [2.0, 1.0, 0.50]),
        ("lora", 4, 1e-2, 1000, 0.90, 0.88, [2.0, 0.8, 0.40]),
        ("lotr", 2, 1e-2, 200, 0.89, 0.875, [2.0, 0.9, 0.45]),
        ("lotr", 8, 1e-2, 400, 0.91, 0.90, [2.0, 0.7, 0.35]),
        ("soka", 1, 1e-2, 300, 0.85, 0.85, [2.0, 0.6, 0.41]),
        ("soka", 2, 1e-2, 600, 0.90, 0.89, [2.0, 0.4, 0.30]),
    ]
    return xr.Dataset(
        {
            "variant": ("run", [r[0] for r in runs]),
            "rank": ("run", [r[1] for r in runs]),
            "lr": ("run", [r[2] for r in runs]),
            "trainable": ("run", [r[3] for r in runs]),
            "val_accuracy": (("run", "eval_step"), [[0, 0, r[4]] for r in runs]),
            "test_accuracy": (("run", "eval_step"), [[0, 0, r[5]] for r in runs]),
            "test_loss": (("run", "eval_step"), [[0, 0, 1.0] for r in runs]),
            "val_loss": (("run", "eval_step"), [r[6] for r in runs]),
            "weight_bytes": ("run", [10] * len(runs)),
            "optimizer_bytes": ("run", [1] * len(runs)),
            "step_seconds": ("run", [0.1] * len(runs)),
        },
        coords={"eval_step": [0, 10, 20]},
        attrs={"task": task},
    )


def test_analyse_selects_by_validation_and_matches_lotr_and_soka_to_lora():
    found = analyse(_sweep())
    assert found["table"]["lora", 4]["lr"] == 1e-2  # best validation accuracy, not test
    assert found["table"]["lora", 4]["runs"] == [1] and found["table"]["lora", 4]["bytes"] == 11
    lotr = found["lotr_vs_lora"][4]
    assert (lotr["rank"], lotr["ratio"]) == (2, 5.0)  # 0.875 is within 1 point of 0.88
    soka = found["soka_vs_lora"][4]
    # soka r=1 never reaches 0.40; soka r=2 does at step 10
    assert (soka["rank"], soka["step"], soka["ratio"]) == (2, 10, 1000 / 600)
    lines = sweep_lines(found)
    assert len(lines) == 5 + 1 + 1 and "lotr r=2 within 1 point with 200" in lines[5]


def test_characters_select_by_validation_loss():
    # LoRA lr 1e-2 now has the worse final validation accuracy (0 < 0.80) but still the
    # lower final validation loss (0.40 < 0.50): digits pick 1e-3, characters 1e-2
    digits, chars = _sweep("digits"), _sweep("chars")
    for ds in (digits, chars):
        ds["val_accuracy"][1, -1] = 0.0
    assert analyse(digits)["table"]["lora", 4]["lr"] == 1e-3
    assert analyse(chars)["table"]["lora", 4]["lr"] == 1e-2


def test_pretrain_table_compares_with_the_first_mode():
    ds = xr.Dataset(
        {
            "variant": ("run", ["full", "loqt_nq", "loqt"]),
            "val_loss": (("run", "eval_step"), [[3.0, 2.0], [3.0, 2.2], [3.0, 2.5]]),
            "weight_bytes": ("run", [100, 120, 40]),
            "optimizer_bytes": ("run", [100, 30, 30]),
        },
        coords={"eval_step": [0, 10]},
    )
    table = pretrain_table(ds)["table"]
    assert list(table) == ["full", "loqt_nq", "loqt"]
    assert table["full"] == {"val_loss": 2.0, "loss_ratio": 1.0, "bytes": 200, "bytes_ratio": 1.0}
    assert table["loqt"]["loss_ratio"] == 1.25 and table["loqt"]["bytes_ratio"] == 0.35
    assert table["loqt_nq"]["bytes"] == 150
    assert "0.35 x full" in pretrain_lines({"table": table})[2]
    assert pretrain_lines({}) == []


def test_label():
    assert (label("full", 0), label("lora", 4)) == ("full", "lora r=4")
