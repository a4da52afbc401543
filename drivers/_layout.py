"""Output files declared: a :class:`Layout` of :class:`Var` and the writer it opens.

A driver says what its file holds — the record dimension, coordinates (with long names and
units), dimensions without coordinates, static variables, series and root attributes — and
:func:`new_writer` opens a :class:`tensorsim.io.Writer` with all of it defined (the resolved
configuration stored as the ``config`` attribute); :func:`write_records` writes a whole
sweep, one record per entry.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tensorsim.config import ConfigError, Params, config_to_toml

if TYPE_CHECKING:
    from tensorsim.io import Writer

__all__ = [
    "OVERWRITE",
    "RUNNING_DRIVER",
    "Layout",
    "Var",
    "check_output",
    "new_writer",
    "root_attributes",
    "write_records",
]

#: The driver running now (``"drivers.spin_chain"``), set by :class:`drivers._cli.Driver`:
#: :func:`new_writer` stores it as the root attribute ``driver`` of every file, so that
#: ``--restart`` and ``plot`` can tell a file of another driver.
RUNNING_DRIVER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "RUNNING_DRIVER", default=None
)

#: Whether :func:`check_output` may let a run replace a file that holds a finished run.
#: The command line sets it from ``--overwrite``; from Python (``main(argv)``) it is true.
OVERWRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("OVERWRITE", default=True)


def check_output(path: str | Path, comm: Any) -> Path:
    """Check, before any compute, that a run can write ``path``; return it as a Path.

    On rank 0: the directory is created if needed and must be writable, and an existing
    file holding a finished run (root attribute ``finished = 1``) is refused unless
    :data:`OVERWRITE` is set, so a finished result is never replaced by accident.

    Raises
    ------
    PermissionError
        If the directory cannot be created or written.
    ConfigError
        If ``path`` holds a finished run and overwriting was not asked for.
    """
    path = Path(path)
    if comm.rank != 0:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"output path {path}: cannot create {path.parent} ({err})") from err
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output path {path}: the directory {path.parent} is not writable")
    if path.is_dir():
        raise IsADirectoryError(f"output path {path} is a directory, expected a file name")
    if path.exists() and not OVERWRITE.get() and _finished(path):
        raise ConfigError(
            f"{path} holds a finished run: pass --overwrite to replace it, or choose another "
            "file with --set output.path=..."
        )
    return path


def root_attributes(path: Path) -> dict[str, Any] | None:
    """The root attributes of the HDF5 file ``path`` (strings decoded), None if unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as root:
            attrs = dict(root.attrs)
    except OSError:
        return None
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


def _finished(path: Path) -> bool:
    """Whether ``path`` is an output file of a finished run (unreadable files: no)."""
    flag = np.asarray((root_attributes(path) or {}).get("finished", 0)).ravel()
    return flag.size == 1 and int(flag[0]) == 1


@dataclass(frozen=True)
class Var:
    """One variable of an output file.

    Attributes
    ----------
    name
        Variable name.
    dims
        Its dimensions (a series gets the record dimension in front).
    dtype
        NumPy dtype name, or ``str`` for a label series.
    units, long_name
        CF attributes.
    bulk
        A series of large entries (matrices, fields) kept in set files written once
        (:mod:`tensorsim.io.bulk`), so that long runs stay linear in their length.
    """

    name: str
    dims: tuple[str, ...] = ()
    dtype: Any = "float64"
    units: str | None = None
    long_name: str = ""
    bulk: bool = False


@dataclass
class Layout:
    """What an output file holds.

    Attributes
    ----------
    record_dim
        The unlimited record dimension (``"time"``, ``"run"``, ``"setting"``, ...).
    series
        Variables with one entry per record.
    coords
        Static coordinates: name -> values, ``(values, long_name)`` or
        ``(values, long_name, units)``.
    dims
        Dimensions without a coordinate: name -> size.
    variables
        Static variables: ``(Var, values)`` pairs.
    attrs
        Root attributes.
    record_units
        Units of the record coordinate (``"1"`` for an index, None to leave it out).
    """

    record_dim: str
    series: Sequence[Var]
    coords: Mapping[str, Any] = field(default_factory=dict)
    dims: Mapping[str, int] = field(default_factory=dict)
    variables: Sequence[tuple[Var, Any]] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    record_units: str | None = None


def new_writer(path: str | Path, cfg: Params, comm: Any, layout: Layout) -> Writer:
    """Open a :class:`tensorsim.io.Writer` at ``path`` with every part of ``layout`` defined.

    The resolved configuration is stored as the ``config`` attribute and the running
    driver (:data:`RUNNING_DRIVER`) as ``driver``; rank 0 creates the directory.
    """
    from tensorsim.io import Writer

    path = Path(path)
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    out = Writer(
        path,
        record_dim=layout.record_dim,
        record_units=layout.record_units,
        comm=comm,
        config=config_to_toml(cfg),
        attrs={
            **({"driver": RUNNING_DRIVER.get()} if RUNNING_DRIVER.get() else {}),
            **layout.attrs,
        },
    )
    for name, entry in layout.coords.items():
        values, long_name, units = (
            (*entry, None)[:3] if isinstance(entry, tuple) else (entry, None, None)
        )
        out.set_coordinate(name, values, long_name=long_name, units=units)
    for name, size in layout.dims.items():
        out.set_dimension(name, size)
    for var, values in layout.variables:
        out.set_variable(var.name, var.dims, values, units=var.units, long_name=var.long_name)
    for var in layout.series:
        out.define_series(
            var.name,
            var.dims,
            dtype=var.dtype,
            units=var.units,
            long_name=var.long_name,
            bulk=var.bulk,
        )
    return out


def write_records(
    path: str | Path,
    cfg: Params,
    comm: Any,
    layout: Layout,
    records: Iterable[Mapping[str, Any]],
    *,
    state: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
) -> None:
    """Write a file of ``layout`` with one record per entry of ``records`` (at index 0, 1, ...).

    Each record maps the name of every series of ``layout`` to its value (other keys are
    ignored). ``state`` (arrays, attributes), if given, is stored as the file's ``/state``
    (e.g. trained models). The file is written as ``<path>.partial-<pid>`` and renamed to
    ``path`` once complete, so ``path`` holds its previous contents or the finished file,
    never a part. Collective in the sense of :class:`tensorsim.io.Writer`: only rank 0
    writes.
    """
    bulk = [var.name for var in layout.series if var.bulk]
    if bulk:
        raise ValueError(
            f"write_records writes one finished file; the bulk series {bulk} need a writer "
            "of their own (new_writer)"
        )
    path = Path(path)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    names = [var.name for var in layout.series]
    try:
        with new_writer(partial, cfg, comm, layout) as out:
            for i, record in enumerate(records):
                missing = [n for n in names if n not in record]
                if missing:
                    raise KeyError(f"record {i} has no value for the series {missing}")
                out.append(i, **{n: record[n] for n in names})
            if state is not None:
                out.checkpoint(*state)
        if comm.rank == 0:
            os.replace(partial, path)
    finally:
        if comm.rank == 0:
            partial.unlink(missing_ok=True)
