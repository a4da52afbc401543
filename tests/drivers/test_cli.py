"""The drivers' command line: parser, help epilog, configuration from arguments, Driver."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from drivers._base import Experiment, OutputParams
from drivers._cli import Driver, build_parser
from tensorsim.config import ConfigError, Params, describe_options, param


@dataclass(frozen=True)
class SolverParams(Params):
    """Time integration."""

    h: float = param(0.01, "time step", gt=0)
    steps: int = param(10, "number of steps", ge=1, le=1000)


@dataclass(frozen=True)
class RunConfig(Params):
    """A demo configuration."""

    solver: SolverParams = param(SolverParams(h=0.05), "time integration")
    name: str = param("run", "run name")
    output: OutputParams = param(OutputParams("runs/demo.nc"), "output file")


class Demo(Experiment):
    """Runs nothing: returns what it was given."""

    config = RunConfig
    restartable = True
    help = "the demo"

    def run(self, cfg, comm, *, restart=None, max_steps=None):
        return {"cfg": cfg, "restart": restart, "max_steps": max_steps, "path": "x"}


def test_help_epilog_lists_every_option():
    parser = build_parser(RunConfig, prog="python -m drivers.demo", description="Demo driver.")
    text = parser.format_help()
    assert "--config PATH" in text and "--set KEY=VALUE" in text
    for key, default, doc in describe_options(RunConfig):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{key} = "))
        assert default in line and doc in line
    assert "solver.steps = 10" in text and ">= 1 and <= 1000" in text


def test_parser_and_the_configuration_from_its_arguments(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[solver]\nsteps = 4\n")
    parser = build_parser(RunConfig, prog="demo", description="Demo.")
    parser.add_argument("--restart", action="store_true")
    ns = parser.parse_args(
        ["--config", str(path), "--set", "solver.h=0.5", "--set", "name=x", "--restart"]
    )
    assert ns.restart is True
    cfg = Demo().load(ns.config, ns.set)  # what Driver does with the parsed arguments
    assert (cfg.solver.steps, cfg.solver.h, cfg.name) == (4, 0.5, "x")
    empty = parser.parse_args([])
    assert Demo().load(empty.config, empty.set) == RunConfig() == Demo().load()


def test_driver_runs_the_experiment_with_overrides():
    summary = Driver("demo", "Demo driver.\n\nMore.", Demo()).main(
        ["--set", "solver.steps=3", "--max-steps", "2"]
    )
    assert summary["cfg"].solver.steps == 3 and summary["max_steps"] == 2
    assert summary["restart"] is None


def test_driver_with_commands_and_usage(capsys):
    driver = Driver("demo", "Demo driver.", {"go": Demo()})
    assert driver.main(["go", "--set", "name=y"])["cfg"].name == "y"
    with pytest.raises(SystemExit) as info:
        driver.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: python -m drivers.demo {go,plot}" in out and "the demo" in out
    with pytest.raises(SystemExit, match="unknown command 'stop'"):
        driver.main(["stop"])
    with pytest.raises(ConfigError, match="did you mean 'solver.steps'"):
        driver.main(["go", "--set", "solver.step=3"])


def test_non_restartable_experiment_refuses_restart_options(capsys):
    class Once(Demo):
        restartable = False

    with pytest.raises(SystemExit) as info:
        Driver("demo", "Demo.", Once()).main(["--restart", "x.nc"])
    assert info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_driver_with_a_default_command(capsys):
    class Other(Demo):
        help = "the other one"

    driver = Driver("demo", "Demo driver.", {"go": Demo(), "other": Other()}, default="go")
    assert driver.main(["--set", "name=z"])["cfg"].name == "z"  # no command: the default
    assert driver.main(["other", "--set", "name=w"])["cfg"].name == "w"
    with pytest.raises(SystemExit) as info:
        driver.main(["--help"])
    assert info.value.code == 0
    assert "Other commands: other" in capsys.readouterr().out
    with pytest.raises(ValueError, match="default: 'stop' is not one of"):
        Driver("demo", "Demo.", {"go": Demo()}, default="stop")
    with pytest.raises(ValueError, match="default: only a driver with several experiments"):
        Driver("demo", "Demo.", Demo(), default="go")
