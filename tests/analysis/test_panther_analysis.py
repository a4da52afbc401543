"""Tables of PANTHER output files (analysis.panther) on a constructed data set."""

from __future__ import annotations

import numpy as np
import pytest

xr = pytest.importorskip("xarray")

from analysis.panther import analyse, group_lines, table_lines  # noqa: E402


def _dataset() -> xr.Dataset:
    """Five runs: (co2, 0) x 3 seeds, then (co2, 0.01) and (knowledge, 0) once each."""
    acc = np.array(
        [[0.9, 0.8, 0.7], [1.0, 0.9, 0.5], [0.8, 0.7, 0.6], [0.5, 0.4, 0.3], [0.6, 0.5, 0.2]]
    )
    runs = np.arange(5.0)
    return xr.Dataset(
        {
            "fill": ("run", ["co2", "co2", "co2", "co2", "knowledge"]),
            "w_ortho": ("run", [0.0, 0.0, 0.0, 0.01, 0.0]),
            "accuracy": (("run", "split"), acc),
            "baseline_accuracy": (("run", "split"), acc[::-1]),
            "rec_error": (("run", "split"), acc + 1.0),
            "rel_error": ("run", runs / 10),
            "overlap": (("run", "class"), np.outer(runs, [1.0, 0.0])),
            "overlap_best": (("run", "class"), np.outer(runs, [0.5, 0.5])),
            "min_factor": ("run", [0.0, -1.0, 2.0, 3.0, 4.0]),
            "ortho_offdiag": ("run", runs),
            "fit_seconds": ("run", 2 * runs),
        },
        coords={"split": ["train", "validation", "test"], "class": ["a", "b"]},
    )


def test_analyse_averages_each_setting_over_its_seeds():
    table = analyse(_dataset())
    assert list(table) == [("co2", 0.0), ("co2", 0.01), ("knowledge", 0.0)]
    row = table[("co2", 0.0)]
    assert row["runs"] == 3 and row["chance"] == 0.5
    assert row["train"] == pytest.approx(0.9) and row["val"] == pytest.approx(0.8)
    assert row["test"] == pytest.approx(0.6)
    assert row["test_std"] == pytest.approx(np.std([0.7, 0.5, 0.6]))
    assert row["baseline_test"] == pytest.approx(np.mean([0.2, 0.3, 0.6]))
    assert row["rel_error"] == pytest.approx(0.1) and row["rec_error_test"] == pytest.approx(1.6)
    assert row["overlap"] == pytest.approx(0.5) and row["overlap_best"] == pytest.approx(0.5)
    assert row["min_factor"] == -1.0  # the smallest, not the mean
    assert row["ortho_offdiag"] == pytest.approx(1.0) and row["fit_seconds"] == pytest.approx(2.0)
    single = table[("knowledge", 0.0)]
    assert single["runs"] == 1 and single["test"] == pytest.approx(0.2)
    assert single["test_std"] == 0.0 and single["overlap"] == pytest.approx(2.0)


def test_table_and_group_lines():
    table = analyse(_dataset())
    lines = table_lines(table)
    assert len(lines) == 3
    assert lines[1].startswith("  co2       w_ortho=0.01   test accuracy 0.300 +- 0.000")
    assert "chance 0.500" in lines[0] and "min factor -1.0e+00" in lines[0]
    meta = {
        "class_names": ("a", "b"),
        "group_names": [["P1", "P2"], ["P3"]],
        "gene_names": [["g1", "g2", "g3", "g4", "g5", "g6"], ["g7"]],
        "mode_names": ("patient", "pathway", "gene"),
    }
    assert group_lines({("co2", 0.01): meta}) == [
        "  groups of seed 0, co2 w_ortho=0.01:",
        "    a: P1, P2 | genes g1, g2, g3, g4, g5",
        "    b: P3 | genes g7",
    ]
