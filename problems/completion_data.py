"""Sparse tensors for completion experiments: a synthetic generator, TensorLy's IL2, files.

- :func:`synthetic_completion`: a nonlinear function of a random low-rank CP tensor plus
  Gaussian noise, observed at a random fraction (default 4 %) of its cells, uniformly or with
  Zipf-skewed entity popularity;
- :func:`il2_tensor`: TensorLy's bundled IL-2 signaling tensor (13 ligands x 4 times x 12
  doses x 8 cell types) with its 192 naturally missing (NaN) cells left unobserved;
- :func:`load_tensor`: a tab-separated (``.tensor``, ``.tsv``, ``.txt``) or HDF5 (``.h5``,
  ``.hdf5``) file (:mod:`tensorsim.io.sparse`).

References
----------
arXiv 2108.10248 (DAIN; synthetic and file-based benchmarks). TensorLy's
``tensorly.datasets.load_IL2data`` (Tan et al., Cell Systems 2021).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tensorsim.io.sparse import SparseTensor, read_hdf5, read_tsv, sparse_tensor

__all__ = [
    "SyntheticCompletion",
    "il2_tensor",
    "load_tensor",
    "shape_for",
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
    """TensorLy's IL-2 tensor: its observed cells and the indices of its missing cells.

    Returns
    -------
    tensor : SparseTensor
        The non-NaN cells of the ``(13, 4, 12, 8)`` tensor (ligands, times, doses, cells).
    missing : numpy.ndarray
        ``(n_missing, 4)`` indices of the NaN cells (192 in tensorly 0.10).

    Raises
    ------
    ImportError
        If tensorly is not installed (the ``bench`` extra).
    """
    from tensorly.datasets import load_IL2data

    dense = np.asarray(load_IL2data().tensor, dtype=np.float64)
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
