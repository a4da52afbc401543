from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest

from tensorsim.log import setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def ours():
    return [h for h in logging.getLogger().handlers if getattr(h, "_tensorsim_setup_logging", 0)]


def emit():
    log = logging.getLogger("drivers.compress")
    log.info("info message")
    log.warning("warning message")


def test_rank0_logs_info_with_rank_in_format(capsys):
    setup_logging(SimpleNamespace(rank=0, size=2))
    emit()
    err = capsys.readouterr().err
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO \[0/2\] drivers\.compress: info message$",
        err,
        re.M,
    )
    assert "WARNING [0/2] drivers.compress: warning message" in err


def test_default_comm_is_rank0_of_1(capsys):
    setup_logging()
    emit()
    assert "INFO [0/1] drivers.compress: info message" in capsys.readouterr().err


def test_other_rank_logs_only_warnings(capsys):
    setup_logging(SimpleNamespace(rank=1, size=2), level="debug")
    emit()
    err = capsys.readouterr().err
    assert "info message" not in err
    assert "WARNING [1/2] drivers.compress: warning message" in err


def test_second_call_does_not_duplicate(capsys):
    setup_logging(SimpleNamespace(rank=0, size=1))
    setup_logging(SimpleNamespace(rank=0, size=1), level="WARNING")
    assert len(ours()) == 1
    emit()
    err = capsys.readouterr().err
    assert err.count("warning message") == 1
    assert "info message" not in err


def test_per_rank_logfile(tmp_path, capsys):
    template = tmp_path / "logs" / "run_p{rank}.log"
    setup_logging(SimpleNamespace(rank=0, size=2), logfile=template)
    emit()
    setup_logging(SimpleNamespace(rank=1, size=2), logfile=str(template))
    emit()
    assert len(ours()) == 2  # stream + rank 1's file; rank 0's file was closed
    for handler in ours():
        handler.flush()
    p0 = (tmp_path / "logs" / "run_p0.log").read_text()
    p1 = (tmp_path / "logs" / "run_p1.log").read_text()
    assert "INFO [0/2] drivers.compress: info message" in p0
    assert "[1/2]" not in p0
    assert "WARNING [1/2] drivers.compress: warning message" in p1
    assert "INFO [1/2] drivers.compress: info message" in p1  # per-rank file keeps INFO
    # ...but rank 1's console still shows warnings only
    err = capsys.readouterr().err
    assert "INFO [1/2]" not in err


def test_shared_logfile_written_by_rank0_only(tmp_path):
    path = tmp_path / "run.log"
    setup_logging(SimpleNamespace(rank=1, size=2), logfile=path)
    emit()
    assert not path.exists()


def test_bad_arguments():
    with pytest.raises(ValueError, match="level"):
        setup_logging(level="LOUD")
    with pytest.raises(TypeError, match="comm"):
        setup_logging(comm=object())
    with pytest.raises(ValueError, match="rank"):
        setup_logging(comm=SimpleNamespace(rank=2, size=2))
