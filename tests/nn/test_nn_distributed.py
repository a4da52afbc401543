"""torch.distributed helpers in one process (the two-rank path runs in tests/solvers)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.distributed import (  # noqa: E402
    free_port,
    init_torch_distributed,
    shutdown_torch_distributed,
    torch_distributed,
)
from tensorsim.parallel import SerialComm  # noqa: E402


def test_one_rank_needs_no_process_group():
    assert init_torch_distributed(SerialComm()) == (0, 1)
    assert not torch.distributed.is_initialized()
    with torch_distributed(SerialComm()) as ranks:
        assert ranks == (0, 1)
    shutdown_torch_distributed(SerialComm())  # nothing to shut down
    assert not torch.distributed.is_initialized()


def test_free_port_is_a_port():
    assert 0 < free_port() < 65536
