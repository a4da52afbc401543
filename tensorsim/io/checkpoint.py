"""Checkpoints in tensorsim output files, and reading a run back.

A checkpoint is the group ``/state`` of a file written by :class:`tensorsim.io.Writer`:
nested groups of arrays (one netCDF variable per array, each with its own named dimensions)
plus scalar or string attributes, and the attribute ``record``, the number of records of the
file's series that the checkpoint covers. netCDF has no complex or bool type, so complex
arrays are stored as real arrays with a trailing dimension of size 2 (real, imaginary) and
the attribute ``complex = 1``, and bool arrays as ``int8`` with ``dtype = "bool"``.
:func:`read_checkpoint` restores both bit for bit. No Python objects are pickled.

:func:`open_run` gives the whole run: the root group as an in-memory ``xarray.Dataset``
plus the checkpoint.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tensorsim.io._ncutil import attr_from_file, check_name, decode_array, encode_array
from tensorsim.io._support import require_io

if TYPE_CHECKING:
    import xarray

__all__ = ["Checkpoint", "open_run", "read_checkpoint"]

logger = logging.getLogger(__name__)

#: Name of the checkpoint group in the root of the file.
STATE_GROUP = "state"


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A checkpoint read back from a tensorsim output file.

    Parameters
    ----------
    arrays : dict of str to numpy.ndarray
        The state's arrays, keyed by their path below ``/state``: a nested mapping
        ``{"nodes": {3: a}}`` comes back as ``{"nodes/3": a}``. Complex, bool and float16
        arrays have their original dtype.
    attrs : dict of str to Any
        The checkpoint's attributes as plain Python values (``int``, ``float``, ``str`` or
        lists of them; ``bool`` values were stored, and come back, as 0/1).
    record : int
        The number of records of the file's series that this checkpoint covers: a restart
        continues with record index ``record``.

    Notes
    -----
    Instances compare by identity (``==`` on dicts of arrays would be ambiguous); compare
    ``arrays`` entry by entry.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    record: int = 0


class StateEntry(NamedTuple):
    """One encoded checkpoint array: what is written, and the attributes that decode it."""

    data: np.ndarray
    attrs: dict[str, Any]
    is_complex: bool


def _dim_names(name: str, ndim: int) -> tuple[str, ...]:
    """Return the dimension names of checkpoint variable ``name`` with ``ndim`` axes."""
    return tuple(f"{name}_dim{i}" for i in range(ndim))


def flatten_state(state: Any) -> tuple[dict[str, StateEntry], list[str]]:
    """Validate a (nested) state mapping and encode its arrays.

    Parameters
    ----------
    state
        Mapping from names to arrays or to further mappings. Keys are strings or ints
        (ints are written as their decimal string, e.g. node ids).

    Returns
    -------
    entries : dict of str to StateEntry
        Encoded arrays by path (``"nodes/3"``).
    groups : list of str
        Paths of all nested groups, parents first.

    Raises
    ------
    TypeError
        If ``state`` (or a nested value) is not a mapping of arrays.
    ValueError
        If a key is invalid, appears twice, or clashes with a generated dimension name.
    """
    if not isinstance(state, Mapping):
        raise TypeError(
            f"state must be a mapping of names to arrays (or nested mappings), "
            f"got {type(state).__name__}"
        )
    entries: dict[str, StateEntry] = {}
    groups: list[str] = []

    def walk(mapping: Mapping[Any, Any], prefix: str) -> None:
        where = f"state[{prefix!r}]" if prefix else "state"
        names: dict[str, Any] = {}
        for key, value in mapping.items():
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(key)
            name = check_name(key, f"key of {where}")
            if name in names:
                raise ValueError(f"key {name!r} appears twice in {where}")
            names[name] = value
        taken = set(names)
        for name, value in names.items():
            path = f"{prefix}/{name}" if prefix else name
            if isinstance(value, Mapping):
                groups.append(path)
                walk(value, path)
                continue
            entry = StateEntry(*encode_array(value, f"state[{path!r}]"))
            clash = taken.intersection(_dim_names(name, entry.data.ndim))
            if clash:
                raise ValueError(
                    f"key {sorted(clash)[0]!r} in {where} clashes with a dimension name of "
                    f"{name!r}; rename it"
                )
            entries[path] = entry

    walk(state, "")
    return entries, groups


def write_state(
    root: Any,
    entries: Mapping[str, StateEntry],
    groups: list[str],
    attrs: Mapping[str, Any],
    record: int,
) -> None:
    """Write a checkpoint as group ``/state`` of an open, writable h5netcdf file.

    Parameters
    ----------
    root
        The open ``h5netcdf.File``.
    entries, groups
        As returned by :func:`flatten_state`.
    attrs
        Attributes already converted by :func:`tensorsim.io._ncutil.normalize_attrs`.
    record
        Number of records covered by the checkpoint.
    """
    top = root.create_group(STATE_GROUP)
    for key, value in attrs.items():
        top.attrs[key] = value
    top.attrs["record"] = np.int64(record)
    made = {"": top}
    for path in groups:
        parent, _, name = path.rpartition("/")
        made[path] = made[parent].create_group(name)
    for path, entry in entries.items():
        parent, _, name = path.rpartition("/")
        group = made[parent]
        dims = _dim_names(name, entry.data.ndim)
        for dim, size in zip(dims, entry.data.shape, strict=True):
            group.dimensions[dim] = size
        var = group.create_variable(name, dims, dtype=entry.data.dtype, data=entry.data)
        for key, value in entry.attrs.items():
            var.attrs[key] = value


def read_state(root: Any) -> tuple[Checkpoint, dict[str, StateEntry], list[str]] | None:
    """Read group ``/state`` of an open h5netcdf file.

    Returns
    -------
    tuple or None
        ``(checkpoint, entries, groups)``, where ``entries`` and ``groups`` are the encoded
        form (so a writer can write the checkpoint again unchanged), or ``None`` if the file
        has no checkpoint.

    Raises
    ------
    ValueError
        If the checkpoint lacks its ``record`` attribute.
    """
    if STATE_GROUP not in root.groups:
        return None
    top = root.groups[STATE_GROUP]
    attrs = {key: attr_from_file(value) for key, value in top.attrs.items()}
    if "record" not in attrs:
        raise ValueError(f"{root.filename}: checkpoint group /state has no 'record' attribute")
    record = int(attrs.pop("record"))
    entries: dict[str, StateEntry] = {}
    groups: list[str] = []

    def walk(group: Any, prefix: str) -> None:
        for name, var in group.variables.items():
            path = f"{prefix}/{name}" if prefix else name
            vattrs = {k: v for k, v in var.attrs.items() if k != "_FillValue"}
            is_complex = int(vattrs.get("complex", 0)) == 1
            entries[path] = StateEntry(np.asarray(var[...]), vattrs, is_complex)
        for name, sub in group.groups.items():
            path = f"{prefix}/{name}" if prefix else name
            groups.append(path)
            walk(sub, path)

    walk(top, "")
    arrays = {path: decode_array(e.data, e.attrs) for path, e in entries.items()}
    return Checkpoint(arrays=arrays, attrs=attrs, record=record), entries, groups


def _existing(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path, checking that it names an existing file."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    return p


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint | None:
    """Read the checkpoint of a tensorsim output file.

    Parameters
    ----------
    path
        The file written by :class:`tensorsim.io.Writer`.

    Returns
    -------
    Checkpoint or None
        The checkpoint, or ``None`` if the run has not written one.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the checkpoint group is malformed.
    """
    require_io()
    import h5netcdf

    p = _existing(path)
    with h5netcdf.File(p, "r") as root:
        found = read_state(root)
    return None if found is None else found[0]


def open_run(path: str | os.PathLike[str]) -> tuple[xarray.Dataset, Checkpoint | None]:
    """Open a tensorsim output file: its data as an xarray Dataset, plus its checkpoint.

    Parameters
    ----------
    path
        The file written by :class:`tensorsim.io.Writer`.

    Returns
    -------
    dataset : xarray.Dataset
        The root group, loaded into memory (the file is closed again): coordinates, static
        variables, the series over the record dimension, and the run's attributes; the bulk
        series (:mod:`tensorsim.io.bulk`) joined from their set files over the same records.
    checkpoint : Checkpoint or None
        As from :func:`read_checkpoint`.

    Raises
    ------
    FileNotFoundError
        If ``path`` or a bulk set file it names does not exist.
    """
    require_io(xarray=True)
    import xarray

    from tensorsim.io.bulk import read_bulk

    p = _existing(path)
    dataset = xarray.load_dataset(p, engine="h5netcdf")
    unlimited = list(dataset.encoding.get("unlimited_dims", ()))
    if len(unlimited) == 1:
        record_dim = unlimited[0]
        for name, variable in read_bulk(p, record_dim, dataset.sizes[record_dim]).items():
            dataset[name] = variable
    return dataset, read_checkpoint(p)
