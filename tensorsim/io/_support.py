"""Support for the writer: provenance, communicator, paths, atomic replacement, buffers.

NumPy-only by design (host data for output files); imports no h5py, h5netcdf or xarray.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import numpy as np

from tensorsim.io._ncutil import check_name, check_text, default_fill

__all__ = [
    "Series",
    "Static",
    "atomic_target",
    "check_dims",
    "git_commit",
    "output_path",
    "package_version",
    "remove_stale_tmp",
    "require_io",
    "variable_attrs",
    "versions_string",
]

logger = logging.getLogger(__name__)

#: Packages whose versions go into the ``versions`` attribute (when installed).
_VERSIONED = ("numpy", "scipy", "torch", "mpi4py", "h5py", "h5netcdf", "xarray")


def require_io(*, xarray: bool = False) -> None:
    """Check that the file packages import (h5py, h5netcdf, and xarray if asked).

    Raises
    ------
    ImportError
        Naming the missing package and the extra that installs it.
    """
    import importlib

    for name in ("h5py", "h5netcdf", *(("xarray",) if xarray else ())):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(
                f"tensorsim.io needs {name} to read and write output files; install the io "
                "extra: pip install tensorsim[io]"
            ) from err


def package_version(name: str) -> str | None:
    """Return the installed version of distribution ``name``, or ``None``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions_string() -> str:
    """Return ``"python=X numpy=Y ..."`` for the installed packages (imports none of them)."""
    parts = [f"python={platform.python_version()}"]
    for name in _VERSIONED:
        version = package_version(name)
        if version is not None:
            parts.append(f"{name}={version}")
    return " ".join(parts)


def git_commit() -> str:
    """Return the commit of the tensorsim checkout, or ``"unknown"`` (not a checkout, no git)."""
    here = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    if done.returncode != 0 or len(commit) != 40:
        return "unknown"
    return commit


def output_path(path: Any) -> Path:
    """Return the output path, checking its type and that its directory exists."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"path {p} is a directory, expected a file name")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"the directory of path {p} does not exist")
    return p


def check_dims(dims: Any) -> tuple[str, ...]:
    """Return ``dims`` as a tuple of names."""
    if isinstance(dims, str):
        raise TypeError(
            f"dims must be a tuple of names, got the string {dims!r} (write ({dims!r},))"
        )
    if not isinstance(dims, Sequence):
        raise TypeError(f"dims must be a tuple of names, got {type(dims).__name__}")
    out = tuple(check_name(d, "dimension name in dims") for d in dims)
    if len(set(out)) != len(out):
        raise ValueError(f"dims {out} repeats a dimension")
    return out


def fsync_path(path: Path) -> None:
    """Fsync a file or directory; directories that refuse it (some platforms) are skipped."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


def variable_attrs(units: Any, long_name: Any) -> dict[str, Any]:
    """Return the ``units``/``long_name`` attributes that are given."""
    attrs = {}
    if check_text(units, "units") is not None:
        attrs["units"] = units
    if check_text(long_name, "long_name") is not None:
        attrs["long_name"] = long_name
    return attrs


@dataclass
class Static:
    """A static variable (or coordinate): dims, host data, attributes, and whether strings."""

    dims: tuple[str, ...]
    data: np.ndarray
    attrs: dict[str, Any]
    is_string: bool = False


class Series:
    """One entry per record, in a buffer that doubles when full."""

    def __init__(
        self, dims: tuple[str, ...], shape: tuple[int, ...], dtype: np.dtype, attrs: dict[str, Any]
    ) -> None:
        self.dims = dims
        self.shape = shape
        self.dtype = dtype
        self.attrs = attrs
        self.fill = default_fill(dtype)
        self.n = 0
        self._buf = np.full((8, *shape), self.fill, dtype=dtype)

    def resize(self, n: int) -> None:
        """Make the series ``n`` records long: cut, or pad with the fill value."""
        if n > self._buf.shape[0]:
            grown = np.full((max(n, 2 * self._buf.shape[0]), *self.shape), self.fill, self.dtype)
            grown[: self.n] = self._buf[: self.n]
            self._buf = grown
        if n < self.n:
            self._buf[n : self.n] = self.fill
        self.n = n

    def append(self, value: np.ndarray | None) -> None:
        """Add one record (``None``: the fill value)."""
        self.resize(self.n + 1)
        if value is not None:
            self._buf[self.n - 1] = value

    @property
    def data(self) -> np.ndarray:
        """The records so far, shape ``(n, *shape)``."""
        return self._buf[: self.n]


def remove_stale_tmp(path: Path) -> None:
    """Remove the files ``<name>.tmp-<digits>`` that killed writers of ``path`` left behind."""
    name = path.name
    for stale in path.parent.glob(f"{glob_escape(name)}.tmp-*"):
        if stale.name[len(name) + 5 :].isdigit() and stale.is_file():
            logger.info("removing stale temporary file %s", stale)
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


@contextlib.contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Give a temporary path to write; on success fsync it and rename it over ``path``.

    The temporary file is ``<name>.tmp-<pid>`` in the directory of ``path``. If the body
    raises, the temporary file is removed and ``path`` is untouched.
    """
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(path.parent)
