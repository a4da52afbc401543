"""Logging set-up for drivers: rank-aware format, rank 0 verbose, other ranks quiet.

Library modules only create ``logger = logging.getLogger(__name__)`` and log to it; the
driver calls :func:`setup_logging` once, after it knows its communicator. Each record then
reads like::

    2026-11-27 10:00:00 INFO [0/2] drivers.compress: message

with the MPI rank and size in brackets.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from tensorsim.parallel import rank_and_size

__all__ = ["LOG_FORMAT", "setup_logging"]

logger = logging.getLogger(__name__)

#: Record format; ``{rank}`` and ``{size}`` are filled in by :func:`setup_logging`.
LOG_FORMAT = "%(asctime)s %(levelname)s [{rank}/{size}] %(name)s: %(message)s"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Handlers installed here carry this attribute, so a second call can remove exactly them.
_MARK = "_tensorsim_setup_logging"


def _parse_level(level: int | str) -> int:
    if isinstance(level, bool):
        raise ValueError(f"level: expected a logging level name or int, got {level!r}")
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        levels = logging.getLevelNamesMapping()
        name = level.strip().upper()
        if name in levels:
            return levels[name]
        raise ValueError(
            f"level: expected one of {', '.join(sorted(levels, key=levels.get))}, got {level!r}"
        )
    raise ValueError(f"level: expected a logging level name or int, got {level!r}")


def setup_logging(
    comm: Any = None,
    level: int | str = "INFO",
    logfile: str | os.PathLike[str] | None = None,
) -> None:
    """Configure the root logger for a (possibly parallel) run.

    Installs one stream handler on ``sys.stderr``: rank 0 shows records at ``level``, the
    other ranks only at WARNING and above (or ``level``, if that is higher). Handlers that
    an earlier call installed are removed and closed first, so calling it again does not
    duplicate output. Handlers installed by others (pytest, for instance) are kept.

    Parameters
    ----------
    comm
        An object with ``.rank`` and ``.size`` (an mpi4py communicator or a ``SerialComm``);
        None means rank 0 of 1.
    level
        A level name (``"DEBUG"``, ``"INFO"``, ...) or number.
    logfile
        Optional file to log to as well (appended to; parent folders are created). If it
        contains ``{rank}``, every rank writes its own file at ``level``; otherwise only
        rank 0 writes it.

    Raises
    ------
    ValueError
        If ``level`` is not a known level, or the rank is not in ``[0, size)``.
    TypeError
        If ``comm`` has no integer ``rank`` and ``size``.
    """
    rank, size = rank_and_size(comm)
    file_level = _parse_level(level)
    stream_level = file_level if rank == 0 else max(file_level, logging.WARNING)

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()

    formatter = logging.Formatter(
        LOG_FORMAT.replace("{rank}", str(rank)).replace("{size}", str(size)),
        datefmt=_DATE_FORMAT,
    )
    handlers: list[logging.Handler] = []
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(stream_level)
    handlers.append(stream)

    levels = [stream_level]
    if logfile is not None:
        template = os.fspath(logfile)
        per_rank = "{rank}" in template
        if per_rank or rank == 0:
            filename = template.replace("{rank}", str(rank)).replace("{size}", str(size))
            folder = os.path.dirname(filename)
            if folder:
                os.makedirs(folder, exist_ok=True)
            file_handler = logging.FileHandler(filename, mode="a", encoding="utf-8")
            file_handler.setLevel(file_level)
            handlers.append(file_handler)
            levels.append(file_level)

    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(min(levels))
    logger.debug("logging set up: rank %d of %d, level %s", rank, size, level)
