"""The command line shared by the drivers.

``python -m drivers.NAME [--config F] [--set K=V ...] [--restart FILE] [--max-steps N]`` runs
(or continues) a simulation; ``python -m drivers.NAME plot FILE`` writes its PNG plots. A
restart reads the configuration stored in the file on rank 0 and broadcasts it; errors on any
rank abort every rank (:func:`tensorsim.parallel.abort_on_error`).

A driver with several tasks names them as subcommands (:class:`Command`):
``python -m drivers.NAME COMMAND [--config F] [--set K=V ...]``, each with its own run
function and log lines; ``--restart`` and ``--max-steps`` are offered only to the commands
that support them. One call parses with one configuration class: a driver whose commands
need different tables passes the class of the command named in ``argv``
(:func:`drivers.navier_stokes.main`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tensorsim.config import ConfigError, Params, build_parser, config_from_toml
from tensorsim.log import setup_logging
from tensorsim.parallel import abort_on_error, get_comm

__all__ = ["Command", "refuse_restart", "run_command_line"]

C = TypeVar("C", bound=Params)


def refuse_restart(prog: str, restart: Any, max_steps: Any, length_key: str) -> None:
    """Refuse ``--restart`` and ``--max-steps`` in a driver that always runs to the end.

    Sweeps of independent runs keep no checkpoint; this raises ``ConfigError`` when either
    option was given.

    Parameters
    ----------
    prog
        The driver, as named in the message (``"drivers.tubal"``).
    restart, max_steps
        The values the command line passed (``None`` when absent).
    length_key
        The configuration key that sets the length of a run, named as the alternative.
    """
    if restart is not None or max_steps is not None:
        raise ConfigError(
            f"{prog} runs to the end: --restart and --max-steps are not supported "
            f"(use {length_key})"
        )


@dataclass(frozen=True)
class Command:
    """One subcommand of a driver, ``python -m drivers.NAME COMMAND [options]``.

    Attributes
    ----------
    run
        ``run(cfg, comm)`` -> summary; with ``restart``,
        ``run(cfg, comm, restart=Path | None, max_steps=int | None)``.
    describe, summarize
        The log lines before (``describe(cfg, n_ranks)``) and after the run.
    help
        One line shown by ``--help``.
    restart
        Whether the command takes ``--restart FILE`` and ``--max-steps N``.
    """

    run: Callable[..., dict[str, Any]]
    describe: Callable[[Any, int], str]
    summarize: Callable[[dict[str, Any]], str]
    help: str
    restart: bool = False


def run_command_line(
    argv: Sequence[str] | None,
    *,
    config_cls: type[C],
    prog: str,
    description: str,
    load: Callable[[Any], C],
    plot: Callable[[str], list[Path]],
    logger: logging.Logger,
    run: Callable[..., dict[str, Any]] | None = None,
    describe: Callable[[C, int], str] | None = None,
    summarize: Callable[[dict[str, Any]], str] | None = None,
    commands: Mapping[str, Command] | None = None,
) -> dict[str, Any] | None:
    """Parse ``argv`` and run, continue or plot; return the run summary (None for ``plot``).

    Parameters
    ----------
    argv
        Arguments (``sys.argv[1:]`` when None).
    config_cls
        The driver's top-level configuration.
    prog, description
        Shown by ``--help``.
    load
        ``load(args)``: the configuration of a new run from the parsed arguments
        (``args.config``, ``args.set``).
    plot
        ``plot(path)`` -> the PNG files written.
    logger
        The driver's logger.
    run
        ``run(cfg, comm, restart=Path | None, max_steps=int | None)`` -> summary, for a
        driver without subcommands.
    describe, summarize
        The log lines before (``describe(cfg, n_ranks)``) and after the run (with ``run``).
    commands
        Subcommand name -> :class:`Command`, instead of ``run``, ``describe`` and
        ``summarize``: the first argument then names the command (or ``plot``).

    Raises
    ------
    TypeError
        If neither or both of ``run`` (with ``describe`` and ``summarize``) and ``commands``
        are given.
    SystemExit
        With a usage message on a missing or unknown subcommand or a bad ``plot`` line.
    """
    single = None
    if commands is None:
        if run is None or describe is None or summarize is None:
            raise TypeError("run_command_line: give run, describe and summarize, or commands")
        single = Command(run, describe, summarize, description, restart=True)
    elif run is not None or describe is not None or summarize is not None:
        raise TypeError("run_command_line: give commands or run/describe/summarize, not both")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plot"]:
        if len(argv) != 2:
            raise SystemExit(f"usage: {prog} plot FILE")
        setup_logging()
        for path in plot(argv[1]):
            logger.info("wrote %s", path)
        return None
    if commands is None:
        return _run(argv, single, config_cls, prog, description, load, logger)
    name = argv[0] if argv else ""
    if name in ("-h", "--help"):
        sys.stdout.write(_usage(prog, description, commands) + "\n")
        raise SystemExit(0)
    if name not in commands:
        raise SystemExit(
            f"{prog}: {'unknown command ' + repr(name) if name else 'missing command'}\n"
            + _usage(prog, description, commands)
        )
    command = commands[name]
    return _run(argv[1:], command, config_cls, f"{prog} {name}", command.help, load, logger)


def _usage(prog: str, description: str, commands: Mapping[str, Command]) -> str:
    """The usage text of a driver with subcommands."""
    lines = [f"usage: {prog} {{{','.join([*commands, 'plot'])}}} [options]", "", description, ""]
    lines += [f"  {name:<10} {command.help}" for name, command in commands.items()]
    lines += [
        f"  {'plot':<10} plot FILE: write the PNG plots of an output file",
        "",
        f"'{prog} COMMAND --help' lists the options of a command.",
    ]
    return "\n".join(lines)


def _run(
    argv: list[str],
    command: Command,
    config_cls: type[C],
    prog: str,
    description: str,
    load: Callable[[Any], C],
    logger: logging.Logger,
) -> dict[str, Any]:
    """Parse the options of ``command``, build the configuration and run it."""
    parser = build_parser(config_cls, prog=prog, description=description)
    if command.restart:
        parser.add_argument("--restart", metavar="FILE", help="continue the run stored in FILE")
        parser.add_argument(
            "--max-steps", type=int, default=None, help="stop after this many steps (checkpointed)"
        )
    args = parser.parse_args(argv)
    comm = get_comm()
    setup_logging(comm)
    with abort_on_error(comm):
        if getattr(args, "restart", None) is not None:
            if args.config or args.set:
                raise ConfigError("--restart continues with the configuration stored in the file")
            text = None
            if comm.rank == 0:
                from tensorsim.io import open_run

                ds, _ = open_run(args.restart)
                text = str(ds.attrs["config"])
            cfg = config_from_toml(config_cls, comm.bcast(text, root=0))
        else:
            cfg = load(args)
        logger.info("%s", command.describe(cfg, comm.size))
        if command.restart:
            summary = command.run(
                cfg,
                comm,
                restart=Path(args.restart) if args.restart else None,
                max_steps=args.max_steps,
            )
        else:
            summary = command.run(cfg, comm)
        logger.info("%s", command.summarize(summary))
    return summary
