"""End-to-end tests of ``python -m drivers.spin_chain``."""

from __future__ import annotations

import numpy as np
import pytest

import drivers.spin_chain as driver
from problems.spin_chain import SpinChainParams, build_tree, exact_ground_state, hamiltonian
from solvers.bug import INTEGRATORS
from tensorsim.config import ConfigError

xr = pytest.importorskip("xarray")

from tensorsim.io import read_checkpoint  # noqa: E402
from tensorsim.testing import load_dataset  # noqa: E402
from tensorsim.ttn import TTN, expectation  # noqa: E402
from tensorsim.ttn.operator import to_ttno  # noqa: E402

SMALL = [
    "--set", "model.sites=6",
    "--set", "time.t_end=0.2",
    "--set", "time.h=0.02",
    "--set", "output.checkpoint_every=3",
]  # fmt: skip


def test_run_matches_exact_and_conserves(tmp_path):
    out = tmp_path / "run.nc"
    summary = driver.main([*SMALL, "--set", f"output.path={out}"])
    assert summary["steps"] == 10
    ds = load_dataset(out)
    assert ds.attrs["finished"] == 1 and ds.sizes["time"] == 11 and ds.sizes["site"] == 6
    assert float(ds["error_mz"][1:].max()) < 1e-5
    # per site and per bond, against the exact values the file carries
    assert ds.sizes["bond"] == 5
    site_error = abs(ds["mz"] - ds["mz_exact"]).max("site")
    np.testing.assert_allclose(ds["error_mz_site"], site_error, rtol=0, atol=1e-15)
    assert float(ds["error_mz_site"][1:].max()) < 1e-5
    assert float(ds["error_zz"][1:].max()) < 1e-5
    assert float(abs(ds["zz_exact"] - ds["zz"]).max()) < 1e-5
    assert float(abs(ds["mz_exact"].isel(time=-1) - ds["mz_exact"].isel(time=0)).max()) > 1e-2
    assert np.isfinite(ds["normal"][1:]).all() and float(ds["normal"][1:].max()) < 1e-3
    assert float(abs(ds["norm"] - 1).max()) < 1e-6
    assert float(abs(ds["energy"] - ds["energy"][0]).max()) < 1e-5
    ranks = ds["ranks"].values
    assert ranks.min() >= 2 and ranks.max() <= 40
    np.testing.assert_allclose(ds["mz"].mean("site"), ds["mz_mean"], atol=1e-14)


@pytest.mark.parametrize("sites", [8, pytest.param(12, marks=pytest.mark.slow)])
def test_entropies_and_correlations_against_the_exact_state(tmp_path, sites):
    """XXZ Néel quench, two-site TDVP: every edge's entropy and the full ZZ and XX
    matrices against the exact state vector (the file carries the errors)."""
    out = tmp_path / "corr.nc"
    driver.main(
        [
            "--set", f"model.sites={sites}",
            "--set", "model.model=xxz",
            "--set", "model.initial=neel",
            "--set", "model.tree=caterpillar",
            "--set", "solver.integrator=tdvp2",
            "--set", "time.t_end=0.5",
            "--set", "time.h=0.02",
            "--set", "output.every=5",
            "--set", "output.correlations=['zz', 'xx']",
            "--set", f"output.path={out}",
        ]
    )  # fmt: skip
    ds = load_dataset(out)
    assert ds["corr_zz"].dims == ("time", "site_i", "site_j") and ds.sizes["site_i"] == sites
    assert ds["entropy"].dims == ("time", "edge")
    # the state entangles (the check is not on a product state) ...
    assert float(ds["entropy"].isel(time=-1).max()) > 0.3
    assert float(abs(ds["corr_xx"].isel(time=-1) - np.eye(sites)).max()) > 0.05
    # ... and matches the exact one to the integrator's accuracy
    assert float(ds["error_entropy"].max()) < 1e-6
    assert float(ds["error_corr_zz"].max()) < 1e-6
    assert float(ds["error_corr_xx"].max()) < 1e-6
    assert float(ds["error_mz_site"].max()) < 1e-6
    zz = ds["corr_zz"].values
    np.testing.assert_allclose(zz, zz.transpose(0, 2, 1), atol=1e-12)


@pytest.mark.parametrize("integrator", ["augmented_bug", "bug"])
def test_other_integrators(tmp_path, integrator):
    out = tmp_path / f"{integrator}.nc"
    driver.main(
        [*SMALL, "--set", f"solver.integrator={integrator}", "--set", f"output.path={out}"]
    )
    ds = load_dataset(out)
    bound = 1e-5 if integrator == "augmented_bug" else 5e-2  # fixed rank 2 is too small
    assert float(ds["error_mz"][1:].max()) < bound
    assert float(ds["error_mz_site"][1:].max()) < 2 * bound


def test_restart_gives_the_uninterrupted_result(tmp_path):
    """Also the bulk series (the correlation matrices, in set files) continue exactly."""
    full, part = tmp_path / "full.nc", tmp_path / "part.nc"
    corr = ["--set", "output.correlations=['zz']"]
    driver.main([*SMALL, *corr, "--set", f"output.path={full}"])
    driver.main([*SMALL, *corr, "--set", f"output.path={part}", "--max-steps", "4"])
    assert load_dataset(part).attrs["finished"] == 0
    driver.main(["--restart", str(part)])
    a, b = load_dataset(full), load_dataset(part)
    assert b.attrs["finished"] == 1 and b.sizes["time"] == a.sizes["time"]
    for name in ("mz", "zz", "norm", "energy", "ranks", "normal", "corr_zz"):
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=0, atol=1e-13)
    with pytest.raises(ConfigError, match="--restart"):
        driver.main(["--restart", str(part), "--set", "time.h=0.1"])


def test_nan_stops_and_keeps_the_checkpoint(tmp_path, break_step):
    break_step(INTEGRATORS, "bug", 5, lambda t: t * np.nan)
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
        ("solver.max_rank=1", "in 'solver'.*'max_rank': 1 is smaller than min_rank"),
        ("time.h=0", "time.h"),
        ("time.t_end=-1", "time.t_end"),
        ("time.h=none", "'time.h': not set"),
        ("solver.atol=-1e-8", "solver.atol"),
        ("model.model='ising'", "model.model"),
        ("time.h=0.03", "'time.h': t_end = 0.2 is not a multiple of h = 0.03"),
        ("solver.integrator='tebd'", "solver.integrator"),
        ("solver.conserve=true", "solver.conserve.*no conserved"),
        ("time.max_growth=0", "time.max_growth"),
    ],
)
def test_bad_input(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        driver.main([*SMALL, "--set", override, "--set", f"output.path={tmp_path / 'x.nc'}"])


def test_rejection_of_another_integrator_is_refused(tmp_path):
    args = ["--set", "solver.integrator=augmented_bug", "--set", "solver.rejection=paper"]
    with pytest.raises(ConfigError, match="'rejection': 'paper' applies to integrator"):
        driver.main([*SMALL, *args, "--set", f"output.path={tmp_path / 'x.nc'}"])
    assert not (tmp_path / "x.nc").exists()


def test_substep_reaches_the_integrator(tmp_path):
    runs = {}
    for substep in ("krylov", "rk4"):
        out = tmp_path / f"{substep}.nc"
        driver.main([*SMALL, "--set", f"solver.substep={substep}", "--set", f"output.path={out}"])
        runs[substep] = load_dataset(out)
        # both close to exact (measured 1.2e-6 with Krylov, 4.4e-7 with RK4)
        assert float(runs[substep]["error_mz"][1:].max()) < 1e-5
        assert f'substep = "{substep}"' in runs[substep].attrs["config"]
    krylov, rk4 = runs["krylov"]["mz"].values, runs["rk4"]["mz"].values
    # RK4's local error, far above round-off (measured 1.3e-6)
    assert np.abs(krylov - rk4).max() > 1e-8


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.nc"
    driver.main([*SMALL, "--set", "output.correlations=['zz']", "--set", f"output.path={out}"])
    driver.main(["plot", str(out)])
    for suffix in ("magnetization", "ranks", "drift", "entanglement"):
        assert (tmp_path / f"p_{suffix}.png").stat().st_size > 10_000
    ground = tmp_path / "g.nc"
    driver.main(["ground", "--set", "model.sites=6", "--set", f"output.path={ground}"])
    driver.main(["plot", str(ground)])
    for suffix in ("convergence", "entanglement"):
        assert (tmp_path / f"g_{suffix}.png").stat().st_size > 10_000


@pytest.mark.mpi
def test_two_ranks_equal_serial(tmp_path, two_ranks):
    serial, parallel = tmp_path / "serial.nc", tmp_path / "mpi.nc"
    driver.main([*SMALL, "--set", f"output.path={serial}"])
    two_ranks(["-m", "drivers.spin_chain", *SMALL, "--set", f"output.path={parallel}"])
    a, b = load_dataset(serial), load_dataset(parallel)
    assert b.attrs["mpi_size"] == 2 and b.attrs["finished"] == 1
    assert b.sizes["time"] == a.sizes["time"]
    for name in a.data_vars:
        if not name.startswith("wall_"):
            np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=name)


def test_ground_command_against_exact_diagonalization(tmp_path):
    """``ground``: DMRG per sweep, the last record the result, the state in the file."""
    out = tmp_path / "ground.nc"
    summary = driver.main(
        [
            "ground",
            "--set", "model.model=xxz",
            "--set", "model.sites=10",
            "--set", "model.tree=balanced_binary",
            "--set", "output.correlations=['zz', 'xx']",
            "--set", f"output.path={out}",
        ]
    )  # fmt: skip
    assert summary["converged"]
    ds = load_dataset(out)
    assert ds.attrs["command"] == "ground" and ds.attrs["finished"] == 1
    params = SpinChainParams(model="xxz", sites=10)
    energy, _ = exact_ground_state(params)
    assert abs(float(ds["energy"][-1]) - energy) < 1e-10 * abs(energy)
    assert float(ds["error_energy"][-1]) < 1e-10
    assert float(ds["error_corr_zz"][-1]) < 1e-6 and float(ds["error_corr_xx"][-1]) < 1e-6
    assert float(ds["variance"][-1]) < 1e-8
    assert float(ds["entropy"][-1].max()) > 0.5  # an entangled ground state
    # the stored state is the ground state
    checkpoint = read_checkpoint(out)
    tree = build_tree(params)
    state = TTN(tree, tuple(checkpoint.arrays[f"nodes/{n}"] for n in range(tree.n_nodes)))
    op = to_ttno(hamiltonian(params), tree)
    assert expectation(state, op).real == pytest.approx(energy, rel=1e-10)


def test_j1j2_model_in_both_commands(tmp_path):
    """``model.model=j1j2``: the DMRG ground state and a Néel quench, each against exact
    diagonalization (the errors the files carry)."""
    common = ["--set", "model.model=j1j2", "--set", "model.sites=6", "--set", "model.j2=0.3"]
    ground = tmp_path / "ground.nc"
    summary = driver.main(["ground", *common, "--set", f"output.path={ground}"])
    assert summary["converged"]
    ds = load_dataset(ground)
    energy, _ = exact_ground_state(SpinChainParams(model="j1j2", sites=6, j2=0.3))
    assert abs(float(ds["energy"][-1]) - energy) < 1e-10 * abs(energy)
    assert float(ds["error_energy"][-1]) < 1e-10
    out = tmp_path / "quench.nc"
    driver.main(
        [*common, "--set", "model.initial=neel", "--set", "time.t_end=0.2",
         "--set", "time.h=0.02", "--set", f"output.path={out}"]
    )  # fmt: skip
    ds = load_dataset(out)
    assert float(ds["error_mz_site"][1:].max()) < 1e-5
    assert float(ds["error_zz"][1:].max()) < 1e-5
    assert float(abs(ds["mz_exact"].isel(time=-1) - ds["mz_exact"].isel(time=0)).max()) > 1e-2
    with pytest.raises(ConfigError, match="'j2': a coupling of model 'j1j2'"):
        driver.main(["--set", "model.model=xxz", "--set", "model.j2=0.3"])


@pytest.mark.parametrize("sites", [8, pytest.param(12, marks=pytest.mark.slow)])
def test_quench_from_a_dmrg_ground_state(tmp_path, sites):
    """Ground state of the TFIM at g = 1.5 (``ground``), evolved at g = 0.5
    (``model.initial_state``): per site against exact dynamics from the same vector."""
    ground = tmp_path / "ground.nc"
    common = ["--set", "model.model=tfim", "--set", f"model.sites={sites}"]
    common += ["--set", "model.tree=caterpillar"]
    driver.main(["ground", *common, "--set", "model.g=1.5", "--set", f"output.path={ground}"])
    out = tmp_path / "quench.nc"
    driver.main(
        [
            *common,
            "--set", "model.g=0.5",
            "--set", f"model.initial_state={ground}",
            "--set", "solver.integrator=tdvp2",
            "--set", "time.h=0.02",
            "--set", "time.t_end=0.4",
            "--set", "output.every=5",
            "--set", f"output.path={out}",
        ]
    )  # fmt: skip
    ds = load_dataset(out)
    assert float(ds["error_mz_site"].max()) < 1e-4
    assert float(ds["error_zz"].max()) < 1e-4
    # the quench moves every site's <Z_k>: the check is on observables that change
    moved = abs(ds["mz_exact"].isel(time=-1) - ds["mz_exact"].isel(time=0)).min()
    assert float(moved) > 1e-2
    with pytest.raises(ConfigError, match="'initial' and 'initial_state'"):
        driver.main(
            [*common, "--set", "model.initial=neel", "--set", f"model.initial_state={ground}"]
        )
    with pytest.raises(ValueError, match="does not fit this model's tree"):
        driver.main(
            [
                "--set", "model.model=tfim",
                "--set", "model.sites=10",
                "--set", f"model.initial_state={ground}",
                "--set", f"output.path={tmp_path / 'bad.nc'}",
            ]
        )  # fmt: skip
