"""Bulk series: records rotated into set files, so that the cost per record stays flat.

A monitoring series (an energy per step) is small, and :class:`tensorsim.io.Writer` rewrites
the whole file at every flush. A bulk series (a correlation matrix or a field per record)
is not: rewriting all of its records at every checkpoint makes a long run quadratic. The
writer therefore keeps a bulk series in *sets* of ``records_per_file`` records each, after
the file sets of Dedalus (arXiv 1905.10388):

- a full set is written once, atomically, as the file ``<stem>_bulk/<stem>_s<NNNNN>.nc``
  next to the output file ``<stem>.nc`` (set ``n`` holds the records
  ``n * records_per_file`` to ``(n + 1) * records_per_file - 1``), as soon as its last
  record is appended, and is not touched again;
- the records of the set being filled live in memory and in the group ``/bulk`` of the
  output file, which every flush and checkpoint rewrites (at most ``records_per_file``
  records, so the cost of a flush does not grow with the run).

Every set file is a self-describing netCDF file (the record coordinate, the coordinates of
the series' dimensions, the writer's provenance attributes plus ``source``, ``set_index``
and ``first_record``), so ``xarray.open_dataset`` opens any one of them alone;
:func:`tensorsim.io.open_run` joins the sets and the group into one ``xarray.Dataset`` with
the monitoring series. The group's attributes ``records_per_file`` and ``first_record`` say
which set files belong to the run (sets ``0 .. first_record / records_per_file - 1``), so a
set file left behind by a crash beyond those is never read.

Crash safety: each file is replaced atomically (:func:`tensorsim.io._support.atomic_target`),
and a set file is written before any output file that counts on it, so after ``SIGKILL`` at
any instant the output file and the set files it names are complete. A restart
(:meth:`tensorsim.io.Writer.resume`) takes the records of the set its checkpoint falls in
from the group or from that set's file, and removes the set files from that set on, which
the continued run writes again record for record.

NumPy-only here apart from the h5py/h5netcdf calls on open files; no import at module level.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import numpy as np

from tensorsim.io._support import Series, Static, atomic_target

__all__ = [
    "BULK_GROUP",
    "TARGET_FILE_BYTES",
    "BulkSeries",
    "read_bulk",
    "record_array",
    "remove_sets",
    "set_directory",
    "set_path",
    "write_series_variable",
]

logger = logging.getLogger(__name__)

#: Group of the output file with the records of the set being filled.
BULK_GROUP = "bulk"

#: Size of the bulk records of one set when ``records_per_file`` is not given (16 MiB).
TARGET_FILE_BYTES = 16 * 2**20


def set_directory(path: Path) -> Path:
    """The directory ``<stem>_bulk`` of the set files of output file ``path``."""
    return path.with_name(f"{path.stem}_bulk")


def set_path(path: Path, index: int) -> Path:
    """The set file ``<stem>_bulk/<stem>_s<NNNNN>.nc`` number ``index`` of ``path``."""
    return set_directory(path) / f"{path.stem}_s{index:05d}.nc"


def _set_files(path: Path) -> list[tuple[int, Path]]:
    """The set files of ``path`` present on disk, as ``(index, file)`` in index order."""
    directory = set_directory(path)
    prefix = f"{path.stem}_s"
    found = []
    for file in directory.glob(f"{glob_escape(prefix)}*.nc"):
        digits = file.name[len(prefix) : -len(".nc")]
        if digits.isdigit():
            found.append((int(digits), file))
    return sorted(found)


def remove_sets(path: Path, first: int = 0) -> None:
    """Remove the set files of ``path`` with index ``first`` or higher (and stale temporaries)."""
    for index, file in _set_files(path):
        if index >= first:
            logger.debug("removing set file %s", file)
            file.unlink(missing_ok=True)
    directory = set_directory(path)
    for stale in directory.glob(f"{glob_escape(path.stem)}_s*.nc.tmp-*"):
        stale.unlink(missing_ok=True)


def record_array(records: list[int | float]) -> np.ndarray:
    """The record coordinate: int64 when every value is an int, else float64."""
    ints = bool(records) and all(isinstance(r, int) for r in records)
    return np.asarray(records, dtype=np.int64 if ints else np.float64)


def write_series_variable(group: Any, name: str, record_dim: str, series: Series) -> None:
    """Create the variable of ``series`` (its records so far) in the open h5netcdf ``group``.

    An integer series with no missing entry gets no ``_FillValue``, so that xarray keeps it
    integer instead of decoding it to float with NaN; a str series is variable-length UTF-8.
    """
    import h5py

    if series.dtype.kind == "O":
        var = group.create_variable(
            name, (record_dim,), dtype=h5py.string_dtype("utf-8"), data=series.data
        )
    else:
        missing = series.dtype.kind == "f" or bool(np.any(series.data == series.fill))
        var = group.create_variable(
            name,
            (record_dim, *series.dims),
            dtype=series.dtype,
            data=series.data,
            fillvalue=series.fill if missing else None,
        )
    for key, value in series.attrs.items():
        var.attrs[key] = value


class BulkSeries:
    """The bulk series of one writer: the set being filled in memory, full sets in files.

    Parameters
    ----------
    path
        The writer's output file.
    record_dim, record_units
        The record dimension and the units of its coordinate.
    coords
        The writer's static coordinates (shared, not copied): the set files carry those of
        the bulk series' dimensions.
    meta
        The writer's provenance attributes (shared), copied into every set file.
    records_per_file
        Records per set; ``None``: as many as fit :data:`TARGET_FILE_BYTES`, fixed at the
        first record.
    """

    def __init__(
        self,
        path: Path,
        record_dim: str,
        record_units: str | None,
        coords: Mapping[str, Static],
        meta: Mapping[str, Any],
        records_per_file: int | None,
    ) -> None:
        self._path = path
        self._record_dim = record_dim
        self._record_units = record_units
        self._coords = coords
        self._meta = meta
        self._per_file = records_per_file
        self.series: dict[str, Series] = {}
        self.records: list[int | float] = []
        self.first = 0

    @property
    def records_per_file(self) -> int:
        """Records per set file (from the sizes of the series until it is fixed)."""
        if self._per_file is not None:
            return self._per_file
        per_record = sum(s.dtype.itemsize * math.prod(s.shape) for s in self.series.values())
        return max(1, TARGET_FILE_BYTES // max(per_record, 1))

    def define(self, name: str, series: Series) -> None:
        """Add a bulk series (before the first record)."""
        self.series[name] = series

    def append(self, record: int | float, values: Mapping[str, np.ndarray | None]) -> None:
        """Add one record; a set that becomes full is written to its file at once."""
        self._per_file = self.records_per_file
        self.records.append(record)
        for name, series in self.series.items():
            series.append(values.get(name))
        if len(self.records) == self._per_file:
            self._write_set()
            self.first += self._per_file
            self.records = []
            for series in self.series.values():
                series.resize(0)

    def _write_set(self) -> None:
        """Write the full set in memory to its file, atomically."""
        import h5netcdf

        index = self.first // self.records_per_file
        target = set_path(self._path, index)
        target.parent.mkdir(exist_ok=True)
        dims = {d for s in self.series.values() for d in s.dims}
        with atomic_target(target) as tmp, h5netcdf.File(tmp, "w") as root:
            for key in ("tensorsim_version", "git_commit", "created"):
                root.attrs[key] = self._meta[key]
            root.attrs["source"] = self._path.name
            root.attrs["set_index"] = np.int64(index)
            root.attrs["first_record"] = np.int64(self.first)
            for dim in sorted(dims):
                root.dimensions[dim] = next(
                    s.shape[s.dims.index(dim)] for s in self.series.values() if dim in s.dims
                )
                if dim in self._coords:
                    static = self._coords[dim]
                    var = root.create_variable(dim, (dim,), data=static.data)
                    for key, value in static.attrs.items():
                        var.attrs[key] = value
            self._write_records(root)
        logger.debug("wrote set file %s (records from %d)", target, self.first)

    def _write_records(self, group: Any) -> None:
        """The record dimension, its coordinate and the series of the set in memory."""
        group.dimensions[self._record_dim] = None
        if self.records:
            group.resize_dimension(self._record_dim, len(self.records))
        rec = group.create_variable(
            self._record_dim, (self._record_dim,), data=record_array(self.records)
        )
        if self._record_units is not None:
            rec.attrs["units"] = self._record_units
        for name, series in self.series.items():
            write_series_variable(group, name, self._record_dim, series)

    def write_group(self, root: Any) -> None:
        """Write the group ``/bulk`` (the set being filled) into the open output file."""
        group = root.create_group(BULK_GROUP)
        group.attrs["records_per_file"] = np.int64(self.records_per_file)
        group.attrs["first_record"] = np.int64(self.first)
        group.attrs["directory"] = set_directory(self._path).name
        self._write_records(group)

    def load(self, root: Any, keep: int) -> None:
        """Set up from the output file ``root`` (open), cut back to its first ``keep`` records.

        The records of the set that record ``keep`` falls in come from the group when it
        still holds that set, else from the set's file. Raises ``ValueError`` if a set file
        the run needs is missing.
        """
        group = root.groups[BULK_GROUP]
        self._per_file = int(group.attrs["records_per_file"])
        index = keep // self._per_file
        self.first = index * self._per_file
        for index_before in range(index):
            if not set_path(self._path, index_before).is_file():
                raise ValueError(
                    f"{self._path}: the bulk set file {set_path(self._path, index_before)} "
                    f"is missing (records from {index_before * self._per_file})"
                )
        count = keep - self.first
        source = group
        if count and int(group.attrs["first_record"]) != self.first:
            import h5netcdf

            file = set_path(self._path, index)
            if not file.is_file():
                raise ValueError(f"{self._path}: the bulk set file {file} is missing")
            source = h5netcdf.File(file, "r")
        try:
            self.records = np.asarray(source.variables[self._record_dim][...])[:count].tolist()
            for name, var in group.variables.items():
                if name == self._record_dim:
                    continue
                attrs = {k: v for k, v in var.attrs.items() if k != "_FillValue"}
                series = Series(tuple(var.dimensions[1:]), var.shape[1:], var.dtype, attrs)
                series.resize(count)
                if count:
                    series.data[...] = np.asarray(source.variables[name][:count])
                self.series[name] = series
        finally:
            if source is not group:
                source.close()


def read_bulk(path: Path, record_dim: str, n_records: int) -> dict[str, Any]:
    """The bulk series of output file ``path``, every set joined, over its ``n_records`` records.

    Each piece (set file, then the group ``/bulk``) is decoded by xarray as a user opening
    it alone would see it.

    Returns
    -------
    dict of str to xarray.Variable
        Series name -> its variable, record dimension first; empty if the file has no
        bulk series.

    Raises
    ------
    FileNotFoundError
        If a set file the output file names is missing.
    """
    import h5netcdf
    import xarray

    with h5netcdf.File(path, "r") as root:
        if BULK_GROUP not in root.groups:
            return {}
    group = xarray.load_dataset(path, engine="h5netcdf", group=BULK_GROUP)
    per_file = int(group.attrs["records_per_file"])
    first = int(group.attrs["first_record"])
    pieces = []
    for index in range(first // per_file):
        file = set_path(path, index)
        if not file.is_file():
            raise FileNotFoundError(f"{path}: its bulk set file {file} is missing")
        pieces.append(xarray.load_dataset(file, engine="h5netcdf"))
    pieces.append(group)
    return {
        name: xarray.Variable.concat([piece[name].variable for piece in pieces], record_dim)[
            :n_records
        ]
        for name in group.data_vars
    }
