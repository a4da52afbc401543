"""End-to-end tests of ``python -m drivers.spin_chain``."""

from __future__ import annotations

import numpy as np
import pytest

import drivers.spin_chain as driver
from tensorsim.config import ConfigError

xr = pytest.importorskip("xarray")

from tensorsim.testing import load_dataset  # noqa: E402

SMALL = [
    "--set", "model.sites=6",
    "--set", "solver.t_end=0.2",
    "--set", "solver.h=0.02",
    "--set", "output.checkpoint_every=3",
]  # fmt: skip


def test_run_matches_exact_and_conserves(tmp_path):
    out = tmp_path / "run.nc"
    summary = driver.main([*SMALL, "--set", f"output.path={out}"])
    assert summary["steps"] == 10
    ds = load_dataset(out)
    assert ds.attrs["finished"] == 1 and ds.sizes["time"] == 11 and ds.sizes["site"] == 6
    assert float(ds["error_mz"][1:].max()) < 1e-5
    assert float(abs(ds["norm"] - 1).max()) < 1e-6
    assert float(abs(ds["energy"] - ds["energy"][0]).max()) < 1e-5
    ranks = ds["ranks"].values
    assert ranks.min() >= 2 and ranks.max() <= 40
    np.testing.assert_allclose(ds["mz"].mean("site"), ds["mz_mean"], atol=1e-14)


@pytest.mark.parametrize("integrator", ["augmented_bug", "bug"])
def test_other_integrators(tmp_path, integrator):
    out = tmp_path / f"{integrator}.nc"
    driver.main(
        [*SMALL, "--set", f"solver.integrator={integrator}", "--set", f"output.path={out}"]
    )
    ds = load_dataset(out)
    bound = 1e-5 if integrator == "augmented_bug" else 5e-2  # fixed rank 2 is too small
    assert float(ds["error_mz"][1:].max()) < bound


def test_restart_gives_the_uninterrupted_result(tmp_path):
    full, part = tmp_path / "full.nc", tmp_path / "part.nc"
    driver.main([*SMALL, "--set", f"output.path={full}"])
    driver.main([*SMALL, "--set", f"output.path={part}", "--max-steps", "4"])
    assert load_dataset(part).attrs["finished"] == 0
    driver.main(["--restart", str(part)])
    a, b = load_dataset(full), load_dataset(part)
    assert b.attrs["finished"] == 1 and b.sizes["time"] == a.sizes["time"]
    for name in ("mz", "norm", "energy", "ranks"):
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=0, atol=1e-13)
    with pytest.raises(ConfigError, match="--restart"):
        driver.main(["--restart", str(part), "--set", "solver.h=0.1"])


def test_nan_stops_and_keeps_the_checkpoint(tmp_path, break_step):
    break_step(driver.INTEGRATORS, "bug", 5, lambda t: t * np.nan)
    out = tmp_path / "nan.nc"
    with pytest.raises(FloatingPointError, match="step 5"):
        driver.main([*SMALL, "--set", "solver.integrator=bug", "--set", f"output.path={out}"])
    from tensorsim.io import open_run

    ds, checkpoint = open_run(out)
    assert ds.attrs["finished"] == 0
    assert checkpoint.attrs["step"] == 3  # the last good checkpoint
    assert np.all(np.isfinite(checkpoint.arrays["nodes/0"]))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("solver.max_rank=1", "smaller than solver.min_rank"),
        ("solver.h=0", "solver.h"),
        ("solver.t_end=-1", "solver.t_end"),
        ("solver.atol=-1e-8", "solver.atol"),
        ("model.model='ising'", "model.model"),
        ("solver.h=0.03", "not a multiple"),
        ("solver.integrator='tdvp'", "solver.integrator"),
    ],
)
def test_bad_input(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        driver.main([*SMALL, "--set", override, "--set", f"output.path={tmp_path / 'x.nc'}"])


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.nc"
    driver.main([*SMALL, "--set", f"output.path={out}"])
    driver.main(["plot", str(out)])
    for suffix in ("magnetization", "ranks", "drift"):
        assert (tmp_path / f"p_{suffix}.png").stat().st_size > 10_000
