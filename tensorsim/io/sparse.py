"""Sparse tensors given by their observed cells: checks, splits by seed, TSV and HDF5 files.

A :class:`SparseTensor` holds the multi-indices of its observed cells (``indices``,
``(nnz, d)`` int64, 0-based), their values (``values``, ``(nnz,)`` float64) and the shape of
the full tensor. Every cell appears at most once and every value is finite:
:func:`sparse_tensor` checks that, so that tensor-completion code downstream never meets a
duplicate, a NaN or an index out of range.

File formats:

- **tab-separated** (:func:`read_tsv`, :func:`write_tsv`): one observed cell per line,
  ``i_1 <TAB> ... <TAB> i_d <TAB> value``, 0-based integer indices, the format of the DAIN
  reference code (``srijankr/DAIN``, ``data/*.tensor``) and of many tensor-completion
  benchmarks. Blank lines and lines starting with ``#`` are skipped; the shape is one more
  than the largest index per mode unless given.
- **HDF5** (:func:`read_hdf5`, :func:`write_hdf5`): datasets ``indices`` and ``values`` and
  an attribute ``shape`` in one group (the root by default).

NumPy-only by design (host data for files and index bookkeeping); h5py is imported only by the
HDF5 functions.

References
----------
H. Oh, S. Kim, R. A. Rossi, S. Kumar, "Influence-guided Data Augmentation for Neural Tensor
Completion", CIKM 2021, arXiv 2108.10248 (file format and the 10 % / 20 % splits).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "Split",
    "SparseTensor",
    "cell_keys",
    "read_hdf5",
    "read_tsv",
    "sparse_tensor",
    "split_cells",
    "write_hdf5",
    "write_tsv",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SparseTensor:
    """Observed cells of a tensor: multi-indices, values and the full shape.

    Build it with :func:`sparse_tensor`, which checks the invariants below.

    Attributes
    ----------
    indices
        ``(nnz, d)`` int64 array, 0-based, each row a distinct cell inside ``shape``.
    values
        ``(nnz,)`` float64 array of finite values.
    shape
        Size of each mode of the full tensor.
    """

    indices: np.ndarray
    values: np.ndarray
    shape: tuple[int, ...]

    @property
    def nnz(self) -> int:
        """Number of observed cells."""
        return int(self.values.shape[0])

    @property
    def ndim(self) -> int:
        """Number of modes."""
        return len(self.shape)

    @property
    def density(self) -> float:
        """Observed fraction of the full tensor."""
        return self.nnz / math.prod(self.shape)

    def subset(self, rows: np.ndarray) -> SparseTensor:
        """The cells ``rows`` (an index array or boolean mask) as a new tensor, same shape."""
        return SparseTensor(self.indices[rows], self.values[rows], self.shape)

    def __len__(self) -> int:
        return self.nnz


def cell_keys(indices: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Row-major linear index (int64) of each cell, a unique key per cell.

    Raises
    ------
    ValueError
        If the tensor has more than ``2**63 - 1`` cells (keys would overflow).
    """
    if math.prod(int(s) for s in shape) >= 2**63:
        raise ValueError(f"shape: {tuple(shape)} has too many cells for int64 keys")
    return np.ravel_multi_index(tuple(np.asarray(indices, dtype=np.int64).T), tuple(shape))


def sparse_tensor(
    indices: Any,
    values: Any,
    shape: Sequence[int] | None = None,
    *,
    name: str = "tensor",
) -> SparseTensor:
    """Check observed cells and return them as a :class:`SparseTensor`.

    Parameters
    ----------
    indices
        ``(nnz, d)`` integer array-like (``d >= 1``), 0-based.
    values
        ``(nnz,)`` real array-like.
    shape
        Full shape; default one more than the largest index of each mode.
    name
        How the tensor is named in error messages.

    Returns
    -------
    SparseTensor
        With copies converted to int64 and float64.

    Raises
    ------
    TypeError
        If ``indices`` is not integer or ``values`` not real.
    ValueError
        If the tensor has no cell or no mode, a mode has size 0, the shapes disagree, an
        index is negative or out of ``shape``, a cell appears twice, or a value is NaN/Inf.
    """
    idx = np.asarray(indices)
    val = np.asarray(values)
    if idx.ndim != 2 or val.ndim != 1 or idx.shape[0] != val.shape[0]:
        raise ValueError(
            f"{name}: expected indices of shape (nnz, d) and values of shape (nnz,), got "
            f"{idx.shape} and {val.shape}"
        )
    if idx.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one mode, got indices with 0 columns")
    if idx.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one observed cell, got none")
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind == "f" and np.all(np.isfinite(idx)) and np.all(idx == np.round(idx)):
            idx = idx.astype(np.int64)
        else:
            raise TypeError(f"{name}: indices must be integers, got dtype {idx.dtype}")
    if val.dtype.kind not in "iuf":
        raise TypeError(f"{name}: values must be real numbers, got dtype {val.dtype}")
    idx = idx.astype(np.int64)
    val = val.astype(np.float64)
    bad = ~np.isfinite(val)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: values must be finite; {int(bad.sum())} are NaN/Inf (first at cell "
            f"{tuple(int(i) for i in idx[first])})"
        )
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    if lo.min() < 0:
        mode = int(np.argmin(lo))
        raise ValueError(f"{name}: negative index {int(lo[mode])} in mode {mode}")
    if shape is None:
        shape = tuple(int(h) + 1 for h in hi)
    else:
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError) as err:
            raise TypeError(f"shape: expected a sequence of integers, got {shape!r}") from err
        if len(shape) != idx.shape[1]:
            raise ValueError(
                f"shape: expected {idx.shape[1]} sizes (one per index column), got {shape}"
            )
        empty = [m for m, s in enumerate(shape) if s < 1]
        if empty:
            raise ValueError(f"shape: mode {empty[0]} is empty (size {shape[empty[0]]})")
        out = [m for m in range(len(shape)) if hi[m] >= shape[m]]
        if out:
            m = out[0]
            raise ValueError(
                f"{name}: index {int(hi[m])} out of range in mode {m} of size {shape[m]}"
            )
    keys = cell_keys(idx, shape)
    unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if unique.size != keys.size:
        k = int(np.flatnonzero(counts > 1)[0])
        cell = tuple(int(i) for i in idx[first[k]])
        raise ValueError(
            f"{name}: {keys.size - unique.size} duplicate cell(s); e.g. {cell} appears "
            f"{int(counts[k])} times"
        )
    return SparseTensor(idx, val, shape)


class Split(NamedTuple):
    """Train, validation and test cells of one tensor (disjoint, same shape)."""

    train: SparseTensor
    val: SparseTensor
    test: SparseTensor


def split_cells(
    tensor: SparseTensor, *, test: float = 0.1, val: float = 0.2, seed: int = 0
) -> Split:
    """Split the observed cells at random into train, validation and test, by seed.

    As in the DAIN reference code: ``test`` of the cells go to the test set, then ``val`` of
    the rest to validation, the remainder to training (rounded to whole cells, each part
    non-empty).

    Parameters
    ----------
    tensor
        The observed cells.
    test, val
        Fractions in ``(0, 1)``.
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives the same split.

    Returns
    -------
    Split

    Raises
    ------
    ValueError
        If a fraction is outside ``(0, 1)`` or a part would be empty.
    """
    if not isinstance(tensor, SparseTensor):
        raise TypeError(f"tensor: expected a SparseTensor, got {type(tensor).__name__}")
    for label, f in (("test", test), ("val", val)):
        if not (isinstance(f, int | float) and 0 < f < 1):
            raise ValueError(f"{label}: expected a fraction in (0, 1), got {f!r}")
    n = tensor.nnz
    n_test = round(test * n)
    n_val = round(val * (n - n_test))
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise ValueError(
            f"tensor: {n} cells are too few for non-empty parts with test={test}, val={val}"
        )
    order = np.random.default_rng(seed).permutation(n)
    parts = np.split(order, [n_test, n_test + n_val])
    t, v, tr = (np.sort(p) for p in parts)
    return Split(tensor.subset(tr), tensor.subset(v), tensor.subset(t))


def read_tsv(path: str | os.PathLike[str], shape: Sequence[int] | None = None) -> SparseTensor:
    """Read a tab-separated tensor file (``i_1 ... i_d value`` per line, 0-based).

    Raises
    ------
    ValueError
        If a line has a different number of fields than the first, an index is not an
        integer, or the cells fail :func:`sparse_tensor` (the message names the file).
    """
    p = Path(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    with p.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split("\t") if "\t" in text else text.split()
            if rows and len(fields) != len(rows[0]):
                raise ValueError(
                    f"{p}: line {number} has {len(fields)} fields, expected {len(rows[0])}"
                )
            rows.append(fields)
            lines.append(number)
    if not rows:
        raise ValueError(f"{p}: no cells")
    if len(rows[0]) < 2:
        raise ValueError(f"{p}: expected at least one index and a value per line")
    d = len(rows[0]) - 1
    idx = np.empty((len(rows), d), dtype=np.int64)
    val = np.empty(len(rows), dtype=np.float64)
    for k, fields in enumerate(rows):
        try:
            idx[k] = [int(s) for s in fields[:d]]
            val[k] = float(fields[d])
        except ValueError as err:
            raise ValueError(f"{p}: line {lines[k]}: {err}") from err
    return sparse_tensor(idx, val, shape, name=str(p))


def write_tsv(path: str | os.PathLike[str], tensor: SparseTensor) -> Path:
    """Write ``tensor`` as a tab-separated file (values with 17 significant digits)."""
    if not isinstance(tensor, SparseTensor):
        raise TypeError(f"tensor: expected a SparseTensor, got {type(tensor).__name__}")
    p = Path(path)
    data = np.column_stack([tensor.indices.astype(object), tensor.values.astype(object)])
    fmt = "\t".join(["%d"] * tensor.ndim + ["%.17g"])
    np.savetxt(p, data, fmt=fmt, delimiter="\t")
    return p


def write_hdf5(path: str | os.PathLike[str], tensor: SparseTensor, *, group: str = "/") -> Path:
    """Write ``tensor`` to HDF5: datasets ``indices``, ``values`` and attribute ``shape``.

    An existing file is opened for appending; the group's datasets are replaced.
    """
    import h5py

    if not isinstance(tensor, SparseTensor):
        raise TypeError(f"tensor: expected a SparseTensor, got {type(tensor).__name__}")
    p = Path(path)
    with h5py.File(p, "a") as f:
        g = f.require_group(group)
        for key in ("indices", "values"):
            if key in g:
                del g[key]
        g.create_dataset("indices", data=tensor.indices, compression="gzip")
        g.create_dataset("values", data=tensor.values, compression="gzip")
        g.attrs["shape"] = np.asarray(tensor.shape, dtype=np.int64)
    return p


def read_hdf5(path: str | os.PathLike[str], *, group: str = "/") -> SparseTensor:
    """Read a tensor written by :func:`write_hdf5` (and check it with :func:`sparse_tensor`).

    Raises
    ------
    ValueError
        If the group lacks ``indices``, ``values`` or ``shape``, or the cells are invalid.
    """
    import h5py

    p = Path(path)
    with h5py.File(p, "r") as f:
        if group not in f:
            raise ValueError(f"{p}: no group {group!r}")
        g = f[group]
        missing = [k for k in ("indices", "values") if k not in g]
        if missing or "shape" not in g.attrs:
            raise ValueError(f"{p}:{group}: expected datasets indices, values and attr shape")
        return sparse_tensor(
            g["indices"][()], g["values"][()], tuple(g.attrs["shape"]), name=f"{p}:{group}"
        )
