"""The output writer of every tensorsim run: monitoring series, static data and checkpoints.

A :class:`Writer` produces one self-describing, netCDF4-compatible HDF5 file (written
through h5netcdf), so ``xarray.open_dataset(path, engine="h5netcdf")`` opens it:

- an UNLIMITED record dimension (``time``, ``step`` or ``epoch``) with its coordinate;
- static coordinates with their own dimension (grid points, sites, parameter values, also
  lists of strings such as case names) and static variables over them;
- series: variables with one entry per record, over ``(record_dim, *dims)``;
- ``units``/``long_name`` attributes where given;
- root attributes ``tensorsim_version``, ``git_commit``, ``created`` (ISO 8601, UTC),
  ``config`` (the resolved TOML text), ``mpi_size``, ``versions`` (Python and the versions
  of the installed numerical packages), ``finished`` (``int8`` 0 or 1: netCDF has no bool
  type; 1 only after :meth:`Writer.close` of a run that ended well), plus the user's attrs;
- the group ``/state`` with the latest checkpoint (see :mod:`tensorsim.io.checkpoint`).

Crash safety
------------
The writer never modifies its output file in place. It keeps the series, the static data
and the latest checkpoint in memory, and every :meth:`~Writer.flush`,
:meth:`~Writer.checkpoint` and :meth:`~Writer.close` writes the complete file to a temporary
file ``<name>.tmp-<pid>`` in the same directory, flushes and fsyncs it, and renames it over
the target with :func:`os.replace` (then fsyncs the directory). A crash or ``SIGKILL`` at any
instant therefore leaves either the previous complete file or the new one, never a broken
one. Records appended after the last write are lost in a crash; since every checkpoint
writes the file, a file's series always reach at least the record of its checkpoint, and
:meth:`Writer.resume` cuts them back to exactly that record. A temporary file left by a
killed writer is removed when the next writer for the same path starts (stale files
``<name>.tmp-<digits>`` of that path only).

Rewriting the whole file is cheap for what the writer is for: monitoring series (energies,
norms, ranks, errors per step) and a checkpoint of the solver state. Series that are bulk
data (a correlation matrix or a field per record) are defined with ``bulk=True``: they go to
set files of ``records_per_file`` records each, written once when full, and only the set
being filled is rewritten with the file, so the cost of a record stays flat however long
the run (:mod:`tensorsim.io.bulk`, with the same crash guarantees). :func:`open_run` joins
them with the rest.

MPI
---
Pass ``comm`` (an mpi4py communicator or any object with ``rank`` and ``size``). Only rank 0
touches the file system; on every other rank each method returns at once without checking
its arguments, so gather the values onto rank 0 before calling.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from tensorsim._array_api import to_numpy
from tensorsim.io._ncutil import (
    check_name,
    check_text,
    normalize_attrs,
    series_dtype,
    static_values,
)
from tensorsim.io._support import (
    Series,
    Static,
    atomic_target,
    check_dims,
    git_commit,
    output_path,
    package_version,
    remove_stale_tmp,
    require_io,
    variable_attrs,
    versions_string,
)
from tensorsim.io.bulk import (
    BULK_GROUP,
    BulkSeries,
    record_array,
    remove_sets,
    write_series_variable,
)
from tensorsim.io.checkpoint import Checkpoint, StateEntry, flatten_state, read_state, write_state
from tensorsim.parallel import rank_and_size

__all__ = ["Writer"]

logger = logging.getLogger(__name__)

#: Root attributes that the writer manages; user ``attrs`` may not use these names.
MANAGED_ATTRS = frozenset(
    {"tensorsim_version", "git_commit", "created", "config", "mpi_size", "finished", "versions"}
)


class Writer:
    """Write the monitoring series, static data and checkpoints of one run to one file.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (``.nc`` or ``.h5``). Its directory must exist. An existing file is
        replaced (use :meth:`resume` to continue a run). Stale temporary files
        ``<name>.tmp-<pid>`` of this path, left by a killed writer, are removed.
    record_dim : str, default "time"
        Name of the unlimited record dimension and of its coordinate.
    record_units : str, optional
        ``units`` of the record coordinate.
    comm : optional
        An mpi4py communicator or any object with ``rank`` and ``size``; ``None`` means
        serial. Only rank 0 writes; on other ranks every method is a no-op.
    config : str, default ""
        The fully resolved TOML text of the run, stored as root attribute ``config``.
    attrs : Mapping, optional
        Further root attributes (str, int, float, bool as 0/1, or 1-D sequences of numbers).
        The managed names (``finished``, ``config``, ...) are not allowed.
    records_per_file : int, optional
        Records per set file of the bulk series (``define_series(..., bulk=True)``);
        default: as many as make 16 MiB of bulk data.

    Raises
    ------
    TypeError, ValueError
        If an argument has the wrong type or value.
    FileNotFoundError
        If the directory of ``path`` does not exist.

    Notes
    -----
    The file is written at once (with no records), and again by every :meth:`flush`,
    :meth:`checkpoint` and :meth:`close`, each time atomically (see the module docstring).
    :meth:`append` only adds to memory.

    Examples
    --------
    >>> with Writer("run.nc", record_units="s", config=toml_text) as out:  # doctest: +SKIP
    ...     out.set_coordinate("x", grid, units="m")
    ...     out.define_series("energy", units="J")
    ...     out.define_series("density", ("x",))
    ...     for step in range(100):
    ...         out.append(t, energy=e, density=rho)
    ...         if step % 10 == 0:
    ...             out.checkpoint({"nodes": tensors}, attrs={"step": step})
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        record_dim: str = "time",
        record_units: str | None = None,
        comm: Any = None,
        config: str = "",
        attrs: Mapping[str, Any] | None = None,
        records_per_file: int | None = None,
    ) -> None:
        self._setup(path, record_dim, record_units, comm, config, attrs, records_per_file)
        if self._active:
            self._start()

    # ------------------------------------------------------------------ set-up

    def _setup(
        self,
        path: Any,
        record_dim: Any,
        record_units: Any,
        comm: Any,
        config: Any,
        attrs: Mapping[str, Any] | None,
        records_per_file: Any = None,
    ) -> None:
        """Validate the arguments and set the in-memory contents (no file system access)."""
        rank, size = rank_and_size(comm)
        self._active = rank == 0
        self._closed = False
        self._mpi_size = size
        if not self._active:
            return
        require_io()
        self._path = output_path(path)
        self._record_dim = check_name(record_dim, "record_dim")
        self._record_units = check_text(record_units, "record_units")
        if not isinstance(config, str):
            raise TypeError(f"config must be the TOML text (str), got {type(config).__name__}")
        self._user_attrs = normalize_attrs(attrs, "attrs", reserved=MANAGED_ATTRS)
        if records_per_file is not None and (
            isinstance(records_per_file, bool)
            or not isinstance(records_per_file, int | np.integer)
            or records_per_file < 1
        ):
            raise ValueError(
                f"records_per_file must be a positive int or None, got {records_per_file!r}"
            )
        self._meta: dict[str, Any] = {
            "tensorsim_version": package_version("tensorsim") or "unknown",
            "git_commit": git_commit(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": config,
            "versions": versions_string(),
        }
        self._finished = False
        self._dims: dict[str, int] = {}
        self._coords: dict[str, Static] = {}
        self._vars: dict[str, Static] = {}
        self._series: dict[str, Series] = {}
        self._records: list[int | float] = []
        self._state: tuple[dict[str, StateEntry], list[str], dict[str, Any], int] | None = None
        self._bulk = BulkSeries(
            self._path,
            self._record_dim,
            self._record_units,
            self._coords,
            self._meta,
            None if records_per_file is None else int(records_per_file),
        )

    def _start(self) -> None:
        """Write the file; remove stale temporary files and the set files it does not keep.

        The set files go after the file is written: the old file may still count on them.
        """
        remove_stale_tmp(self._path)
        self._write()
        remove_sets(self._path, self._bulk.first // self._bulk.records_per_file)

    def _usable(self) -> bool:
        """Return whether this rank writes; raise if the writer was closed."""
        if not self._active:
            return False
        if self._closed:
            raise ValueError(f"the Writer of {self._path} is closed")
        return True

    def _check_free(self, name: str, *, allow: tuple[str, ...] = ()) -> None:
        """Raise if ``name`` is already used by something other than the kinds in ``allow``."""
        kinds = {
            "record dimension": {self._record_dim},
            "coordinate": self._coords,
            "dimension": self._dims.keys() - self._coords.keys(),
            "variable": self._vars,
            "series": self._series.keys() | self._bulk.series.keys(),
        }
        for kind, names in kinds.items():
            if name in names and kind not in allow:
                raise ValueError(f"name {name!r} is already used by a {kind}")

    def _known_dims(self, dims: tuple[str, ...]) -> tuple[int, ...]:
        """Return the sizes of ``dims``, each of which must be a known static dimension."""
        for d in dims:
            if d == self._record_dim:
                raise ValueError(
                    f"dims must not contain the record dimension {d!r}: it is added by "
                    "define_series"
                )
            if d not in self._dims:
                raise ValueError(
                    f"unknown dimension {d!r} in dims; known: {sorted(self._dims)} "
                    "(define it with set_coordinate or set_dimension first)"
                )
        return tuple(self._dims[d] for d in dims)

    # ------------------------------------------------------------ static data

    @property
    def path(self) -> Path | None:
        """The output file (``None`` on ranks other than 0)."""
        return self._path if self._active else None

    @property
    def record_dim(self) -> str | None:
        """Name of the record dimension (``None`` on ranks other than 0)."""
        return self._record_dim if self._active else None

    @property
    def n_records(self) -> int:
        """Number of records appended so far (0 on ranks other than 0)."""
        return len(self._records) if self._active else 0

    def set_dimension(self, name: str, size: int) -> None:
        """Declare a static dimension without coordinate values (e.g. an index of sites).

        Parameters
        ----------
        name : str
            Dimension name.
        size : int
            Its length, at least 1. A known dimension keeps its size: declaring it again
            with another size raises.

        Raises
        ------
        TypeError, ValueError
            If the name or size is invalid or conflicts with what is defined.
        """
        if not self._usable():
            return
        check_name(name, "dimension name")
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise TypeError(f"size must be an int, got {type(size).__name__}")
        if size < 1:
            raise ValueError(f"size of dimension {name!r} must be at least 1, got {size}")
        self._check_free(name, allow=("dimension", "coordinate"))
        if name in self._dims and self._dims[name] != size:
            raise ValueError(
                f"dimension {name!r} already has size {self._dims[name]}, cannot make it {size}"
            )
        self._dims[name] = int(size)

    def set_coordinate(
        self,
        name: str,
        values: Any,
        *,
        units: str | None = None,
        long_name: str | None = None,
    ) -> None:
        """Store a static 1-D coordinate with its own dimension of the same name.

        Parameters
        ----------
        name : str
            Name of the coordinate and of its dimension.
        values : array_like or list of str
            At least one value: a 1-D array (any backend) or a list of Python strings
            (stored as variable-length strings; xarray reads them back as ``str``).
        units, long_name : str, optional
            Attributes of the coordinate.

        Raises
        ------
        TypeError, ValueError
            If ``values`` is not 1-D and non-empty, has an unsupported dtype, or its length
            differs from an existing dimension of that name.
        """
        if not self._usable():
            return
        check_name(name, "coordinate name")
        attrs = variable_attrs(units, long_name)
        data, extra, is_string = static_values(values, f"values of coordinate {name!r}")
        if data.ndim != 1 or data.shape[0] < 1:
            raise ValueError(
                f"values of coordinate {name!r} must be 1-D and non-empty, got shape {data.shape}"
            )
        self._check_free(name, allow=("dimension", "coordinate"))
        if name in self._dims and self._dims[name] != data.shape[0]:
            raise ValueError(
                f"values of coordinate {name!r} have length {data.shape[0]}, but dimension "
                f"{name!r} has size {self._dims[name]}"
            )
        self._dims[name] = data.shape[0]
        self._coords[name] = Static((name,), data, {**extra, **attrs}, is_string)

    def set_variable(
        self,
        name: str,
        dims: tuple[str, ...],
        values: Any,
        *,
        units: str | None = None,
        long_name: str | None = None,
    ) -> None:
        """Store a static variable over known dimensions (setting it again replaces it).

        Parameters
        ----------
        name : str
            Variable name.
        dims : tuple of str
            Its dimensions, each defined before by :meth:`set_coordinate` or
            :meth:`set_dimension`; ``()`` for a scalar.
        values : array_like or list of str
            Array (any backend; bool is stored as int8 that xarray decodes back to bool),
            Python scalar, or strings. Its shape must be the sizes of ``dims``.
        units, long_name : str, optional
            Attributes of the variable.

        Raises
        ------
        TypeError, ValueError
            If a dimension is unknown, the shape does not match, the dtype is unsupported
            (e.g. complex) or the name is taken.
        """
        if not self._usable():
            return
        check_name(name, "variable name")
        dims = check_dims(dims)
        attrs = variable_attrs(units, long_name)
        shape = self._known_dims(dims)
        data, extra, is_string = static_values(values, f"values of variable {name!r}")
        if data.shape != shape:
            raise ValueError(
                f"values of variable {name!r} have shape {data.shape}, expected {shape} "
                f"for dims {dims}"
            )
        self._check_free(name, allow=("variable",))
        self._vars[name] = Static(dims, data, {**extra, **attrs}, is_string)

    # ---------------------------------------------------------------- series

    def define_series(
        self,
        name: str,
        dims: tuple[str, ...] = (),
        *,
        dtype: Any = "float64",
        units: str | None = None,
        long_name: str | None = None,
        bulk: bool = False,
    ) -> None:
        """Define a variable that gets one entry per record, over ``(record_dim, *dims)``.

        A series may be defined after records were appended: the earlier records hold its
        fill value. The fill value (also for records that do not give this series) is NaN
        for float series and netCDF's default fill for integer series (e.g. -2147483647 for
        int32, see ``tensorsim.io._ncutil.NC_INT_FILL``). It is stored as ``_FillValue`` when
        the series has a missing entry, and xarray then shows missing entries as NaN (so it
        decodes such an integer series to float; pass ``mask_and_scale=False`` to xarray to
        get the raw integers). A complete integer series stays integer.

        Parameters
        ----------
        name : str
            Series name.
        dims : tuple of str, default ()
            Dimensions of one entry, each defined before by :meth:`set_coordinate` or
            :meth:`set_dimension`; ``()`` for one number per record.
        dtype : str or numpy.dtype, default "float64"
            float32, float64 or an integer type (netCDF has no complex or bool type), or
            ``str`` for a label per record (variable-length UTF-8, filled with ``""``;
            only with ``dims=()``).
        units, long_name : str, optional
            Attributes of the series.
        bulk : bool, default False
            Store the series in set files that are written once (:mod:`tensorsim.io.bulk`):
            for large entries (matrices, fields) over long runs. Numeric only, and defined
            before the first record.

        Raises
        ------
        TypeError, ValueError
            If the name is taken, a dimension is unknown or the dtype is unsupported, or a
            bulk series is a str series or comes after the first record.
        """
        if not self._usable():
            return
        check_name(name, "series name")
        dims = check_dims(dims)
        attrs = variable_attrs(units, long_name)
        shape = self._known_dims(dims)
        dt = series_dtype(dtype)
        if dt.kind == "O" and dims:
            raise ValueError(f"series {name!r}: a str series holds one label per record (dims=())")
        self._check_free(name)
        series = Series(dims, shape, dt, attrs)
        if bulk:
            if dt.kind == "O":
                raise ValueError(f"series {name!r}: a bulk series is numeric, not str")
            if self._records:
                raise ValueError(
                    f"series {name!r}: define bulk series before the first record "
                    f"({len(self._records)} appended)"
                )
            self._bulk.define(name, series)
            return
        series.resize(len(self._records))
        self._series[name] = series

    def _record_value(self, record: Any) -> int | float:
        """Return the record coordinate value as a Python int or float."""
        if isinstance(record, bool | np.bool_):
            raise TypeError("record must be a real number (the record coordinate), got a bool")
        try:
            arr = np.asarray(to_numpy(record))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                "record must be a real number (the record coordinate), "
                f"got {type(record).__name__}"
            ) from err
        if arr.ndim != 0 or arr.dtype.kind not in "iuf":
            raise TypeError(
                f"record must be a real scalar (the record coordinate), got {arr.dtype} "
                f"array of shape {arr.shape}"
            )
        return arr.item()

    def _series_value(self, name: str, value: Any) -> np.ndarray | None:
        """Convert and check the value of series ``name`` for one record."""
        if value is None:
            return None
        series = self._series.get(name) or self._bulk.series[name]
        if series.dtype.kind == "O":
            if not isinstance(value, str):
                raise TypeError(
                    f"value of series {name!r}: expected a str label, got {type(value).__name__}"
                )
            return value  # stored as is in the object buffer
        try:
            arr = np.asarray(to_numpy(value))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"value of series {name!r}: cannot convert {type(value).__name__} to an array"
            ) from err
        if arr.shape != series.shape:
            raise ValueError(
                f"value of series {name!r} has shape {arr.shape}, expected {series.shape} "
                f"(dims {series.dims})"
            )
        if arr.dtype == np.bool_ or not np.can_cast(arr.dtype, series.dtype, "same_kind"):
            raise TypeError(
                f"value of series {name!r} has dtype {arr.dtype}, which does not convert to "
                f"the series dtype {series.dtype}"
            )
        out = arr.astype(series.dtype)
        if series.dtype.kind in "iu" and not np.array_equal(out, arr):
            raise ValueError(f"value of series {name!r} does not fit its dtype {series.dtype}")
        return out

    def append(self, record: Any, /, **values: Any) -> None:
        """Add one record: the record coordinate value and values of defined series.

        Only memory changes (:meth:`flush`, :meth:`checkpoint` or :meth:`close` write), except
        that a record which fills a set of the bulk series writes that set's file.

        Parameters
        ----------
        record : int or float
            Value of the record coordinate (time, step, epoch). A scalar of any backend.
        **values
            One value per series: an array of any backend or a Python scalar, of the
            series' shape. A series not given (or given as ``None``) gets its fill value.

        Raises
        ------
        ValueError
            If a name is not a defined series, or a shape does not match.
        TypeError
            If ``record`` is not a real scalar, or a value does not convert to its series'
            dtype (e.g. complex into a float series).
        """
        if not self._usable():
            return
        defined = self._series.keys() | self._bulk.series.keys()
        unknown = sorted(set(values) - defined)
        if unknown:
            raise ValueError(
                f"unknown series {unknown} in append; defined series: {sorted(defined)} "
                "(use define_series first)"
            )
        rec = self._record_value(record)
        converted = {name: self._series_value(name, v) for name, v in values.items()}
        self._records.append(rec)
        for name, series in self._series.items():
            series.append(converted.get(name))
        if self._bulk.series:
            self._bulk.append(rec, converted)

    # ------------------------------------------------------------- checkpoints

    def checkpoint(self, state: Mapping[str, Any], attrs: Mapping[str, Any] | None = None) -> None:
        """Store the checkpoint of the current record and write the file atomically.

        The checkpoint replaces the previous one. It records the number of records appended
        so far (attribute ``record``), so a restart continues with the next record.

        Parameters
        ----------
        state : Mapping
            Nested mapping of names (str, or int such as node ids) to arrays of any backend
            or to further mappings; nested mappings become groups below ``/state``. Complex
            arrays are stored as real arrays with a trailing dimension of size 2 and
            attribute ``complex=1``; bool arrays as int8 with attribute ``dtype="bool"``.
            The arrays are copied, so the caller may change them afterwards.
        attrs : Mapping, optional
            Scalar or string attributes of the checkpoint (e.g. step, time, rng seed).
            ``record`` is reserved.

        Raises
        ------
        TypeError
            If ``state`` is not a mapping, or holds something other than numeric arrays.
        ValueError
            If a key is invalid.
        """
        if not self._usable():
            return
        entries, groups = flatten_state(state)
        checked = normalize_attrs(attrs, "attrs", reserved=frozenset({"record"}))
        self._state = (entries, groups, checked, len(self._records))
        self._write()

    def flush(self) -> None:
        """Write the complete file now (atomically), with ``finished = 0``."""
        if not self._usable():
            return
        self._write()

    def close(self, *, finished: bool = True) -> None:
        """Write the file a last time and close the writer.

        Parameters
        ----------
        finished : bool, default True
            Value of the root attribute ``finished`` (stored as int8 1 or 0). Pass False
            when the run stopped on an error. Closing twice does nothing.
        """
        if not self._active or self._closed:
            return
        self._finished = bool(finished)
        self._write()
        self._closed = True

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(finished=exc_type is None)

    # ---------------------------------------------------------------- writing

    def _root_attrs(self) -> dict[str, Any]:
        """Return the root attributes, managed ones first."""
        meta = self._meta
        return {
            "tensorsim_version": meta["tensorsim_version"],
            "git_commit": meta["git_commit"],
            "created": meta["created"],
            "config": meta["config"],
            "mpi_size": np.int64(self._mpi_size),
            "finished": np.int8(1 if self._finished else 0),
            "versions": meta["versions"],
            **self._user_attrs,
        }

    def _write(self) -> None:
        """Write the whole file to ``<name>.tmp-<pid>``, fsync it and rename it over ``path``."""
        import h5netcdf

        start = time.perf_counter()
        with atomic_target(self._path) as tmp, h5netcdf.File(tmp, "w") as root:
            self._fill(root)
        logger.debug(
            "wrote %s (%d records) in %.3f s",
            self._path,
            len(self._records),
            time.perf_counter() - start,
        )

    def _fill(self, root: Any) -> None:
        """Write the whole contents into the open, empty h5netcdf file ``root``."""
        import h5py

        for key, value in self._root_attrs().items():
            root.attrs[key] = value
        root.dimensions[self._record_dim] = None
        for dim, size in self._dims.items():
            root.dimensions[dim] = size
        n = len(self._records)
        if n:
            root.resize_dimension(self._record_dim, n)
        records = record_array(self._records)
        var = root.create_variable(
            self._record_dim, (self._record_dim,), dtype=records.dtype, data=records
        )
        if self._record_units is not None:
            var.attrs["units"] = self._record_units
        for name, static in [*self._coords.items(), *self._vars.items()]:
            dtype = h5py.string_dtype("utf-8") if static.is_string else static.data.dtype
            var = root.create_variable(name, static.dims, dtype=dtype, data=static.data)
            for key, value in static.attrs.items():
                var.attrs[key] = value
        for name, series in self._series.items():
            write_series_variable(root, name, self._record_dim, series)
        if self._bulk.series:
            self._bulk.write_group(root)
        if self._state is not None:
            entries, groups, attrs, record = self._state
            write_state(root, entries, groups, attrs, record)

    # ---------------------------------------------------------------- restart

    @classmethod
    def resume(
        cls, path: str | os.PathLike[str], *, comm: Any = None
    ) -> tuple[Writer, Checkpoint | None]:
        """Continue a run from its file: load everything and cut the series at the checkpoint.

        Coordinates, dimensions, static variables, series, root attributes (``created``,
        ``config``, versions and user attributes are kept; ``mpi_size`` is updated) and the
        checkpoint are loaded. The series keep the records that the checkpoint covers and
        lose any later ones (they are produced again after the restart); a file without a
        checkpoint keeps no records, since the run restarts from its beginning. Bulk series
        keep their set files before the checkpoint's set; the later ones are removed. Later
        :meth:`append` calls continue the series. ``finished`` is 0 until :meth:`close`.
        The file is rewritten at once in this state.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :class:`Writer`.
        comm : optional
            As for :class:`Writer`. On ranks other than 0 nothing is read and the
            checkpoint returned is ``None``: broadcast it from rank 0.

        Returns
        -------
        writer : Writer
            The writer, ready to append.
        checkpoint : Checkpoint or None
            The checkpoint to restart from, or ``None`` if the file has none.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file was not written by :class:`Writer` (no single unlimited record
            dimension, or a checkpoint beyond the series).
        """
        writer = cls.__new__(cls)
        rank, _ = rank_and_size(comm)
        if rank != 0:
            writer._setup(path, "time", None, comm, "", None)
            return writer, None
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
        import h5netcdf

        with h5netcdf.File(path, "r") as root:
            checkpoint = writer._load(root, path, comm)
        writer._start()
        logger.info(
            "resumed %s at record %d (%s)",
            writer._path,
            len(writer._records),
            "from its checkpoint" if checkpoint is not None else "no checkpoint",
        )
        return writer, checkpoint

    def _load(self, root: Any, path: Any, comm: Any) -> Checkpoint | None:
        """Set up this writer from the open file ``root``; return its checkpoint."""
        unlimited = [d for d, dim in root.dimensions.items() if dim.isunlimited()]
        if len(unlimited) != 1 or unlimited[0] not in root.variables:
            raise ValueError(
                f"{path} was not written by tensorsim.io.Writer: expected one unlimited record "
                f"dimension with its coordinate, found {unlimited}"
            )
        record_dim = unlimited[0]
        rec_var = root.variables[record_dim]
        found = read_state(root)
        n_file = root.dimensions[record_dim].size
        keep = found[0].record if found is not None else 0
        if keep > n_file:
            raise ValueError(
                f"{path}: the checkpoint covers {keep} records but the file has only {n_file}"
            )
        file_attrs = dict(root.attrs)
        user = {k: v for k, v in file_attrs.items() if k not in MANAGED_ATTRS}
        config = file_attrs.get("config", "")
        self._setup(
            path,
            record_dim,
            rec_var.attrs.get("units"),
            comm,
            config.decode() if isinstance(config, bytes) else str(config),
            None,
        )
        self._user_attrs = user
        commit = self._meta["git_commit"]
        for key in ("tensorsim_version", "git_commit", "created", "versions"):
            if key in file_attrs:
                self._meta[key] = str(file_attrs[key])
        if commit != self._meta["git_commit"]:
            logger.warning(
                "resuming %s at git commit %s; the run was started at %s",
                path,
                commit,
                self._meta["git_commit"],
            )
        self._records = np.asarray(rec_var[...])[:keep].tolist()
        for dim, obj in root.dimensions.items():
            if dim != record_dim:
                self._dims[dim] = obj.size
        for name, var in root.variables.items():
            if name == record_dim:
                continue
            dims = tuple(var.dimensions)
            attrs = {k: v for k, v in var.attrs.items() if k != "_FillValue"}
            data = np.asarray(var[...])
            if record_dim in dims:
                if dims[0] != record_dim:
                    raise ValueError(f"{path}: variable {name!r} has the record dimension inside")
                if data.dtype.kind in "OS":
                    data = _decode_strings(data)
                series = Series(dims[1:], data.shape[1:], data.dtype, attrs)
                series.resize(keep)
                series.data[...] = data[:keep]
                self._series[name] = series
                continue
            is_string = data.dtype.kind in "OS"
            if is_string:
                data = _decode_strings(data)
            static = Static(dims, data, attrs, is_string)
            if dims == (name,):
                self._coords[name] = static
            else:
                self._vars[name] = static
        if BULK_GROUP in root.groups:
            self._bulk.load(root, keep)
        if found is None:
            return None
        checkpoint, entries, groups = found
        attrs = normalize_attrs(checkpoint.attrs, f"checkpoint attributes in {path}")
        self._state = (entries, groups, attrs, keep)
        return checkpoint


def _decode_strings(data: np.ndarray) -> np.ndarray:
    """Return an object array of ``str`` from the bytes or strings h5py read."""
    out = np.empty(data.shape, dtype=object)
    for index, item in np.ndenumerate(data):
        out[index] = item.decode("utf-8") if isinstance(item, bytes) else str(item)
    return out
