"""Tables and figures of TPA output files (analysis.tpa) on a constructed data set."""

from __future__ import annotations

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from analysis.tpa import plots, table, table_lines  # noqa: E402


def _dataset() -> xr.Dataset:
    curve = np.array([[4.0, 3.0, 2.0], [4.0, 3.5, 2.5], [4.0, 2.0, 1.5]])
    return xr.Dataset(
        {
            "kind": ("attention", ["mha", "mqa", "tpa"]),
            "n_heads": ("attention", [6, 7, 9]),
            "total_params": ("attention", [100, 101, 99]),
            "attention_params": ("attention", [40, 41, 39]),
            "val_loss": (("attention", "eval_step"), curve),
            "val_accuracy": (("attention", "eval_step"), curve / 10),
            "cache_bytes": ("attention", [384.0, 64.0, 96.0]),
            "cache_bytes_materialized": ("attention", [384.0, 64.0, 432.0]),
            "decode_tokens_per_s": ("attention", [10.0, 20.0, 30.0]),
            "decode_tokens_per_s_materialized": ("attention", [11.0, 21.0, 31.0]),
        },
        coords={"eval_step": [0, 2, 4]},
        attrs={"task": "chars"},
    )


def test_table_against_the_first_kind():
    rows = table(_dataset())
    assert list(rows) == ["mha", "mqa", "tpa"]
    assert rows["tpa"]["loss_gap"] == -0.5 and rows["mqa"]["loss_gap"] == 0.5
    assert rows["mha"]["cache_ratio"] == 1.0 and rows["mqa"]["cache_ratio"] == 6.0
    assert rows["tpa"]["cache_ratio"] == 4.0 and rows["tpa"]["val_accuracy"] == 0.15
    assert rows["tpa"]["n_heads"] == 9 and rows["tpa"]["tokens_per_s_materialized"] == 31.0
    lines = table_lines(rows, "mha")
    assert len(lines) == 3 and "(-0.5000 vs mha)" in lines[2] and "4.00x smaller" in lines[2]


def test_plots(tmp_path):
    paths = plots(_dataset(), tmp_path / "run")
    assert [p.name for p in paths] == ["run_tpa.png"] and paths[0].stat().st_size > 1000
