"""Synthetic test tensors with known structure: a smooth field plus noise.

Problems are declarative: this module builds data and imports neither MPI nor HDF5.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = ["smooth_field"]

logger = logging.getLogger(__name__)


def smooth_field(
    shape: Sequence[int], *, noise: float = 0.0, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """A smooth function on the grid ``[0, 1]^d`` plus Gaussian noise.

    ``f(x) = 1 / (0.2 + sum_i x_i) + 0.5 * exp(-|x - c|^2 / 0.02)`` with ``c`` the point
    ``(0.6, 0.4, 0.5, 0.5, ...)``. The first term has exponentially decaying ranks in
    every format; the Gaussian bump is rank one in CP but not aligned with a low Tucker
    or TT rank of the first term, so tolerances select different ranks per format.

    Parameters
    ----------
    shape
        Grid points per dimension (at least two dimensions, each at least 2 points).
    noise
        Standard deviation of the added noise relative to the RMS of the field.
    rng
        Generator or seed for the noise.

    Returns
    -------
    numpy.ndarray
        Float64 array of ``shape``.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2 or min(shape) < 2:
        raise ValueError(
            f"shape: expected at least 2 dimensions of at least 2 points, got {shape}"
        )
    if not noise >= 0:
        raise ValueError(f"noise: expected a value >= 0, got {noise}")
    grids = np.meshgrid(*[np.linspace(0.0, 1.0, n) for n in shape], indexing="ij")
    centre = [0.6, 0.4] + [0.5] * (len(shape) - 2)
    field = 1.0 / (0.2 + sum(grids))
    field += 0.5 * np.exp(-sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) / 0.02)
    if noise > 0:
        rms = np.sqrt(np.mean(field**2))
        field += noise * rms * np.random.default_rng(rng).standard_normal(shape)
    return field
