"""The command line shared by the time-evolution drivers.

``python -m drivers.NAME [--config F] [--set K=V ...] [--restart FILE] [--max-steps N]`` runs
(or continues) a simulation; ``python -m drivers.NAME plot FILE`` writes its PNG plots. A
restart reads the configuration stored in the file on rank 0 and broadcasts it; errors on any
rank abort every rank (:func:`tensorsim.parallel.abort_on_error`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tensorsim.config import ConfigError, Params, build_parser, config_from_toml
from tensorsim.log import setup_logging
from tensorsim.parallel import abort_on_error, get_comm

__all__ = ["run_command_line"]

C = TypeVar("C", bound=Params)


def run_command_line(
    argv: Sequence[str] | None,
    *,
    config_cls: type[C],
    prog: str,
    description: str,
    load: Callable[[Any], C],
    run: Callable[..., dict[str, Any]],
    plot: Callable[[str], list[Path]],
    describe: Callable[[C, int], str],
    summarize: Callable[[dict[str, Any]], str],
    logger: logging.Logger,
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
    run
        ``run(cfg, comm, restart=Path | None, max_steps=int | None)`` -> summary.
    plot
        ``plot(path)`` -> the PNG files written.
    describe, summarize
        The log lines before (``describe(cfg, n_ranks)``) and after the run.
    logger
        The driver's logger.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plot"]:
        if len(argv) != 2:
            raise SystemExit(f"usage: {prog} plot FILE")
        setup_logging()
        for path in plot(argv[1]):
            logger.info("wrote %s", path)
        return None
    parser = build_parser(config_cls, prog=prog, description=description)
    parser.add_argument("--restart", metavar="FILE", help="continue the run stored in FILE")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop after this many steps (checkpointed)"
    )
    args = parser.parse_args(argv)
    comm = get_comm()
    setup_logging(comm)
    with abort_on_error(comm):
        if args.restart is not None:
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
        logger.info("%s", describe(cfg, comm.size))
        summary = run(
            cfg,
            comm,
            restart=Path(args.restart) if args.restart else None,
            max_steps=args.max_steps,
        )
        logger.info("%s", summarize(summary))
    return summary
