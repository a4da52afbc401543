"""Shared fixture of the writer tests: run a writing script and SIGKILL it mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def kill_after_ready(tmp_path: Path) -> Callable[[str, Path, float], None]:
    """``kill(script, path, delay)``: run ``script`` (Python source taking the output path as
    its argument and printing ``ready`` once it writes in a loop), SIGKILL it ``delay``
    seconds after ``ready``, and check that the signal is what ended it."""
    script_file = tmp_path / "kill_me.py"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    def kill(script: str, path: Path, delay: float) -> None:
        import time

        script_file.write_text(textwrap.dedent(script))
        proc = subprocess.Popen(
            [sys.executable, str(script_file), str(path)], stdout=subprocess.PIPE, env=env
        )
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL

    return kill
