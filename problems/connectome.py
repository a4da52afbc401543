r"""Synthetic calcium traces with planted, epoch-dependent communities (arXiv 2402.14102).

The data of the dynamic functional connectome experiment (spec ``ntf-dain-fields.md``
section 3.4): neurons whose communities change from one epoch to the next, each community
driven by its own smooth latent signal, seen through a calcium-indicator filter
(:func:`make_dataset`, :func:`simulate_animal`). The planted partitions
(:func:`planted_partitions`) are the reference that the analysis of
:mod:`solvers.connectome` (differential affinities, NTF, communities per component) is
scored against by normalized mutual information.

NumPy-only by design; SciPy is imported inside the functions that use it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensorsim.config import Params, param

__all__ = [
    "ConnectomeData",
    "ConnectomeParams",
    "make_dataset",
    "planted_partitions",
    "simulate_animal",
]

logger = logging.getLogger(__name__)

Seed = np.random.Generator | int | None


@dataclass(frozen=True)
class ConnectomeParams(Params):
    """A synthetic population with planted, epoch-dependent communities.

    The ``n_steps`` time steps are split into ``len(blocks)`` epochs of (nearly) equal
    length. In epoch ``e`` the neurons form ``blocks[e]`` communities of (nearly) equal size,
    drawn at random for every epoch and shared by all animals. Every community has its own
    smooth latent driver (unit variance, correlation time ``timescale``); neuron ``i`` in
    community ``b`` has the activity ``gain * driver * z_b(t) + noise * e_i(t)`` with a
    private smooth fluctuation ``e_i`` and an animal gain ``gain ~ U(1 - gain_spread, 1)``.
    The calcium-like trace is the softplus of the activity passed through a first-order
    indicator filter with decay time ``decay`` (none for 0), plus white measurement noise of
    ``measurement_noise`` times the trace's standard deviation.

    Attributes
    ----------
    n_neurons
        Neurons per animal.
    n_animals
        Animals (the third mode of the affinity tensor).
    n_steps
        Time steps of each trace.
    blocks
        Number of planted communities in each epoch (one entry per epoch).
    driver
        Weight of the shared community driver.
    noise
        Weight of each neuron's private fluctuation.
    timescale
        Correlation time (Gaussian kernel width, in steps) of drivers and fluctuations.
    decay
        Decay time of the calcium indicator in steps (0: no indicator filter).
    measurement_noise
        Standard deviation of white measurement noise relative to the trace's.
    gain_spread
        Spread of the per-animal driver gains.
    """

    n_neurons: int = param(30, "neurons per animal", ge=2)
    n_animals: int = param(4, "animals", ge=1)
    n_steps: int = param(900, "time steps per trace", ge=3)
    blocks: tuple[int, ...] = param((3, 3, 5), "planted communities in each epoch", ge=1)
    driver: float = param(0.8, "weight of the shared community driver", ge=0.0)
    noise: float = param(0.3, "weight of the private fluctuations", ge=0.0)
    timescale: float = param(4.0, "correlation time of drivers and fluctuations (steps)", gt=0.0)
    decay: float = param(3.0, "calcium indicator decay time (steps; 0: none)", ge=0.0)
    measurement_noise: float = param(0.0, "white measurement noise / trace std", ge=0.0)
    gain_spread: float = param(0.3, "animal gains ~ U(1 - spread, 1)", ge=0.0, lt=1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.blocks:
            raise ValueError("blocks: expected at least one epoch, got an empty tuple")
        if max(self.blocks) > self.n_neurons:
            raise ValueError(
                f"blocks: expected at most n_neurons = {self.n_neurons} communities per "
                f"epoch, got {max(self.blocks)}"
            )
        if self.n_steps < 2 * len(self.blocks):
            raise ValueError(
                f"n_steps: expected at least 2 steps per epoch ({2 * len(self.blocks)} for "
                f"{len(self.blocks)} epochs), got {self.n_steps}"
            )

    @property
    def n_epochs(self) -> int:
        """Number of epochs."""
        return len(self.blocks)

    def epoch_bounds(self) -> np.ndarray:
        """First step of every epoch and ``n_steps`` at the end, shape ``(n_epochs + 1,)``."""
        return np.asarray(
            [e * self.n_steps // self.n_epochs for e in range(self.n_epochs + 1)], dtype=np.int64
        )


@dataclass(frozen=True)
class ConnectomeData:
    """One synthetic data set.

    Attributes
    ----------
    params
        What was drawn.
    traces
        Calcium-like traces, shape ``(n_animals, n_neurons, n_steps)``.
    partitions
        Planted community of every neuron in every epoch, shape ``(n_epochs, n_neurons)``.
    gains
        Driver gain of every animal, shape ``(n_animals,)``.
    """

    params: ConnectomeParams
    traces: np.ndarray
    partitions: np.ndarray
    gains: np.ndarray


def _check_params(params: Any) -> ConnectomeParams:
    if not isinstance(params, ConnectomeParams):
        raise TypeError(f"params: expected a ConnectomeParams, got {type(params).__name__}")
    return params


def planted_partitions(params: ConnectomeParams, rng: Seed = None) -> np.ndarray:
    """Draw the planted partition of every epoch: balanced communities in random order.

    Parameters
    ----------
    params
        The population; ``params.blocks[e]`` communities in epoch ``e``.
    rng
        Generator or seed.

    Returns
    -------
    numpy.ndarray
        Integer labels, shape ``(n_epochs, n_neurons)``; community sizes differ by at most 1.
    """
    p = _check_params(params)
    gen = np.random.default_rng(rng)
    out = np.empty((p.n_epochs, p.n_neurons), dtype=np.int64)
    for e, k in enumerate(p.blocks):
        out[e, gen.permutation(p.n_neurons)] = np.arange(p.n_neurons) * k // p.n_neurons
    return out


def _smooth_noise(gen: np.random.Generator, n: int, steps: int, width: float) -> np.ndarray:
    """``n`` independent Gaussian series with a Gaussian correlation of width ``width``."""
    from scipy.ndimage import gaussian_filter1d

    pad = int(math.ceil(4 * width))
    white = gen.standard_normal((n, steps + 2 * pad))
    smooth = gaussian_filter1d(white, width, axis=-1, mode="wrap")[:, pad : pad + steps]
    smooth -= smooth.mean(axis=-1, keepdims=True)
    return smooth / smooth.std(axis=-1, keepdims=True)


def simulate_animal(
    params: ConnectomeParams, partitions: np.ndarray, rng: Seed = None
) -> tuple[np.ndarray, float]:
    """Simulate the calcium-like traces of one animal.

    Parameters
    ----------
    params
        The population (see :class:`ConnectomeParams` for the model).
    partitions
        Planted labels, shape ``(n_epochs, n_neurons)`` (:func:`planted_partitions`).
    rng
        Generator or seed of this animal's drivers, fluctuations and gain.

    Returns
    -------
    traces : numpy.ndarray
        Shape ``(n_neurons, n_steps)``, float64.
    gain : float
        The animal's driver gain.

    Raises
    ------
    ValueError
        If ``partitions`` does not have shape ``(n_epochs, n_neurons)``.
    """
    from scipy.signal import lfilter

    p = _check_params(params)
    labels = np.asarray(partitions)
    if labels.shape != (p.n_epochs, p.n_neurons):
        raise ValueError(
            f"partitions: expected shape ({p.n_epochs}, {p.n_neurons}), got {labels.shape}"
        )
    gen = np.random.default_rng(rng)
    gain = float(gen.uniform(1.0 - p.gain_spread, 1.0))
    bounds = p.epoch_bounds()
    activity = p.noise * _smooth_noise(gen, p.n_neurons, p.n_steps, p.timescale)
    for e, k in enumerate(p.blocks):
        lo, hi = int(bounds[e]), int(bounds[e + 1])
        drivers = _smooth_noise(gen, k, hi - lo, p.timescale)
        activity[:, lo:hi] += gain * p.driver * drivers[labels[e]]
    rate = np.logaddexp(0.0, activity)  # softplus: a nonnegative firing rate
    if p.decay > 0:
        g = math.exp(-1.0 / p.decay)
        trace = lfilter([1.0 - g], [1.0, -g], rate, axis=-1)
    else:
        trace = rate
    if p.measurement_noise > 0:
        scale = p.measurement_noise * trace.std(axis=-1, keepdims=True)
        trace = trace + scale * gen.standard_normal(trace.shape)
    return trace, gain


def make_dataset(params: ConnectomeParams, seed: int = 0) -> ConnectomeData:
    """Draw the partitions and simulate every animal.

    The partitions come from the seed ``[seed, 0]`` and animal ``a`` from ``[seed, 1, a]``,
    so one animal can be simulated alone (:func:`simulate_animal`) with the same result.

    Parameters
    ----------
    params
        The population.
    seed
        Base seed, an integer >= 0.

    Returns
    -------
    ConnectomeData
        Traces, partitions and gains.
    """
    p = _check_params(params)
    seed = _nonneg_int(seed, "seed")
    partitions = planted_partitions(p, [seed, 0])
    runs = [simulate_animal(p, partitions, [seed, 1, a]) for a in range(p.n_animals)]
    traces = np.stack([t for t, _ in runs])
    return ConnectomeData(p, traces, partitions, np.asarray([g for _, g in runs]))


def _nonneg_int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)
