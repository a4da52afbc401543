"""Sparse tensors for completion experiments: a synthetic generator, TensorLy's IL2, files.

- :func:`synthetic_completion`: a nonlinear function of a random low-rank CP tensor plus
  Gaussian noise, observed at a random fraction (default 4 %) of its cells, uniformly or with
  Zipf-skewed entity popularity;
- :func:`il2_tensor`: the IL-2 signaling tensor bundled with TensorLy (13 ligands x 4 times
  x 12 doses x 8 cell types), shipped in ``data/il2.npz``, with its 192 naturally missing
  (NaN) cells left unobserved;
- :func:`load_tensor`: a tab-separated (``.tensor``, ``.tsv``, ``.txt``) or HDF5 (``.h5``,
  ``.hdf5``) file (:mod:`tensorsim.io.sparse`);
- :class:`DataParams` and :func:`load_data`: one of the three, optionally subsampled, with
  attributes describing it (the ``data`` table of ``drivers.dain``); :func:`sized_data`: the
  generator of a :class:`DataParams` on a cube holding a given number of observed cells.

References
----------
arXiv 2108.10248 (DAIN; synthetic and file-based benchmarks). The IL-2 tensor: B.
Orcutt-Jahns, P. C. Emmel, E. M. Snyder, C. Posner, S. M. Carlson, A. S. Meyer,
"Multivalency enhances the specificity of Fc-cytokine fusions", bioRxiv (2021), as bundled
by TensorLy (``tensorly.datasets.load_IL2data``; origin and licence in ``data/README.md``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from problems.shipped_data import load_arrays
from tensorsim.config import Params, param
from tensorsim.io.sparse import SparseTensor, read_hdf5, read_tsv, sparse_tensor

__all__ = [
    "GENERATOR_FIELDS",
    "DataParams",
    "SyntheticCompletion",
    "il2_tensor",
    "load_data",
    "load_tensor",
    "shape_for",
    "sized_data",
    "synthetic_completion",
    "synthetic_values",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SyntheticCompletion:
    """A generated completion problem.

    Attributes
    ----------
    tensor
        The observed (noisy) cells.
    factors
        The CP factors ``A_m`` (``(I_m, rank)``) of the latent tensor.
    noise
        Standard deviation of the added noise.
    """

    tensor: SparseTensor
    factors: tuple[np.ndarray, ...]
    noise: float

    def clean_values(self, indices: np.ndarray) -> np.ndarray:
        """Noise-free values at ``indices`` (``(n, d)``)."""
        return synthetic_values(self.factors, indices)


def synthetic_values(factors: Sequence[np.ndarray], indices: np.ndarray) -> np.ndarray:
    """``f(c) = t + t**2 / 2`` with ``t = tanh(c)`` of the normalised CP value ``c`` at the cells.

    ``c = sum_r prod_m A_m[i_m, r] / sqrt(rank)`` has unit variance for standard normal
    factors.
    """
    rank, d = factors[0].shape[1], len(factors)
    rows = np.ones((indices.shape[0], rank))
    for m, a in enumerate(factors):
        rows *= a[indices[:, m]]
    c = (rows.sum(axis=1) - rank * 0.5**d) / math.sqrt(rank * (3.0**-d - 4.0**-d))
    t = np.tanh(c)
    return t + 0.5 * t**2


def shape_for(n_cells: int, density: float, ndim: int = 3) -> tuple[int, ...]:
    """A cubic shape holding ``n_cells`` observed cells at about ``density``."""
    if not (isinstance(n_cells, int) and n_cells >= 1):
        raise ValueError(f"n_cells: expected a positive integer, got {n_cells!r}")
    if not 0 < density <= 1:
        raise ValueError(f"density: expected a fraction in (0, 1], got {density!r}")
    side = max(2, math.ceil((n_cells / density) ** (1.0 / ndim)))
    return (side,) * ndim


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as err:
        raise TypeError(f"shape: expected a sequence of integers, got {shape!r}") from err
    if len(out) < 2 or min(out) < 1:
        raise ValueError(f"shape: expected at least 2 non-empty modes, got {out}")
    return out


def _skewed_cells(
    shape: tuple[int, ...], n: int, skew: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` distinct cells, each mode's index drawn with Zipf popularity ``skew``."""
    probs = []
    for size in shape:
        p = (np.arange(size) + 1.0) ** -skew
        probs.append(rng.permutation(p / p.sum()))
    keys = np.empty(0, dtype=np.int64)
    for _ in range(1000):
        need = n - keys.size
        if need == 0:
            break
        cols = [rng.choice(s, size=2 * need + 16, p=p) for s, p in zip(shape, probs, strict=True)]
        new = np.ravel_multi_index(tuple(cols), shape)
        _, first = np.unique(new, return_index=True)
        new = new[np.sort(first)]
        new = new[~np.isin(new, keys)][:need]
        keys = np.concatenate([keys, new])
    if keys.size < n:
        raise ValueError(f"skew: {skew} too strong to find {n} distinct cells in {shape}")
    return np.stack(np.unravel_index(keys, shape), axis=1).astype(np.int64)


def synthetic_completion(
    shape: Sequence[int] = (60, 60, 60),
    *,
    rank: int = 4,
    density: float = 0.04,
    noise: float = 0.1,
    skew: float = 0.0,
    seed: int = 0,
) -> SyntheticCompletion:
    """A nonlinear function of a low-rank CP tensor plus noise, observed at random cells.

    Values are :func:`synthetic_values` (``tanh(c) + tanh(c)**2 / 2`` of the unit-variance CP value
    ``c`` with standard normal factors) plus ``N(0, noise**2)`` noise.

    Parameters
    ----------
    shape
        Full shape (at least 2 modes).
    rank
        CP rank of the latent tensor.
    density
        Observed fraction of the cells, in ``(0, 1]`` (2-5 % makes a learnable problem).
    noise
        Noise standard deviation (``>= 0``).
    skew
        Zipf exponent of entity popularity (0: every cell equally likely to be observed).
    seed
        Seed of factors, cells and noise.

    Raises
    ------
    ValueError
        On a bad shape, rank, density, noise or skew.
    """
    shape = _check_shape(shape)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank: expected a positive integer, got {rank!r}")
    if not (isinstance(density, int | float) and 0 < density <= 1):
        raise ValueError(f"density: expected a fraction in (0, 1], got {density!r}")
    if not (isinstance(noise, int | float) and noise >= 0):
        raise ValueError(f"noise: expected a number >= 0, got {noise!r}")
    if not (isinstance(skew, int | float) and skew >= 0):
        raise ValueError(f"skew: expected a number >= 0, got {skew!r}")
    rng = np.random.default_rng(seed)
    factors = tuple(rng.uniform(0.0, 1.0, (s, rank)) for s in shape)
    total = math.prod(shape)
    n = max(1, round(density * total))
    if skew == 0:
        keys = np.sort(rng.choice(total, size=n, replace=False))
        indices = np.stack(np.unravel_index(keys, shape), axis=1).astype(np.int64)
    else:
        indices = _skewed_cells(shape, n, float(skew), rng)
    values = synthetic_values(factors, indices) + noise * rng.standard_normal(n)
    return SyntheticCompletion(sparse_tensor(indices, values, shape), factors, float(noise))


def il2_tensor() -> tuple[SparseTensor, np.ndarray]:
    """The IL-2 tensor (``data/il2.npz``): its observed cells and the indices of its missing cells.

    The array is TensorLy's ``load_IL2data().tensor``, bit for bit (written by
    ``tools/make_data.py``); TensorLy is not needed at run time.

    Returns
    -------
    tensor : SparseTensor
        The non-NaN cells of the ``(13, 4, 12, 8)`` tensor (ligands, times, doses, cells).
    missing : numpy.ndarray
        ``(n_missing, 4)`` indices of the NaN cells (192).

    Raises
    ------
    FileNotFoundError
        If ``data/il2.npz`` is missing (regenerate it with ``python tools/make_data.py``).
    """
    dense = np.asarray(load_arrays("il2.npz", ("tensor",))["tensor"], dtype=np.float64)
    observed = np.isfinite(dense)
    indices = np.argwhere(observed).astype(np.int64)
    tensor = sparse_tensor(indices, dense[observed], dense.shape, name="IL2")
    return tensor, np.argwhere(~observed).astype(np.int64)


def load_tensor(path: str | os.PathLike[str], shape: Sequence[int] | None = None) -> SparseTensor:
    """Read a tensor file: HDF5 for ``.h5``/``.hdf5``, tab-separated otherwise."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path: no such file {p}")
    if p.suffix.lower() in (".h5", ".hdf5"):
        tensor = read_hdf5(p)
        if shape is not None and tuple(shape) != tensor.shape:
            raise ValueError(f"shape: {tuple(shape)} differs from the file's {tensor.shape}")
        return tensor
    return read_tsv(p, shape)


#: The fields of :class:`DataParams` that only the generator (``source = "synthetic"``) reads.
GENERATOR_FIELDS = ("shape", "rank", "density", "noise", "skew")


@dataclass(frozen=True)
class DataParams(Params):
    """The tensor of a completion experiment (:func:`load_data`).

    Attributes
    ----------
    source
        ``synthetic`` (:func:`synthetic_completion`), ``il2`` (:func:`il2_tensor`) or
        ``file`` (:func:`load_tensor`).
    path
        The tensor file (``source = "file"``): tab-separated, or HDF5 for ``.h5``.
    shape, rank, density, noise, skew
        Generator: full shape, CP rank of the latent tensor, observed fraction, noise
        standard deviation, Zipf exponent of entity popularity (0: uniform).
    seed
        Generator: seed of the tensor (the runs' seeds split it), and of ``subsample``.
    subsample
        Fraction of the observed cells kept (the others are dropped before the split and
        count as unobserved): IL-2 is 96 % observed, too dense to augment.
    test, val
        Test fraction of the cells, and validation fraction of the rest.
    """

    source: Literal["synthetic", "il2", "file"] = param("synthetic", "synthetic, il2 or file")
    path: str = param("", "tensor file (source = file)")
    shape: tuple[int, ...] = param((60, 60, 60), "generator: full shape", ge=1)
    rank: int = param(3, "generator: CP rank", ge=1)
    density: float = param(0.04, "generator: observed fraction", gt=0, le=1)
    noise: float = param(0.1, "generator: noise standard deviation", ge=0)
    skew: float = param(0.0, "generator: Zipf exponent of entity popularity", ge=0)
    seed: int = param(0, "generator: seed of the tensor", ge=0)
    subsample: float = param(1.0, "fraction of the observed cells kept", gt=0, le=1)
    test: float = param(0.1, "test fraction", gt=0, lt=1)
    val: float = param(0.2, "validation fraction of the non-test cells", gt=0, lt=1)

    def unused(self) -> dict[str, str]:
        """The fields that :func:`load_data` does not read with this ``source``, and why."""
        out = {}
        if self.source != "file":
            out["path"] = f"read with source = 'file' only, not {self.source!r}"
        if self.source != "synthetic":
            why = f"a generator setting, unused with source = {self.source!r}"
            out.update(dict.fromkeys(GENERATOR_FIELDS, why))
            if self.subsample == 1:
                out["seed"] = f"{why} and subsample = 1"
        return out


def load_data(data: DataParams) -> tuple[SparseTensor, dict[str, Any]]:
    """The observed cells of ``data`` and attributes describing them.

    The cells of ``source`` (generated with ``data.seed``, the IL-2 tensor, or a file) are
    kept with probability ``data.subsample`` (draws seeded by ``(data.seed, 1)``).

    Returns
    -------
    tensor : SparseTensor
        The observed cells.
    attrs : dict
        ``source``, ``subsample``, ``shape``, ``observed_cells``, ``density`` and per source
        ``noise``, ``latent_rank``, ``skew`` (generator), ``missing_cells`` (IL-2) or
        ``file``.
    """
    if not isinstance(data, DataParams):
        raise TypeError(f"data: expected DataParams, got {type(data).__name__}")
    if data.source == "synthetic":
        tensor = synthetic_completion(
            data.shape,
            rank=data.rank,
            density=data.density,
            noise=data.noise,
            skew=data.skew,
            seed=data.seed,
        ).tensor
        attrs: dict[str, Any] = {"noise": data.noise, "latent_rank": data.rank, "skew": data.skew}
    elif data.source == "il2":
        tensor, missing = il2_tensor()
        attrs = {"missing_cells": int(missing.shape[0])}
    else:
        tensor = load_tensor(data.path)
        attrs = {"file": data.path}
    if data.subsample < 1:
        keep = np.random.default_rng([data.seed, 1]).random(tensor.nnz) < data.subsample
        tensor = tensor.subset(keep)
    return tensor, {
        "source": data.source,
        "subsample": data.subsample,
        "shape": list(tensor.shape),
        "observed_cells": tensor.nnz,
        "density": tensor.density,
        **attrs,
    }


def sized_data(data: DataParams, n_cells: int, density: float) -> SparseTensor:
    """The generator of ``data`` on the cube of :func:`shape_for` with ``n_cells`` observed cells.

    :func:`synthetic_completion` with the rank, noise, skew and seed of ``data`` on the shape
    ``shape_for(n_cells, density)``, observed at the fraction ``n_cells / size`` (the shape and
    density of ``data`` are not used), so that exactly ``n_cells`` cells are observed.
    """
    if not isinstance(data, DataParams):
        raise TypeError(f"data: expected DataParams, got {type(data).__name__}")
    shape = shape_for(n_cells, density)
    return synthetic_completion(
        shape, rank=data.rank, density=n_cells / np.prod(shape), noise=data.noise,
        skew=data.skew, seed=data.seed,
    ).tensor  # fmt: skip
