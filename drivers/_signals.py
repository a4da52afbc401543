"""Ctrl-C and ``SIGTERM`` for runs started from the shell: stop after a step, not inside one.

A time evolution interrupted inside the hooks of a step (a record half appended, a
checkpoint being written) could not continue exactly. So the command line
(:meth:`drivers._cli.Driver.cli`) installs :func:`graceful_stop` around an experiment that
checks :func:`stop_requested` after every step (the time evolutions): the first ``SIGINT``
or ``SIGTERM`` only sets a flag and says so; the loop finishes its step, checkpoints it and
raises ``KeyboardInterrupt``; a second ``SIGINT`` raises at once. Every other experiment
gets ``SIGTERM`` mapped to ``KeyboardInterrupt`` and keeps Python's ``SIGINT``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["graceful_stop", "stop_requested"]

logger = logging.getLogger(__name__)

_STOP = threading.Event()


def stop_requested(comm: Any) -> bool:
    """Whether a signal asked the run to stop, on any rank (all ranks get the same answer).

    Collective under MPI (one small ``allreduce``): call it at the same point on every rank.
    """
    return comm.allreduce(int(_STOP.is_set())) > 0


@contextlib.contextmanager
def graceful_stop(graceful: bool) -> Iterator[None]:
    """Install the shell's signal handlers for the block (main thread only).

    Parameters
    ----------
    graceful
        The experiment polls :func:`stop_requested` after every step: the first signal sets
        the flag; otherwise ``SIGTERM`` raises ``KeyboardInterrupt`` as Ctrl-C does.
    """

    def request(signum: int, frame: Any) -> None:
        if not graceful or (_STOP.is_set() and signum == signal.SIGINT):
            raise KeyboardInterrupt(f"signal {signum}")
        _STOP.set()
        logger.warning(
            "%s: stopping after the current step with a checkpoint (Ctrl-C again: at once)",
            signal.Signals(signum).name,
        )

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, request)
    if graceful:
        signal.signal(signal.SIGINT, request)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _STOP.clear()
