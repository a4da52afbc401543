"""Comparison of radiance-field runs (analysis.fields) on a constructed table."""

from __future__ import annotations

from analysis.fields import compare, table_lines


def _rows() -> list[dict]:
    return [
        {"model": "cp", "rank": 8, "field_params": 100, "test_psnr": 20.0},
        {"model": "vm", "rank": 2, "field_params": 1000, "test_psnr": 22.0},
        {"model": "vm", "rank": 4, "field_params": 3000, "test_psnr": 24.0},
        {"model": "strivec", "rank": 2, "field_params": 800, "test_psnr": 23.0},
        {"model": "strivec", "rank": 4, "field_params": 5000, "test_psnr": 23.5},
    ]


def test_compare_finds_the_pareto_front_and_strivec_wins():
    found = compare(_rows())
    assert found["strivec_beats_vm"] == [(2, 2)]
    assert found["frontier"] == [("cp", 8), ("strivec", 2), ("vm", 4)]
    assert found["best"]["strivec"]["rank"] == 4


def test_table_lines_give_one_line_per_run_then_the_findings():
    rows = [r | {"test_psnr_fg": r["test_psnr"] - 1, "train_seconds": 2.5} for r in _rows()]
    lines = table_lines(rows, compare(rows))
    assert len(lines) == 7
    assert lines[3].split()[:4] == ["strivec", "r=2", "800", "params"]
    assert "23.00 dB" in lines[3] and "22.00 dB" in lines[3]
    assert lines[-2].endswith("[('cp', 8), ('strivec', 2), ('vm', 4)]")
    assert lines[-1].endswith("[(2, 2)]")
