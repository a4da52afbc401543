"""Small helpers shared by the writer and the checkpoint reader: names, attributes, dtypes.

NumPy-only by design: everything here prepares host arrays and plain values for a
netCDF4-compatible HDF5 file (written through h5netcdf) and turns what is read back into
plain Python values. Nothing here imports h5py, h5netcdf or xarray.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from tensorsim._array_api import to_numpy

__all__ = [
    "NC_INT_FILL",
    "attr_from_file",
    "check_name",
    "check_text",
    "decode_array",
    "default_fill",
    "encode_array",
    "normalize_attrs",
    "series_dtype",
    "static_values",
]

logger = logging.getLogger(__name__)

#: The netCDF default fill values of the integer types (``NC_FILL_BYTE`` ... ``NC_FILL_UINT64``
#: in ``netcdf.h``). Integer series use them for records that did not give a value.
NC_INT_FILL: dict[np.dtype, int] = {
    np.dtype("int8"): -127,
    np.dtype("uint8"): 255,
    np.dtype("int16"): -32767,
    np.dtype("uint16"): 65535,
    np.dtype("int32"): -2147483647,
    np.dtype("uint32"): 4294967295,
    np.dtype("int64"): -9223372036854775806,
    np.dtype("uint64"): 18446744073709551614,
}

#: Numeric dtypes that netCDF-4 stores natively.
_NC_NUMERIC = frozenset(NC_INT_FILL) | {np.dtype("float32"), np.dtype("float64")}


def check_name(name: Any, what: str) -> str:
    """Return ``name`` if it can name a netCDF dimension, variable, group or attribute.

    Parameters
    ----------
    name
        The candidate name.
    what
        What the name is for (used in the error message), e.g. ``"series name"``.

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is empty, contains ``/`` or starts with a character other than a
        letter, a digit or ``_`` (the netCDF naming rule).
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    if not name or "/" in name or not (name[0].isalnum() or name[0] == "_"):
        raise ValueError(
            f"{what} {name!r} is not a valid netCDF name: it must be non-empty, contain no '/' "
            "and start with a letter, a digit or '_'"
        )
    return name


def check_text(value: Any, what: str) -> str | None:
    """Return ``value`` if it is ``None`` or a string (``units``, ``long_name``, ...).

    Raises
    ------
    TypeError
        If ``value`` is neither ``None`` nor a string.
    """
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{what} must be a str or None, got {type(value).__name__}")
    return value


def _attr_value(value: Any, what: str) -> Any:
    """Convert one attribute value to something netCDF stores (see :func:`normalize_attrs`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return np.int8(bool(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, np.generic) and np.dtype(value.dtype) in _NC_NUMERIC:
        return value
    if isinstance(value, list | tuple | np.ndarray):
        arr = np.asarray(value)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.int8)
        if arr.dtype.kind == "U" and arr.ndim == 1:
            return [str(v) for v in arr]
        if arr.ndim == 1 and arr.dtype in _NC_NUMERIC:
            return arr
    raise TypeError(
        f"{what} must be a str, bool, int, float, NumPy real scalar or 1-D sequence of "
        f"numbers, got {type(value).__name__}"
    )


def normalize_attrs(
    attrs: Mapping[str, Any] | None, argname: str, *, reserved: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Validate attributes and convert them to values that netCDF stores.

    netCDF has no boolean type: ``bool`` values become ``int8`` 0/1.

    Parameters
    ----------
    attrs
        Mapping from attribute name to value, or ``None`` for no attributes.
    argname
        Name of the argument, for error messages.
    reserved
        Names that the caller manages itself and that ``attrs`` must not use.

    Returns
    -------
    dict
        A new dict with converted values.

    Raises
    ------
    TypeError
        If ``attrs`` is not a mapping or a value has an unsupported type.
    ValueError
        If a name is invalid or reserved.
    """
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise TypeError(f"{argname} must be a mapping or None, got {type(attrs).__name__}")
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        check_name(key, f"{argname} key")
        if key in reserved:
            raise ValueError(
                f"{argname} key {key!r} is reserved (managed by tensorsim.io: {sorted(reserved)})"
            )
        out[key] = _attr_value(value, f"{argname}[{key!r}]")
    return out


def attr_from_file(value: Any) -> Any:
    """Turn an attribute value read from a file into a plain Python value.

    NumPy scalars become ``int``/``float``, bytes become ``str``, 1-D arrays become lists.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [attr_from_file(v) for v in value.ravel()]
    if isinstance(value, list):
        return [attr_from_file(v) for v in value]
    return value


def default_fill(dtype: np.dtype) -> Any:
    """Return the fill value of a ``dtype`` series: NaN for floats, netCDF's default for ints.

    String series (dtype object) are filled with the empty string.
    """
    if dtype.kind == "O":
        return ""
    if dtype.kind == "f":
        return dtype.type(np.nan)
    return dtype.type(NC_INT_FILL[dtype])


def series_dtype(dtype: Any) -> np.dtype:
    """Return the NumPy dtype of a series, checking that netCDF stores it natively.

    Raises
    ------
    TypeError
        If ``dtype`` is not a dtype, or is complex, bool, half precision or not numeric.
    """
    if dtype is str or dtype == "str":
        return np.dtype(object)
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be a NumPy dtype or its name, got {dtype!r}") from err
    if dt not in _NC_NUMERIC:
        raise TypeError(
            f"dtype {dt} is not supported for a series: use float32, float64 or an integer "
            "type, or str for labels (netCDF has no complex or bool type; store real and "
            "imaginary parts, or 0/1 as int8, in separate series)"
        )
    return dt


def _is_string_list(values: Any) -> bool:
    if isinstance(values, list | tuple):
        return len(values) > 0 and all(isinstance(v, str) for v in values)
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "U":
            return True
        if values.dtype.kind == "O" and values.size > 0:
            return all(isinstance(v, str) for v in values.flat)
    return False


def static_values(values: Any, argname: str) -> tuple[np.ndarray, dict[str, Any], bool]:
    """Convert the values of a static coordinate or variable for writing.

    Parameters
    ----------
    values
        A NumPy/torch/array-API array, a Python scalar or (nested) list of numbers, or a list
        (or NumPy string array) of Python strings.
    argname
        Name of the argument, for error messages.

    Returns
    -------
    data : numpy.ndarray
        A host copy. Strings come back as an ``object`` array of ``str``; booleans as ``int8``.
    attrs : dict
        Extra attributes: ``{"dtype": "bool"}`` for booleans (xarray decodes it back to bool).
    is_string : bool
        Whether the values are strings (stored as variable-length strings).

    Raises
    ------
    TypeError
        If the values are complex, half precision, or of a type netCDF cannot hold.
    """
    if _is_string_list(values):
        src = np.asarray(values, dtype=object)
        data = np.empty(src.shape, dtype=object)
        for index, item in np.ndenumerate(src):
            data[index] = str(item)
        return data, {}, True
    try:
        data = np.array(to_numpy(values), copy=True)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{argname}: cannot convert {type(values).__name__} to an array") from err
    if data.dtype == np.bool_:
        return data.astype(np.int8), {"dtype": "bool"}, False
    if data.dtype not in _NC_NUMERIC:
        raise TypeError(
            f"{argname} has dtype {data.dtype}, which netCDF cannot store: use float32, "
            "float64, an integer or bool type, or a list of str"
        )
    return data, {}, False


def encode_array(value: Any, what: str) -> tuple[np.ndarray, dict[str, Any], bool]:
    """Convert one checkpoint array to a real netCDF array plus the attributes to restore it.

    Complex arrays get a trailing dimension of size 2 (real, imaginary) and ``complex=1``;
    bool arrays become ``int8`` with ``dtype="bool"``; ``float16`` becomes ``float32`` with
    ``dtype="float16"``. All of these round-trip bit for bit through :func:`decode_array`.

    Parameters
    ----------
    value
        A NumPy/torch/CuPy/array-API array or a Python scalar.
    what
        Where the value sits in the state (e.g. ``"state['nodes']['3']"``), for errors.

    Returns
    -------
    data : numpy.ndarray
        The array to write.
    attrs : dict
        Attributes that :func:`decode_array` needs.
    is_complex : bool
        Whether a trailing dimension of size 2 was added.

    Raises
    ------
    TypeError
        If the value is not an array of a numeric or bool dtype.
    """
    if isinstance(value, str | bytes) or value is None:
        raise TypeError(
            f"{what} must be an array or a number, got {type(value).__name__} "
            "(put strings into the checkpoint's attrs)"
        )
    try:
        arr = np.asarray(to_numpy(value))
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{what}: cannot convert {type(value).__name__} to an array") from err
    if arr.dtype == np.bool_:
        return arr.astype(np.int8), {"dtype": "bool"}, False
    if arr.dtype == np.float16:
        return arr.astype(np.float32), {"dtype": "float16"}, False
    if arr.dtype.kind == "c":
        if arr.dtype.itemsize not in (8, 16):
            raise TypeError(f"{what} has dtype {arr.dtype}: only complex64/complex128 are stored")
        return np.stack([arr.real, arr.imag], axis=-1), {"complex": np.int8(1)}, True
    if arr.dtype not in _NC_NUMERIC:
        raise TypeError(
            f"{what} has dtype {arr.dtype}, which cannot be checkpointed: use a float, "
            "complex, integer or bool dtype"
        )
    return np.array(arr, copy=True), {}, False


def decode_array(data: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    """Invert :func:`encode_array`: restore complex, bool and float16 arrays.

    Raises
    ------
    ValueError
        If an array marked complex does not end in a dimension of size 2.
    """
    if int(attrs.get("complex", 0)) == 1:
        if data.ndim == 0 or data.shape[-1] != 2:
            raise ValueError(f"array marked complex has shape {data.shape}, expected (..., 2)")
        ctype = np.complex64 if data.dtype == np.float32 else np.complex128
        out = np.empty(data.shape[:-1], dtype=ctype)
        out.real = data[..., 0]
        out.imag = data[..., 1]
        return out
    kind = attrs.get("dtype")
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind == "bool":
        return data.astype(np.bool_)
    if kind == "float16":
        return data.astype(np.float16)
    return data
