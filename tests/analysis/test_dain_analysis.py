"""Tables, fits and figures of DAIN output files (analysis.dain) on constructed data sets."""

from __future__ import annotations

import math

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from analysis.dain import (  # noqa: E402
    analyse,
    fit_exponent,
    paired,
    plots,
    scaling_lines,
    summary_lines,
)


def _sweep() -> xr.Dataset:
    """Model m, seeds 0..2, methods none/dain/uniform; seed 2 of uniform is missing."""
    rows = [
        ("m", "none", 0, 1.0), ("m", "dain", 0, 0.7), ("m", "uniform", 0, 0.9),
        ("m", "none", 1, 2.0), ("m", "dain", 1, 1.5), ("m", "uniform", 1, 1.4),
        ("m", "none", 2, 3.0), ("m", "dain", 2, 2.0),
    ]  # fmt: skip
    rmse = np.array([r[3] for r in rows])
    return xr.Dataset(
        {
            "model": ("run", [r[0] for r in rows]),
            "augmentation": ("run", [r[1] for r in rows]),
            "seed": ("run", [r[2] for r in rows]),
            "test_rmse": ("run", rmse),
            "test_mae": ("run", rmse / 2),
            "train_seconds": ("run", np.arange(8.0)),
            "influence_seconds": ("run", np.zeros(8)),
            "augment_seconds": ("run", np.ones(8)),
        },
        attrs={"command": "sweep", "preset": "synthetic", "ratio": 0.5},
    )


def test_fit_exponent_recovers_a_power_law():
    cells = [1e4, 1e5, 1e6]
    assert math.isclose(fit_exponent(cells, [2 * c**1.1 for c in cells]), 1.1)
    # non-positive times are left out; fewer than two points give NaN
    assert math.isclose(fit_exponent([*cells, 1e7], [2 * c**1.1 for c in cells] + [0.0]), 1.1)
    assert math.isnan(fit_exponent([1e4, 1e5], [1.0, 0.0]))


def test_paired_differences_and_their_standard_error():
    out = paired([1.0, 2.0, 4.0], [2.0, 2.0, 1.0])  # differences -1, 0, 3
    assert out["mean"] == pytest.approx(2 / 3) and out["n"] == 3 and out["wins"] == 1
    assert out["se"] == pytest.approx(
        math.sqrt(((5 / 3) ** 2 + (2 / 3) ** 2 + (7 / 3) ** 2) / 2 / 3)
    )
    assert math.isnan(paired([1.0], [0.5])["se"])


def test_analyse_averages_over_seeds_and_pairs_common_seeds():
    found = analyse(_sweep())
    assert list(found["table"]) == [("m", "none"), ("m", "dain"), ("m", "uniform")]
    none = found["table"][("m", "none")]
    assert none["seeds"] == 3 and none["test_rmse"] == pytest.approx(2.0)
    assert none["test_rmse_se"] == pytest.approx(1 / math.sqrt(3))
    assert none["test_mae"] == pytest.approx(1.0) and none["train_seconds"] == pytest.approx(3.0)
    assert set(found["paired"]) == {("m", "none"), ("m", "uniform")}
    vs_none = found["paired"][("m", "none")]["test_rmse"]  # -0.3, -0.5, -1.0
    assert vs_none["mean"] == pytest.approx(-0.6) and vs_none["wins"] == 3
    vs_uniform = found["paired"][("m", "uniform")]["test_rmse"]  # seeds 0, 1: -0.2, +0.1
    assert vs_uniform["n"] == 2 and vs_uniform["mean"] == pytest.approx(-0.05)
    assert found["paired"][("m", "uniform")]["test_mae"]["mean"] == pytest.approx(-0.025)


def test_text_lines():
    lines = summary_lines(analyse(_sweep()))
    assert len(lines) == 5
    assert lines[0].split() == [
        "m", "none", "test", "RMSE", "2.0000", "+-", "0.5774", "MAE", "1.0000", "+-", "0.2887",
        "(3", "seeds,", "train", "3.0", "s)",
    ]  # fmt: skip
    assert "dain - uniform" in lines[4] and "(DAIN lower in 1/2)" in lines[4]
    rows = [{"cells": 1000, "seconds": 2.0, "train_seconds": 1.0, "influence_seconds": 0.25,
             "augment_seconds": 0.5, "retrain_seconds": 0.125}]  # fmt: skip
    exponents = {"seconds": 1.0, "train_seconds": 0.5, "influence_seconds": 2.0,
                 "augment_seconds": 0.25}  # fmt: skip
    assert scaling_lines(rows, exponents) == [
        "       1000 cells: 2.00 s (train 1.00, influence 0.25, sampling 0.50, retrain 0.12)",
        "  time ~ cells^1.000 (train 0.500, influence 2.000, sampling 0.250)",
    ]


def test_plots_pick_the_figure_of_the_command(tmp_path):
    pytest.importorskip("matplotlib")
    assert [p.name for p in plots(_sweep(), tmp_path / "s")] == ["s_rmse.png"]
    cells = np.array([1e3, 1e4])
    scaling = xr.Dataset(
        {k: ("size", cells / 1e4) for k in
         ("seconds", "train_seconds", "influence_seconds", "augment_seconds")},
        coords={"size": cells}, attrs={"command": "scaling", "exponent": 1.0},
    )  # fmt: skip
    assert [p.name for p in plots(scaling, tmp_path / "t")] == ["t_scaling.png"]
    assert (tmp_path / "t_scaling.png").stat().st_size > 0
