"""The command line of every driver: the parser and the one generic ``main``.

``python -m drivers.NAME [COMMAND] [--config F] [--set K=V ...] [--restart FILE]
[--max-steps N] [--debug]`` runs (or continues) an experiment of :mod:`drivers._base`;
``python -m drivers.NAME plot FILE`` writes the plots of an output file. A restart reads the
configuration stored in the file on rank 0 and broadcasts it; errors on any rank abort every
rank (:func:`tensorsim.parallel.abort_on_error`). :func:`build_parser` turns a
:class:`tensorsim.config.Params` class into ``--config`` / ``--set`` options with a
``--help`` that lists every option, its default, doc and constraints.

From the shell (:meth:`Driver.cli`) a mistake is one line on stderr, ``PROG: error: what``:
exit status 2 for a configuration or usage mistake or a missing file, 1 for a failure of
the run; ``--debug`` shows the full traceback instead. Ctrl-C or ``SIGTERM`` stops a time
evolution after a checkpoint of its last step, prints the ``--restart`` command and exits
with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from drivers._layout import OVERWRITE, RUNNING_DRIVER, root_attributes
from drivers._signals import graceful_stop
from tensorsim.config import ConfigError, Params, config_from_toml, describe_options
from tensorsim.log import setup_logging
from tensorsim.parallel import abort_on_error, get_comm

if TYPE_CHECKING:
    from drivers._base import Experiment

__all__ = ["Driver", "build_parser"]

#: Exit status of a configuration or usage mistake (as argparse's own).
USAGE_ERROR = 2

#: Exit status of an interrupted run (128 + SIGINT).
INTERRUPTED = 130

C = TypeVar("C", bound=Params)


def _epilog(cls: type[Params]) -> str:
    rows = [(f"{key} = {default}", doc) for key, default, doc in describe_options(cls)]
    width = max((len(left) for left, _ in rows), default=0)
    lines = ["configuration options (set in the --config file or with --set KEY=VALUE):"]
    lines += [f"  {left.ljust(width)}   {doc}".rstrip() for left, doc in rows]
    return "\n".join(lines)


def build_parser(cls: type[Params], *, prog: str, description: str) -> argparse.ArgumentParser:
    """Make a command-line parser for a driver configured by ``cls``.

    Parameters
    ----------
    cls
        The top-level :class:`Params` dataclass.
    prog
        Program name shown in the usage line (e.g. ``"python -m drivers.compress"``).
    description
        Text shown above the arguments.

    Returns
    -------
    argparse.ArgumentParser
        A parser with ``--config PATH`` and a repeatable ``--set KEY=VALUE``, whose help
        epilog lists every option with its default, doc and constraints. Drivers may add
        their own arguments to it.
    """
    key, default, _ = next(
        (o for o in describe_options(cls) if o[0] != "preset"), ("name", "value", "")
    )
    example = f"{key}={default}"
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=_epilog(cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH", default=None, help="TOML configuration file")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help=f"override one option, e.g. --set {example} (repeatable)",
    )
    return parser


class Driver:
    """The command line of one driver: the one generic ``main`` of every experiment.

    ``python -m drivers.NAME [--config F] [--set K=V ...] [--restart FILE] [--max-steps N]``
    runs (or continues) the experiment; with several experiments the first argument names
    one (``python -m drivers.NAME COMMAND [options]``); ``python -m drivers.NAME plot FILE``
    writes the plots of an output file (a file of a driver with several experiments names
    its experiment in the attribute ``command``). ``--restart`` and ``--max-steps`` are
    offered to restartable experiments only.

    Parameters
    ----------
    name
        The module name under ``drivers`` (``"tubal"``).
    doc
        The module docstring; its first line is the description shown by ``--help``.
    experiments
        The experiment, or command name -> experiment.
    default
        With several experiments: the command run when the first argument names none
        (``python -m drivers.spin_chain`` evolves, ``... spin_chain ground`` finds a ground
        state); its files need no ``command`` attribute.
    """

    def __init__(
        self,
        name: str,
        doc: str | None,
        experiments: Experiment | Mapping[str, Experiment],
        default: str | None = None,
    ) -> None:
        self.name = name
        self.prog = f"python -m drivers.{name}"
        self.description = (doc or "").strip().split("\n")[0]
        self.logger = logging.getLogger(f"drivers.{name}")
        if isinstance(experiments, Mapping):
            self.commands: dict[str, Experiment] | None = dict(experiments)
            self.experiment = None
            if default is not None and default not in self.commands:
                raise ValueError(f"default: {default!r} is not one of {sorted(self.commands)}")
        else:
            self.commands, self.experiment = None, experiments
            if default is not None:
                raise ValueError("default: only a driver with several experiments has one")
        self.default = default
        self._shell = False

    def cli(self, argv: Sequence[str] | None = None) -> int:
        """The shell entry point: :meth:`main` with one-line errors; returns the exit status.

        ``--debug`` (anywhere in ``argv``) lets every exception through with its traceback.
        Signals (:func:`drivers._signals.graceful_stop`): a time evolution stops after the
        step it is in, with a checkpoint (the exception's note names the ``--restart``
        command); ``SIGTERM`` stops other runs as Ctrl-C does.
        """
        argv = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in argv
        argv = [a for a in argv if a != "--debug"]
        self._shell = True
        try:
            self.main(argv)
        except KeyboardInterrupt as exc:
            if debug:
                raise
            notes = "; ".join(getattr(exc, "__notes__", ()))
            _error_line(f"{self.prog}: interrupted" + (f" ({notes})" if notes else ""))
            return INTERRUPTED
        except (ConfigError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            if debug:
                raise
            _error_line(f"{self.prog}: error: {exc}")
            return USAGE_ERROR
        except Exception as exc:
            if debug:
                raise
            _error_line(
                f"{self.prog}: error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                "traceback)"
            )
            return 1
        finally:
            self._shell = False
        return 0

    def main(self, argv: Sequence[str] | None = None) -> dict[str, Any] | None:
        """Parse ``argv`` (``sys.argv[1:]`` when None) and run, continue or plot.

        Returns the run summary (None for ``plot``). Errors propagate as exceptions (the
        shell's one-line messages are :meth:`cli`'s).
        """
        argv = list(sys.argv[1:] if argv is None else argv)
        if argv[:1] == ["plot"]:
            if len(argv) != 2 or argv[1] in ("-h", "--help"):
                sys.stdout.write(f"usage: {self.prog} plot FILE\n\n{_PLOT_HELP}\n")
                raise SystemExit(0 if argv[1:] in (["-h"], ["--help"]) else USAGE_ERROR)
            setup_logging()
            for path in self.plot(argv[1]):
                self.logger.info("wrote %s", path)
            return None
        if self.commands is None:
            return self._run(argv, self.experiment, self.prog, self.description)
        name = argv[0] if argv else ""
        if self.default is not None and name not in self.commands:
            others = ", ".join(c for c in self.commands if c != self.default)
            description = (
                f"{self.description}\n\nOther commands: {others} ('{self.prog} COMMAND "
                f"--help' lists their options); '{self.prog} plot FILE' writes the plots."
            )
            return self._run(argv, self.commands[self.default], self.prog, description)
        if name in ("-h", "--help"):
            sys.stdout.write(self._usage() + "\n")
            raise SystemExit(0)
        if name not in self.commands:
            what = f"unknown command {name!r}" if name else "missing command"
            raise SystemExit(f"{self.prog}: {what}\n{self._usage()}")
        experiment = self.commands[name]
        return self._run(argv[1:], experiment, f"{self.prog} {name}", experiment.help)

    def plot(self, path: str | Path) -> list[Path]:
        """Write the plots of the output file ``path``; return the PNG paths."""
        from tensorsim.io import open_run

        ds, _ = open_run(self._own_file(path))
        experiment = self.experiment
        if experiment is None:
            command = str(ds.attrs.get("command", self.default or ""))
            if command not in self.commands:
                raise ValueError(
                    f"{path}: not an output file of {self.prog} (its attribute 'command' is "
                    f"{command!r}; expected one of {sorted(self.commands)})"
                )
            experiment = self.commands[command]
        return experiment.plots(ds, Path(path).with_suffix(""))

    def _own_file(self, path: str | Path) -> Path:
        """``path``, checked to be an output file of this driver (one clear line if not).

        Files written before drivers stored their name carry no ``driver`` attribute and
        are taken as they are.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        attrs = root_attributes(path)
        if attrs is None:
            raise ConfigError(f"{path} is not an output file of {self.prog}: not HDF5")
        driver = attrs.get("driver")
        if driver is not None and driver != f"drivers.{self.name}":
            raise ConfigError(
                f"{path} was written by {driver}, not by drivers.{self.name} (use python -m "
                f"{driver} with it)"
            )
        return path

    def _usage(self) -> str:
        assert self.commands is not None
        lines = [f"usage: {self.prog} {{{','.join([*self.commands, 'plot'])}}} [options]", ""]
        lines += [self.description, ""]
        lines += [f"  {name:<10} {e.help}" for name, e in self.commands.items()]
        lines += [
            f"  {'plot':<10} plot FILE: {_PLOT_HELP}",
            "",
            f"'{self.prog} COMMAND --help' lists the options of a command.",
        ]
        return "\n".join(lines)

    def _run(
        self, argv: list[str], experiment: Experiment, prog: str, description: str
    ) -> dict[str, Any]:
        """Parse the options of ``experiment``, build its configuration and run it."""
        if self.commands is None:
            description = f"{description}\n\n'{self.prog} plot FILE': {_PLOT_HELP}."
        parser = build_parser(experiment.config, prog=prog, description=description)
        if experiment.restartable:
            parser.add_argument(
                "--restart", metavar="FILE", help="continue the run stored in FILE"
            )
            parser.add_argument(
                "--max-steps",
                type=_positive_int,
                default=None,
                help="stop after this many steps (checkpointed)",
            )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace an output file of a finished run"
        )
        parser.add_argument(
            "--debug", action="store_true", help="show the full traceback of an error"
        )
        args = parser.parse_args(argv)
        restart = getattr(args, "restart", None)
        comm = get_comm()
        setup_logging(comm)
        token = RUNNING_DRIVER.set(f"drivers.{self.name}")
        allowed = OVERWRITE.set(args.overwrite or not self._shell)
        signals = (
            graceful_stop(experiment.stops_gracefully) if self._shell else contextlib.nullcontext()
        )
        try:
            with abort_on_error(comm), signals:
                return self._execute(experiment, args, restart, comm)
        finally:
            RUNNING_DRIVER.reset(token)
            OVERWRITE.reset(allowed)

    def _execute(
        self, experiment: Experiment, args: argparse.Namespace, restart: str | None, comm: Any
    ) -> dict[str, Any]:
        """Build the configuration (from the file on a restart), run and log the summary."""
        if restart is not None:
            if args.config or args.set:
                raise ConfigError("--restart continues with the configuration stored in the file")
            text = None
            if comm.rank == 0:
                if Path(restart).is_file():
                    self._own_file(restart)
                text = experiment.stored_config(Path(restart))
            cfg = config_from_toml(experiment.config, comm.bcast(text, root=0))
        else:
            cfg = experiment.load(args.config, args.set)
        self.logger.info("%s", experiment.describe(cfg, comm.size))
        if experiment.restartable:
            summary = experiment.run(
                cfg,
                comm,
                restart=Path(restart) if restart else None,
                max_steps=args.max_steps,
            )
        else:
            summary = experiment.run(cfg, comm)
        line = experiment.summarize(summary)
        self.logger.info("%s", line)
        if comm.rank == 0:  # the result line also on stdout, for scripts
            sys.stdout.write(f"{line}\n")
        return summary


#: What ``plot`` does, for the help texts.
_PLOT_HELP = "write the PNG plots of an output file next to it"


def _positive_int(text: str) -> int:
    """``--max-steps``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _error_line(message: str) -> None:
    """One line for the user on stderr (the command line's error report)."""
    sys.stderr.write(f"{message}\n")
