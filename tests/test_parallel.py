"""Tests of tensorsim.parallel: SerialComm, distribute, Executor, abort_on_error, and MPI runs."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tensorsim.parallel import (
    LAUNCHER_ENV_VARS,
    Executor,
    RemoteTaskError,
    SerialComm,
    abort_on_error,
    distribute,
    get_comm,
)

REPO = Path(__file__).resolve().parent.parent
MPIEXEC = Path(sys.executable).parent / "mpiexec"


# --------------------------------------------------------------------------- SerialComm


def test_serial_comm_identity_collectives():
    comm = SerialComm()
    obj = {"a": [1, 2]}
    assert (comm.rank, comm.size, comm.Get_rank(), comm.Get_size()) == (0, 1, 0, 1)
    assert comm.bcast(obj) is obj
    assert comm.bcast(obj, root=0) is obj
    assert comm.allreduce(obj) is obj
    assert comm.allreduce(3.5, op="sum") == 3.5
    assert comm.reduce(obj, root=0) is obj
    assert comm.gather(obj) == [obj] and comm.gather(obj)[0] is obj
    assert comm.allgather(obj) == [obj]
    assert comm.scatter([obj]) is obj
    assert comm.barrier() is None
    assert comm.Barrier() is None


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.bcast(1, root=1),
        lambda c: c.reduce(1, root=2),
        lambda c: c.gather(1, root=1),
        lambda c: c.scatter([1], root=1),
    ],
)
def test_serial_comm_rejects_nonzero_root(call):
    with pytest.raises(ValueError, match="root must be 0"):
        call(SerialComm())


def test_serial_comm_scatter_needs_length_one():
    with pytest.raises(ValueError, match="length 1"):
        SerialComm().scatter([1, 2])


def test_serial_comm_abort_raises_system_exit():
    with pytest.raises(SystemExit) as info:
        SerialComm().Abort(3)
    assert info.value.code == 3
    with pytest.raises(SystemExit) as info:
        SerialComm().Abort()
    assert info.value.code == 1


# --------------------------------------------------------------------------- get_comm


def _clear_launcher_env(monkeypatch):
    for name in LAUNCHER_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_get_comm_serial_without_launcher(monkeypatch):
    _clear_launcher_env(monkeypatch)
    assert isinstance(get_comm(), SerialComm)


def test_get_comm_launcher_without_mpi4py_raises(monkeypatch):
    _clear_launcher_env(monkeypatch)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install tensorsim\[mpi\]"):
        get_comm()


# --------------------------------------------------------------------------- distribute


def test_distribute_lpt_exact_assignment():
    costs = [5, 4, 3, 3, 3]
    parts = distribute(costs, 2)
    assert parts == [[0, 3], [1, 2, 4]]
    assert sorted(sum(costs[i] for i in p) for p in parts) == [8, 10]


def test_distribute_ties_and_more_ranks_than_tasks():
    assert distribute([1.0] * 7, 2) == [[0, 2, 4, 6], [1, 3, 5]]
    assert distribute([2.0, 1.0], 4) == [[0], [1], [], []]
    assert distribute([], 3) == [[], [], []]
    assert distribute([0, 0, 0], 1) == [[0, 1, 2]]


def test_distribute_is_deterministic_partition():
    costs = np.random.default_rng(7).exponential(size=50)
    first = distribute(costs, 3)
    assert all(distribute(list(costs), 3) == first for _ in range(3))
    assert sorted(i for p in first for i in p) == list(range(50))
    assert all(p == sorted(p) for p in first)
    loads = [sum(costs[i] for i in p) for p in first]
    assert max(loads) - min(loads) <= max(costs)


@pytest.mark.parametrize("size", [0, -1])
def test_distribute_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size"):
        distribute([1.0], size)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_distribute_rejects_bad_costs(bad):
    with pytest.raises(ValueError, match=r"costs\[1\]"):
        distribute([1.0, bad], 2)


# --------------------------------------------------------------------------- Executor, serial


def test_executor_serial_results_in_order():
    ex = Executor(SerialComm())
    assert ex.map(lambda t: t * t, [3, 1, 2], costs=[1.0, 5.0, 2.0]) == [9, 1, 4]
    assert len(ex.last_timings) == 1 and ex.last_timings[0] >= 0.0
    assert ex.map(str, []) == []


def test_executor_defaults_to_get_comm(monkeypatch):
    _clear_launcher_env(monkeypatch)
    assert isinstance(Executor().comm, SerialComm)


def test_executor_serial_exception_propagates_unchanged():
    original = KeyError("missing")

    def func(t):
        if t == 2:
            raise original
        return t

    with pytest.raises(KeyError) as info:
        Executor(SerialComm()).map(func, [0, 1, 2, 3])
    assert info.value is original


def test_executor_validates_costs():
    ex = Executor(SerialComm())
    with pytest.raises(ValueError, match="costs has length"):
        ex.map(str, [1, 2], costs=[1.0])
    with pytest.raises(ValueError, match="costs"):
        ex.map(str, [1, 2], costs=[1.0, -2.0])


# --------------------------------------------------------------------------- Executor, threads
# A two-"rank" communicator made of threads checks the parallel path without MPI.


class _ThreadComm:
    def __init__(self, rank, slots, barrier):
        self.rank, self.size, self._slots, self._barrier = rank, len(slots), slots, barrier

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def allgather(self, obj):
        self._slots[self.rank] = obj
        self._barrier.wait(timeout=10)
        out = list(self._slots)
        self._barrier.wait(timeout=10)
        return out


def _run_threads(func, tasks, costs=None, size=2):
    slots, barrier = [None] * size, threading.Barrier(size)
    outcome = [None] * size

    def body(rank):
        ex = Executor(_ThreadComm(rank, slots, barrier))
        try:
            outcome[rank] = (ex.map(func, tasks, costs=costs), ex.last_timings)
        except Exception as exc:
            outcome[rank] = exc

    threads = [threading.Thread(target=body, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    return outcome


def test_executor_threads_same_results_in_task_order():
    tasks = list(range(7))
    outcome = _run_threads(lambda t: np.full(3, t * 1.5), tasks, costs=[5, 1, 4, 2, 3, 3, 1])
    for results, timings in outcome:
        assert len(timings) == 2
        assert len(results) == 7
        for t, r in zip(tasks, results, strict=True):
            np.testing.assert_array_equal(r, np.full(3, t * 1.5))


def test_executor_threads_error_raised_on_every_rank():
    def func(t):
        if t == 3:
            raise ValueError(f"boom {t}")
        return t

    outcome = _run_threads(func, list(range(7)))
    assert 3 in distribute([1.0] * 7, 2)[1]
    for rank, err in enumerate(outcome):
        assert isinstance(err, RemoteTaskError) and isinstance(err, RuntimeError)
        assert (err.task_index, err.rank, err.exc_type) == (3, 1, "ValueError")
        msg = str(err)
        assert "task 3" in msg and "rank 1" in msg and "ValueError: boom 3" in msg
        assert "Traceback" in msg and "in func" in msg
        assert isinstance(err.original, ValueError) == (rank == 1)
        assert err.__cause__ is None


def test_executor_threads_unpicklable_result_is_reported():
    outcome = _run_threads(lambda t: (lambda: t) if t == 4 else t, list(range(6)))
    for err in outcome:
        assert isinstance(err, RemoteTaskError) and err.task_index == 4


# --------------------------------------------------------------------------- abort_on_error


class _RecordingComm(SerialComm):
    size = 2

    def __init__(self):
        self.aborted = []

    def Get_size(self):
        return 2

    def Abort(self, errorcode=1):
        self.aborted.append(errorcode)


def test_abort_on_error_serial_reraises_untouched(caplog):
    """In serial the caller reports the error (one line from the command line): nothing is
    logged here, so a traceback is never printed twice."""
    with caplog.at_level(logging.DEBUG, logger="tensorsim.parallel"):
        with pytest.raises(RuntimeError, match="bad"):
            with abort_on_error(SerialComm()):
                raise RuntimeError("bad")
    assert not caplog.records


def test_abort_on_error_parallel_logs_one_line(caplog):
    with caplog.at_level(logging.INFO, logger="tensorsim.parallel"):
        with pytest.raises(RuntimeError):
            with abort_on_error(_RecordingComm()):
                raise RuntimeError("bad value")
    first = caplog.records[0]
    assert first.levelno == logging.CRITICAL and not first.exc_info
    assert first.getMessage() == "rank 0/2: RuntimeError: bad value"


@pytest.mark.parametrize(
    "exc", [SystemExit(0), SystemExit(None), SystemExit(2), KeyboardInterrupt()]
)
def test_abort_on_error_serial_lets_exits_through(exc):
    with pytest.raises(type(exc)):
        with abort_on_error(SerialComm()):
            raise exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [(RuntimeError("x"), 1), (SystemExit(3), 3), (SystemExit("msg"), 1), (KeyboardInterrupt(), 1)],
)
def test_abort_on_error_parallel_aborts(exc, code):
    comm = _RecordingComm()
    with pytest.raises(type(exc)):
        with abort_on_error(comm):
            raise exc
    assert comm.aborted == [code]


def test_abort_on_error_parallel_clean_exit_does_not_abort():
    comm = _RecordingComm()
    with pytest.raises(SystemExit):
        with abort_on_error(comm):
            raise SystemExit(0)
    with abort_on_error(comm):
        pass
    assert comm.aborted == []


# --------------------------------------------------------------------------- real MPI runs


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "PMIX_", "OMPI_"))}
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env | {"OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def _run(cmd, cwd, timeout=60):
    """Run ``cmd`` in its own session; kill the session and fail the test if it hangs."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{cmd} hung for more than {timeout} s; output:\n{out}")
    return proc.returncode, out, time.monotonic() - start


def _mpirun(script, tmp_path, n=2):
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install tensorsim[mpi])")
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec next to {sys.executable}")
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    cmd = [str(MPIEXEC), "-n", str(n), "-genv", "OMP_NUM_THREADS", "1"]
    return _run([*cmd, sys.executable, str(path), str(tmp_path)], tmp_path)


MAP_SCRIPT = """
    import json, sys
    import numpy as np
    from tensorsim.parallel import Executor, get_comm

    def work(seed):
        a = np.random.default_rng(seed).standard_normal((40, 40))
        return np.linalg.svd(a @ a.T, compute_uv=False) + np.sin(a).sum()

    out = sys.argv[1]
    comm = get_comm()
    rank, size = comm.Get_rank(), comm.Get_size()
    ex = Executor(comm)
    res = ex.map(work, list(range(100, 107)), costs=[5, 1, 4, 2, 3, 3, 1])
    np.savez(f"{out}/res_{rank}_{size}.npz", *res)
    with open(f"{out}/meta_{rank}_{size}.json", "w") as f:
        json.dump({"size": size, "timings": ex.last_timings, "comm": type(comm).__name__}, f)
"""


@pytest.mark.mpi
def test_mpi_executor_map_matches_serial_bitwise(tmp_path):
    rc, out, _ = _mpirun(MAP_SCRIPT, tmp_path)
    assert rc == 0, out
    rc, out, _ = _run([sys.executable, str(tmp_path / "script.py"), str(tmp_path)], tmp_path)
    assert rc == 0, out
    meta = json.loads((tmp_path / "meta_1_2.json").read_text())
    assert meta["size"] == 2 and meta["comm"] == "Intracomm" and len(meta["timings"]) == 2
    assert json.loads((tmp_path / "meta_0_1.json").read_text())["comm"] == "SerialComm"
    serial = np.load(tmp_path / "res_0_1.npz")
    for rank in (0, 1):
        par = np.load(tmp_path / f"res_{rank}_2.npz")
        assert len(par.files) == len(serial.files) == 7
        for key in serial.files:
            assert par[key].dtype == serial[key].dtype
            assert par[key].tobytes() == serial[key].tobytes(), (rank, key)


ERROR_SCRIPT = """
    import sys
    from pathlib import Path
    from tensorsim.parallel import Executor, RemoteTaskError, get_comm

    def work(i):
        if i == 3:
            raise ValueError(f"boom {i}")
        return i

    comm = get_comm()
    try:
        Executor(comm).map(work, list(range(7)))
    except RemoteTaskError as err:
        kind = f"{type(err).__name__} {isinstance(err, RuntimeError)}"
        Path(sys.argv[1], f"err_{comm.Get_rank()}.txt").write_text(f"{kind}\\n{err}")
        raise
"""


@pytest.mark.mpi
def test_mpi_task_error_raises_on_every_rank(tmp_path):
    assert 3 in distribute([1.0] * 7, 2)[1]  # the failing task runs on rank 1
    rc, out, _ = _mpirun(ERROR_SCRIPT, tmp_path)
    assert rc != 0, out
    for rank in (0, 1):
        text = (tmp_path / f"err_{rank}.txt").read_text()
        assert text.startswith("RemoteTaskError True"), text
        assert "task 3" in text and "rank 1" in text and "ValueError: boom 3" in text
        assert "Traceback" in text and 'raise ValueError(f"boom {i}")' in text


ABORT_SCRIPT = """
    import logging, sys
    from pathlib import Path
    from tensorsim.parallel import abort_on_error, get_comm

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    comm = get_comm()
    with abort_on_error(comm):
        if comm.Get_rank() == 1:
            raise RuntimeError("failure on rank 1 only")
        comm.barrier()
        Path(sys.argv[1], "passed_barrier").write_text("rank 0 was not stopped")
"""


@pytest.mark.mpi
def test_mpi_abort_on_error_ends_whole_job(tmp_path):
    rc, out, wall = _mpirun(ABORT_SCRIPT, tmp_path)
    assert rc != 0, out
    assert wall < 30, out
    assert "CRITICAL tensorsim.parallel: rank 1/2: RuntimeError: failure on rank 1 only" in out
    assert not (tmp_path / "passed_barrier").exists()
