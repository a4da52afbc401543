"""MPI communicator, a serial stand-in, and a cost-balanced executor for independent tasks.

:func:`get_comm` gives ``MPI.COMM_WORLD`` under an MPI launcher and a :class:`SerialComm`
otherwise (``mpi4py`` is imported there only). :class:`Executor` spreads independent tasks
over the ranks by estimated cost (:func:`distribute`); each task is computed whole by one rank,
so results do not depend on the number of ranks. A failing task raises
:class:`RemoteTaskError` on every rank; :func:`abort_on_error` ends the job on a rank's error.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import operator
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "LAUNCHER_ENV_VARS",
    "Executor",
    "RemoteTaskError",
    "SerialComm",
    "abort_on_error",
    "distribute",
    "get_comm",
    "rank_and_size",
]

logger = logging.getLogger(__name__)

#: Variables that MPI launchers set: MPICH/Hydra and Intel MPI (``PMI_RANK``, ``PMI_SIZE``),
#: PMIx launchers such as Open MPI 5 and ``srun --mpi=pmix`` (``PMIX_RANK``), Open MPI
#: (``OMPI_COMM_WORLD_SIZE``) and Slurm's ``srun --mpi=pmi2`` (``PMI_SIZE``).
LAUNCHER_ENV_VARS: tuple[str, ...] = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE")


def get_comm() -> Any:
    """Return the world communicator, or a :class:`SerialComm` outside MPI.

    A launcher is detected by any of :data:`LAUNCHER_ENV_VARS` in the environment.

    Returns
    -------
    mpi4py.MPI.Comm or SerialComm
        ``mpi4py.MPI.COMM_WORLD`` under an MPI launcher, else ``SerialComm()``.

    Raises
    ------
    ImportError
        If a launcher is detected but ``mpi4py`` cannot be imported.
    """
    launcher = [name for name in LAUNCHER_ENV_VARS if name in os.environ]
    if not launcher:
        return SerialComm()
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError(
            f"started by an MPI launcher ({', '.join(launcher)} set) but mpi4py cannot be "
            "imported; install the mpi extra: pip install tensorsim[mpi]"
        ) from err
    return MPI.COMM_WORLD


def rank_and_size(comm: Any) -> tuple[int, int]:
    """Return ``(rank, size)`` of a communicator; ``(0, 1)`` for ``None``.

    Raises
    ------
    TypeError
        If ``comm`` has no integer ``rank`` and ``size`` (an mpi4py communicator or a
        :class:`SerialComm` has).
    ValueError
        If they are inconsistent.
    """
    if comm is None:
        return 0, 1
    try:
        rank, size = int(comm.rank), int(comm.size)
    except (AttributeError, TypeError, ValueError) as err:
        raise TypeError(
            "comm must be None or have integer attributes rank and size (an MPI "
            f"communicator or SerialComm), got {type(comm).__name__}"
        ) from err
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"comm has rank {rank} and size {size}: expected 0 <= rank < size")
    return rank, size


class SerialComm:
    """A one-rank stand-in for an ``mpi4py`` communicator.

    ``rank`` is 0 and ``size`` is 1; collectives are identities. Methods that take a
    ``root`` raise ``ValueError`` unless it is 0.
    """

    rank: int = 0
    size: int = 1

    def Get_rank(self) -> int:
        """Return the rank, 0."""
        return 0

    def Get_size(self) -> int:
        """Return the size, 1."""
        return 1

    @staticmethod
    def _check_root(root: int) -> None:
        if root != 0:
            raise ValueError(f"root must be 0 for a SerialComm, got {root!r}")

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Return ``obj``."""
        self._check_root(root)
        return obj

    def allreduce(self, obj: Any, op: Any = None) -> Any:
        """Return ``obj`` (the reduction over one rank)."""
        return obj

    def reduce(self, obj: Any, op: Any = None, root: int = 0) -> Any:
        """Return ``obj`` (the reduction over one rank, on the root)."""
        self._check_root(root)
        return obj

    def gather(self, obj: Any, root: int = 0) -> list[Any]:
        """Return ``[obj]``."""
        self._check_root(root)
        return [obj]

    def allgather(self, obj: Any) -> list[Any]:
        """Return ``[obj]``."""
        return [obj]

    def scatter(self, seq: Sequence[Any], root: int = 0) -> Any:
        """Return the single item of ``seq``, which must have length 1."""
        self._check_root(root)
        if seq is None or len(seq) != 1:
            raise ValueError("scatter on a SerialComm needs a sequence of length 1")
        return seq[0]

    def barrier(self) -> None:
        """Do nothing (there is no other rank to wait for)."""

    Barrier = barrier

    def Abort(self, errorcode: int = 1) -> None:
        """End the process by raising ``SystemExit(errorcode)``."""
        raise SystemExit(errorcode)


def distribute(costs: Sequence[float], size: int) -> list[list[int]]:
    """Assign task indices to ranks by cost, longest processing time first.

    Tasks are taken in order of decreasing cost (ties: lower index first) and each goes to
    the rank with the smallest load so far (ties: lower rank first). The result is
    deterministic, so every rank computes the same assignment.

    Parameters
    ----------
    costs
        Estimated cost of each task; finite and non-negative.
    size
        Number of ranks, at least 1.

    Returns
    -------
    list of list of int
        ``size`` lists of task indices, each sorted ascending.

    Raises
    ------
    ValueError
        If ``size < 1`` or a cost is negative, NaN or infinite.
    """
    size = operator.index(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    values = [float(c) for c in costs]
    for i, c in enumerate(values):
        if not (math.isfinite(c) and c >= 0.0):
            raise ValueError(f"costs must be finite and >= 0, got costs[{i}] = {c!r}")
    loads = [(0.0, r) for r in range(size)]
    assignment: list[list[int]] = [[] for _ in range(size)]
    for i in sorted(range(len(values)), key=lambda k: (-values[k], k)):
        load, r = heapq.heappop(loads)
        assignment[r].append(i)
        heapq.heappush(loads, (load + values[i], r))
    return [sorted(a) for a in assignment]


class RemoteTaskError(RuntimeError):
    """A task of :meth:`Executor.map` raised on some rank; raised on every rank.

    Attributes
    ----------
    task_index : int
        Index of the failed task (the lowest one if several failed).
    rank : int
        Rank that ran it.
    exc_type : str
        Qualified name of the original exception type.
    remote_traceback : str
        Formatted traceback of the original exception (also in the message).
    original : Exception or None
        The original exception on the rank that ran the task, ``None`` on the others.
    """

    def __init__(self, task_index: int, rank: int, exc_type: str, text: str, tb: str, more: int):
        self.task_index, self.rank, self.exc_type = task_index, rank, exc_type
        self.remote_traceback = tb
        self.original: Exception | None = None
        extra = f" ({more} more task(s) failed)" if more else ""
        super().__init__(
            f"task {task_index} failed on rank {rank}: {exc_type}: {text}{extra}\n"
            f"--- remote traceback (rank {rank}) ---\n{tb.rstrip()}"
        )


class Executor:
    """Spread independent tasks over the ranks of a communicator.

    Parameters
    ----------
    comm
        An ``mpi4py`` communicator or :class:`SerialComm`; ``None`` means :func:`get_comm`.

    Attributes
    ----------
    last_timings : list of float
        Wall time in seconds spent in tasks by each rank during the last :meth:`map`.
    """

    def __init__(self, comm: Any = None):
        self.comm = get_comm() if comm is None else comm
        self.last_timings: list[float] = []

    def map(
        self,
        func: Callable[[Any], Any],
        tasks: Sequence[Any],
        *,
        costs: Sequence[float] | None = None,
    ) -> list[Any]:
        """Return ``[func(t) for t in tasks]``, computed in parallel over the ranks.

        Collective: every rank must call it with the same ``tasks`` and ``costs``. Results
        travel by pickle and are returned in task order on every rank.

        Parameters
        ----------
        func
            Function of one task.
        tasks
            The tasks.
        costs
            Estimated cost of each task, used by :func:`distribute`; uniform if ``None``.

        Returns
        -------
        list
            The results, in task order.

        Raises
        ------
        RemoteTaskError
            On every rank, if ``func`` raised an ``Exception`` on some rank and there is more
            than one rank. With one rank the original exception propagates unchanged.
            (A ``BaseException`` such as ``KeyboardInterrupt`` is not caught.)
        """
        n = len(tasks)
        costs = [1.0] * n if costs is None else costs
        if len(costs) != n:
            raise ValueError(f"costs has length {len(costs)} but there are {n} tasks")
        rank, size = self.comm.Get_rank(), self.comm.Get_size()
        start = time.perf_counter()
        if size == 1:
            distribute(costs, 1)  # validates the costs as the parallel path does
            results = [func(task) for task in tasks]
            self.last_timings = [time.perf_counter() - start]
            return results

        mine: dict[int, Any] = {}
        packed: list[tuple[int, bytes]] = []
        failure = None
        local_exc: Exception | None = None
        for i in distribute(costs, size)[rank]:
            try:
                mine[i] = func(tasks[i])
                packed.append((i, pickle.dumps(mine[i], protocol=pickle.HIGHEST_PROTOCOL)))
            except Exception as exc:
                local_exc = exc
                kind = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
                failure = (i, rank, kind, str(exc), traceback.format_exc())
                break
        elapsed = time.perf_counter() - start
        gathered = self.comm.allgather((elapsed, packed, failure))
        self.last_timings = [g[0] for g in gathered]
        failures = sorted(g[2] for g in gathered if g[2] is not None)
        if failures:
            i, where, kind, text, tb = failures[0]
            err = RemoteTaskError(i, where, kind, text, tb, len(failures) - 1)
            err.original = local_exc if where == rank else None
            raise err from None  # the message holds the remote traceback
        results: list[Any] = [None] * n
        for _, items, _ in gathered:
            for i, blob in items:
                results[i] = mine[i] if i in mine else pickle.loads(blob)
        logger.debug("map: %d tasks, seconds per rank %s", n, self.last_timings)
        return results


@contextlib.contextmanager
def abort_on_error(comm: Any) -> Iterator[None]:
    """Make an exception on one rank end the whole job instead of hanging the others.

    For a driver's ``main``. In serial the exception is re-raised untouched (the caller
    reports it). When ``comm.size > 1`` it is logged at CRITICAL as one line with the rank
    (the traceback too when the logger is at DEBUG) and ``comm.Abort(1)`` ends every rank.
    ``SystemExit`` with code 0 or ``None`` always propagates;
    ``SystemExit`` with another code and ``KeyboardInterrupt`` abort under MPI (with the
    exit code, or 1) and propagate in serial.

    Parameters
    ----------
    comm
        The communicator of the job (``mpi4py`` or :class:`SerialComm`).
    """
    try:
        yield
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        rank, size = comm.Get_rank(), comm.Get_size()
        code = exc.code if isinstance(exc, SystemExit) else 1
        if size == 1 or code in (0, None):
            raise
        if isinstance(exc, Exception):
            logger.critical(
                "rank %d/%d: %s: %s",
                rank,
                size,
                type(exc).__name__,
                exc,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
        code = code if isinstance(code, int) else 1
        logger.critical("rank %d/%d: aborting all ranks (code %d) after %r", rank, size, code, exc)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        comm.Abort(code)
        raise
