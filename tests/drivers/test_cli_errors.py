"""The shell entry point of the drivers: one line per mistake, exit codes, Ctrl-C, files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import drivers.spin_chain as driver
from tensorsim.config import ConfigError

xr = pytest.importorskip("xarray")

from tensorsim.io import Writer, read_checkpoint  # noqa: E402
from tensorsim.testing import load_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--set", "model.sites=6", "--set", "time.t_end=0.2", "--set", "time.h=0.02"]


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING) ")


def _one_line(text: str) -> str:
    """The one line of ``text`` that is not a progress (INFO/WARNING) log line."""
    lines = [line for line in text.strip().splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "code", "match"),
    [
        (["--set", "model.sitez=4"], 2, "unknown config key 'model.sitez'"),
        (["--set", "model.sites=1"], 2, "model.sites"),
        (["--config", "no/such/file.toml"], 2, "no/such/file.toml"),
        (["--restart", "no/such/run.nc"], 2, "no such file: no/such/run.nc"),
        (["--restart", "x.nc", "--set", "time.h=0.1"], 2, "--restart continues"),
        (["plot", "no/such/run.nc"], 2, "no such file"),
        (["ground", "--set", "model.initial=neel"], 2, "model.initial"),
    ],
)
def test_a_mistake_is_one_line_with_exit_status_2(argv, code, match, capsys, tmp_path):
    if "x.nc" in argv:
        Writer(tmp_path / "x.nc").close()
        argv = [str(tmp_path / "x.nc") if a == "x.nc" else a for a in argv]
    assert driver.cli(argv) == code
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("python -m drivers.spin_chain: error: ")
    assert match in line


def test_debug_shows_the_exception(capsys):
    with pytest.raises(ConfigError, match="sitez"):
        driver.cli(["--set", "model.sitez=4", "--debug"])


def test_bad_max_steps_and_plot_help(capsys):
    with pytest.raises(SystemExit) as stop:
        driver.cli(["--max-steps", "0"])
    assert stop.value.code == 2
    assert "--max-steps: expected an integer >= 1, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        driver.cli(["plot", "--help"])
    assert stop.value.code == 0
    assert "usage: python -m drivers.spin_chain plot FILE" in capsys.readouterr().out


def test_files_name_their_driver_and_others_are_refused(tmp_path, capsys):
    out = tmp_path / "run.nc"
    assert driver.cli([*SMALL, "--set", f"output.path={out}"]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and str(out) in captured.out  # the summary, for scripts
    ds = load_dataset(out)
    assert ds.attrs["driver"] == "drivers.spin_chain"
    assert ds["rejected"].dtype == np.int64 and int(ds["rejected"][0]) == 0  # no fill value
    other = tmp_path / "compress.nc"
    Writer(other, attrs={"driver": "drivers.compress"}).close()
    for argv in (["--restart", str(other)], ["plot", str(other)]):
        assert driver.cli(argv) == 2
        line = _one_line(capsys.readouterr().err)
        assert "was written by drivers.compress, not by drivers.spin_chain" in line
    junk = tmp_path / "junk.nc"
    junk.write_text("not HDF5")
    assert driver.cli(["plot", str(junk)]) == 2
    assert "is not an output file of python -m drivers.spin_chain" in capsys.readouterr().err


def test_a_failure_of_the_run_is_one_line_with_status_1(tmp_path, capsys, break_step):
    from solvers.bug import INTEGRATORS

    break_step(INTEGRATORS, "bug", 3, lambda t: t * np.nan)
    out = tmp_path / "nan.nc"
    argv = [*SMALL, "--set", "solver.integrator=bug", "--set", f"output.path={out}"]
    assert driver.cli(argv) == 1
    line = _one_line(capsys.readouterr().err)
    assert "error: FloatingPointError: step 3" in line and "--debug" in line


@pytest.mark.skipif(sys.platform == "win32", reason="signals are POSIX")
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)]
)
def test_interrupt_checkpoints_and_restart_continues(tmp_path, signum):
    """Ctrl-C (or SIGTERM) in the middle of a run: exit 130 with the --restart command, the
    last completed step checkpointed; the restart ends with the uninterrupted run's data."""
    args = ["--set", "model.sites=6", "--set", "time.t_end=0.6", "--set", "time.h=0.02",
            "--set", "output.checkpoint_every=1000", "--set", "output.log_every=1"]  # fmt: skip
    part = tmp_path / "part.nc"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "drivers.spin_chain", *args, "--set", f"output.path={part}"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        for line in proc.stderr:
            if "step 5/" in line:
                proc.send_signal(signum)
                break
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m drivers.spin_chain: interrupted")
    assert f"--restart {part}" in last
    step = read_checkpoint(part).attrs["step"]
    assert 5 <= step < 30  # not the step-0 checkpoint: the one taken on the signal

    full = tmp_path / "full.nc"
    driver.main([*args, "--set", f"output.path={full}"])
    driver.main(["--restart", str(part)])
    a, b = load_dataset(full), load_dataset(part)
    assert b.attrs["finished"] == 1 and b.sizes["time"] == a.sizes["time"]
    for name in ("mz", "zz", "norm", "energy"):
        np.testing.assert_array_equal(b[name].values, a[name].values)


def test_an_unwritable_output_fails_before_any_compute(tmp_path, capsys, monkeypatch):
    """The output directory is checked first: no case, no time step is computed."""
    import drivers.compress as compress

    def computed(*args, **kwargs):
        raise AssertionError("computed before the output path was checked")

    monkeypatch.setattr(driver.SpinChain, "build", computed)
    monkeypatch.setattr(compress.CompressSweep, "prepare", computed)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    bad = blocker / "run.nc"  # its directory cannot be created: a file is in the way
    for cli, argv in (
        (driver.cli, [*SMALL, "--set", f"output.path={bad}"]),
        (compress.cli, ["--set", f"output.path={bad}"]),
    ):
        assert cli(argv) == 2
        line = _one_line(capsys.readouterr().err)
        assert f"output path {bad}: cannot create {blocker}" in line


def test_a_finished_run_is_not_replaced_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run.nc"
    argv = [*SMALL, "--set", f"output.path={out}"]
    assert driver.cli(argv) == 0
    created = load_dataset(out).attrs["created"]
    assert driver.cli(argv) == 2
    assert "holds a finished run: pass --overwrite" in _one_line(capsys.readouterr().err)
    assert load_dataset(out).attrs["created"] == created
    assert driver.cli([*argv, "--overwrite"]) == 0
    capsys.readouterr()
    assert driver.cli(["--restart", str(out)]) == 0
    assert f"{out} holds a finished run: nothing to do" in capsys.readouterr().out


COMPRESS = ["--set", "input.shape=[14,12,10]", "--set", "cases.tolerances=[1e-1,1e-3]",
            "--set", "cases.cp_ranks=[2,5]"]  # fmt: skip


def test_a_sweep_keeps_finished_cases_and_restarts(tmp_path):
    """--max-steps stops a sweep after some cases (kept in its journal, no output file yet);
    --restart computes the rest: the file of an uninterrupted run (timings aside)."""
    import drivers.compress as compress
    from drivers._journal import journal_path
    from tensorsim.testing import differing_variables

    full, part = tmp_path / "full.nc", tmp_path / "part.nc"
    compress.main([*COMPRESS, "--set", f"output.path={full}"])
    summary = compress.main([*COMPRESS, "--set", f"output.path={part}", "--max-steps", "3"])
    assert not summary["finished"] and not part.exists() and journal_path(part).is_dir()
    assert compress.main(["--restart", str(part), "--max-steps", "1"])["finished"] is False
    assert compress.main(["--restart", str(part)])["finished"]
    assert not journal_path(part).exists()
    assert differing_variables(full, part) == []
    with pytest.raises(FileNotFoundError, match="no journal part.nc.cases"):
        compress.main(["--restart", str(part)])


_SWEEP_KILL = """
import sys, time
import drivers.compress as compress

original = compress.CompressSweep.run_case

def slow(self, run, case):
    time.sleep(0.3)  # time for the signal to land between and inside cases
    return original(self, run, case)

compress.CompressSweep.run_case = slow
print("ready", flush=True)
compress.main(sys.argv[2:] + ["--set", "output.path=" + sys.argv[1]])
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_in_a_sweep_loses_only_the_case_in_flight(tmp_path, kill_after_ready):
    import drivers.compress as compress
    from drivers._journal import journal_path
    from tensorsim.testing import differing_variables

    full = tmp_path / "full.nc"
    compress.main([*COMPRESS, "--set", f"output.path={full}"])
    for trial, delay in enumerate((1.2, 2.0)):
        part = tmp_path / f"killed{trial}.nc"
        kill_after_ready(_SWEEP_KILL, part, delay, extra=COMPRESS)
        assert not part.exists() and journal_path(part).is_dir()
        compress.main(["--restart", str(part)])
        assert differing_variables(full, part) == []
