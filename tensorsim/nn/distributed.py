"""torch.distributed set up from the MPI ranks (gloo on CPU, nccl on GPU).

A job started by ``mpirun``/``mpiexec`` has its ranks in an MPI communicator;
:func:`init_torch_distributed` makes a torch process group of the same ranks: rank 0 picks a
free TCP port, the address and port are broadcast over MPI, and every rank joins with
``init_method="tcp://addr:port"``. With one rank nothing is initialized (training then runs
without a process group). :func:`torch_distributed` does the same as a context manager that
destroys the group on exit (:func:`shutdown_torch_distributed`).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from tensorsim.parallel import get_comm, rank_and_size

__all__ = [
    "free_port",
    "init_torch_distributed",
    "shutdown_torch_distributed",
    "torch_distributed",
]

logger = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port that was free a moment ago (bound and released by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def init_torch_distributed(
    comm: Any = None, *, backend: str | None = None, timeout_s: float = 300.0
) -> tuple[int, int]:
    """Initialize the default torch process group from an MPI communicator.

    Parameters
    ----------
    comm
        mpi4py communicator (or :class:`tensorsim.parallel.SerialComm`); ``None`` means
        :func:`tensorsim.parallel.get_comm`.
    backend
        ``"gloo"`` or ``"nccl"``; default ``"nccl"`` when CUDA is available, else ``"gloo"``.
    timeout_s
        Timeout of the rendezvous and of collectives.

    Returns
    -------
    tuple of int
        ``(rank, world_size)``.

    Raises
    ------
    RuntimeError
        If a process group is already initialized with another rank or size.

    Notes
    -----
    The address is ``MASTER_ADDR`` if set, else ``127.0.0.1`` when all ranks run on one
    host, else rank 0's host name. Collective: every rank of ``comm`` must call it.
    """
    import torch
    import torch.distributed as dist

    comm = get_comm() if comm is None else comm
    rank, size = rank_and_size(comm)
    if dist.is_available() and dist.is_initialized():
        if (dist.get_rank(), dist.get_world_size()) != (rank, size):
            raise RuntimeError(
                f"a torch process group exists with rank {dist.get_rank()} of "
                f"{dist.get_world_size()}, but the communicator has rank {rank} of {size}"
            )
        return rank, size
    if size == 1:
        return 0, 1
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    hosts = comm.allgather(socket.gethostname())
    address = None
    if rank == 0:
        address = os.environ.get("MASTER_ADDR") or (
            "127.0.0.1" if len(set(hosts)) == 1 else socket.getfqdn()
        )
        address = (address, free_port())
    host, port = comm.bcast(address, root=0)
    dist.init_process_group(
        backend,
        init_method=f"tcp://{host}:{port}",
        rank=rank,
        world_size=size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    logger.info("torch.distributed: %s, rank %d of %d via %s:%d", backend, rank, size, host, port)
    return rank, size


@contextlib.contextmanager
def torch_distributed(
    comm: Any = None, *, backend: str | None = None
) -> Iterator[tuple[int, int]]:
    """Context manager: :func:`init_torch_distributed`, then destroy the group on exit.

    Yields
    ------
    tuple of int
        ``(rank, world_size)``.
    """
    import torch.distributed as dist

    comm = get_comm() if comm is None else comm
    started = not (dist.is_available() and dist.is_initialized())
    ranks = init_torch_distributed(comm, backend=backend)
    try:
        yield ranks
    finally:
        if started and dist.is_initialized():
            shutdown_torch_distributed(comm)


def shutdown_torch_distributed(comm: Any = None) -> None:
    """Destroy the default torch process group in step on every rank.

    The ranks meet before and after the group is destroyed (over MPI after it), so that
    rank 0, which serves the rendezvous store, does not go away while another rank still
    talks to it. Collective; does nothing if no group is initialized.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    comm = get_comm() if comm is None else comm
    dist.barrier()
    dist.destroy_process_group()
    comm.barrier()
