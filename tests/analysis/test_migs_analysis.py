"""The comparison table of MIGS output files (analysis.migs) on a constructed data set."""

from __future__ import annotations

import pytest

xr = pytest.importorskip("xarray")

from analysis.migs import analyse, table_lines  # noqa: E402


def _dataset(models: list[str]) -> xr.Dataset:
    params = {"per_identity": 1000, "cp_r4": 100, "cp_r16": 1200, "tucker_r4x4x4": 200}
    psnr = {"per_identity": 20.0, "cp_r4": 21.0, "cp_r16": 25.0, "tucker_r4x4x4": 19.0}
    n = len(models)
    return xr.Dataset(
        {
            "model": ("run", models),
            "params": ("run", [params[m] for m in models]),
            "params_per_identity": ("run", [4] * n),
            "test_psnr": ("run", [psnr[m] for m in models]),
            "train_psnr": ("run", [30.0] * n),
            "unseen_psnr": ("run", [15.0] * n),
            "unseen_train_psnr": ("run", [25.0] * n),
            "train_seconds": ("run", [1.0] * n),
        }
    )


def test_analyse_compares_at_no_more_parameters():
    found = analyse(_dataset(["per_identity", "cp_r4", "cp_r16", "tucker_r4x4x4"]))
    assert found["beats_per_identity"] == ["cp_r4"]  # cp_r16 has more parameters
    assert found["table"]["cp_r16"]["test_psnr"] == 25.0
    lines = table_lines(found)
    assert len(lines) == 5 and lines[2].split()[:2] == ["cp_r16", "1200"]
    assert lines[-1].endswith("no more parameters: cp_r4")


def test_without_a_per_identity_run_nothing_is_compared():
    found = analyse(_dataset(["cp_r4", "cp_r16"]))
    assert found["beats_per_identity"] == []
    assert table_lines(found)[-1].endswith(": none")
    assert table_lines({}) == []
