r"""Dynamic functional connectome: differential affinities, NTF and communities per component.

The analysis of arXiv 2402.14102 (Dyballa, Lang, Haslund-Gourley, Yemini, Zucker), in the
simple form measured in the project notes (spec ``ntf-dain-fields.md`` section 3.4):

1. **Differential affinity** (:func:`affinity_tensor`): each neuron's calcium trace is
   (optionally) smoothed, differentiated and z-scored; two neurons are affine in a time
   window when their derivatives have the same sign at the same time,
   ``a_ij(k) = mean_{t in window k} max(0, z_i(t) z_j(t))``. The values of all pairs
   ``i < j`` over the windows and animals form a nonnegative ``pair x window x animal``
   tensor.
2. **NTF** (:func:`dynamic_communities`): a nonnegative CP decomposition
   (:func:`tensorsim.decomp.nonneg_cp`) splits the tensor into components, each a pair
   pattern ("which neurons interact"), a temporal loading ("when") and an animal loading
   ("in whom").
3. **Communities**: each pair pattern is refolded (:func:`refold`) into a symmetric neuron x
   neuron weight matrix, a weighted graph whose communities are found by Louvain
   modularity optimization (networkx, the default) or by a nested weighted stochastic block
   model (graph-tool, optional; the method of the paper)
   (:func:`solvers.communities.detect_communities`). The time course of a community is its
   mean within-community affinity per window.
4. **Scores** (:func:`analyse_run`): the communities of every component are scored against
   known partitions (one per epoch, e.g. the planted ones of
   :func:`problems.connectome.make_dataset`) by normalized mutual information, per epoch
   the best component peaking in it; the communities of the pooled graph
   (:func:`static_communities`) are the static baseline.

:class:`AffinityParams` and :class:`AnalysisParams` are the options of the affinities and
of the analysis. The affinity kernel takes arrays of any backend (NumPy, torch, CuPy,
array-api-strict); the refolding, the graph steps and the scores are NumPy-only by design
(networkx and graph-tool work on host data); networkx, scikit-learn and graph-tool are
imported inside the functions that use them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from solvers.communities import detect_communities, epoch_scores, partition_nmi
from tensorsim._array_api import Array, array_namespace, device, to_numpy
from tensorsim.config import Params, param
from tensorsim.decomp import nonneg_cp

__all__ = [
    "AffinityParams",
    "AnalysisParams",
    "DynamicCommunities",
    "affinity_tensor",
    "analyse_run",
    "community_courses",
    "dynamic_communities",
    "n_windows",
    "pair_indices",
    "refold",
    "static_communities",
    "window_centres",
    "window_epochs",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AffinityParams(Params):
    """The differential affinities (the options of :func:`affinity_tensor`)."""

    window: int = param(30, "derivative samples per window", ge=2)
    stride: int = param(0, "samples between window starts (0: window)", ge=0)
    smooth: float = param(0.0, "Gaussian smoothing width in steps (0: none)", ge=0.0)
    normalize: Literal["window", "trace"] = param("window", "z-score per window or trace")

    @property
    def step(self) -> int:
        """Samples between window starts: ``stride``, or ``window`` for 0."""
        return self.stride or self.window

    def affinities(self, traces: Array) -> Array:
        """:func:`affinity_tensor` of ``traces`` with these options."""
        return affinity_tensor(
            traces, self.window, stride=self.step, smooth=self.smooth, normalize=self.normalize
        )


@dataclass(frozen=True)
class AnalysisParams(Params):
    """The NTF and the community detection (the options of :func:`analyse_run`).

    Attributes
    ----------
    ranks
        NTF ranks to run (one run per rank and data set).
    ntf_method
        ``"hals"`` or ``"mu"`` (:func:`tensorsim.decomp.nonneg_cp`).
    tol, max_iter
        Stopping rule of the NTF.
    communities
        ``"louvain"`` (networkx) or ``"sbm"`` (graph-tool, optional).
    resolution
        Louvain resolution.
    """

    ranks: tuple[int, ...] = param((3,), "NTF ranks", ge=1)
    ntf_method: Literal["hals", "mu"] = param("hals", "NTF algorithm")
    tol: float = param(1e-8, "NTF tolerance on the error change", ge=0.0)
    max_iter: int = param(500, "NTF iterations at most", ge=1)
    communities: Literal["louvain", "sbm"] = param("louvain", "community detection")
    resolution: float = param(1.0, "Louvain resolution", gt=0.0)


# ------------------------------------------------------------------------------ affinity


def _nonneg_int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def n_windows(n_steps: int, window: int, stride: int | None = None) -> int:
    """Number of windows of ``window`` derivative samples, ``stride`` apart (default: window).

    A trace of ``n_steps`` samples has ``n_steps - 1`` derivative samples; window ``k``
    covers derivative samples ``k * stride, ..., k * stride + window - 1``.

    Raises
    ------
    ValueError
        If ``window`` is not an integer in ``[1, n_steps - 1]`` or ``stride`` is not >= 1.
    """
    n_steps = _nonneg_int(n_steps, "n_steps", 2)
    window = _nonneg_int(window, "window", 1)
    stride = window if stride is None else _nonneg_int(stride, "stride", 1)
    if window > n_steps - 1:
        raise ValueError(
            f"window: expected at most the {n_steps - 1} derivative samples of a trace of "
            f"{n_steps} steps, got {window}"
        )
    return (n_steps - 1 - window) // stride + 1


def window_centres(n_steps: int, window: int, stride: int | None = None) -> np.ndarray:
    """Centre of every window in time steps, shape ``(n_windows,)``.

    Derivative sample ``t`` lies between steps ``t`` and ``t + 1``, so window ``k`` is
    centred at ``k * stride + window / 2``.
    """
    k = n_windows(n_steps, window, stride)
    stride = window if stride is None else stride
    return np.arange(k) * stride + window / 2.0


def window_epochs(epoch_bounds: Any, window: int, stride: int | None = None) -> np.ndarray:
    """Epoch of every window: the epoch holding the window's centre, shape ``(n_windows,)``.

    Parameters
    ----------
    epoch_bounds
        First step of every epoch and the number of steps at the end, shape
        ``(n_epochs + 1,)`` (e.g. :meth:`problems.connectome.ConnectomeParams.epoch_bounds`).
    window, stride
        The windows, as in :func:`n_windows` of ``n_steps = epoch_bounds[-1]`` steps.

    Raises
    ------
    ValueError
        If ``epoch_bounds`` is not 1-D with at least 2 entries, or as :func:`n_windows`.
    """
    bounds = np.asarray(epoch_bounds)
    if bounds.ndim != 1 or bounds.shape[0] < 2:
        raise ValueError(
            f"epoch_bounds: expected a 1-D array of at least 2 steps, got shape {bounds.shape}"
        )
    centres = window_centres(int(bounds[-1]), window, stride)
    return np.searchsorted(bounds[1:-1], centres, side="right").astype(np.int64)


def pair_indices(n_neurons: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pairs ``i < j`` in the order of the pair mode (row-major)."""
    n = _nonneg_int(n_neurons, "n_neurons", 2)
    i, j = np.triu_indices(n, k=1)
    return i.astype(np.int64), j.astype(np.int64)


def _first_index(xp: ModuleType, bad: Array) -> tuple[int, ...]:
    return tuple(int(ix[0]) for ix in xp.nonzero(bad))


def _smooth(xp: ModuleType, x: Array, sigma: float) -> Array:
    """Gaussian smoothing along the last axis, edges extended by their end values."""
    radius = int(3.0 * sigma + 0.5)
    if radius == 0:
        return x
    offsets = range(-radius, radius + 1)
    kernel = [math.exp(-0.5 * (t / sigma) ** 2) for t in offsets]
    total = sum(kernel)
    n = x.shape[-1]
    edge = (*x.shape[:-1], radius)
    padded = xp.concat(
        [xp.broadcast_to(x[..., :1], edge), x, xp.broadcast_to(x[..., -1:], edge)], axis=-1
    )
    out = (kernel[0] / total) * padded[..., 0:n]
    for s in range(1, 2 * radius + 1):
        out = out + (kernel[s] / total) * padded[..., s : s + n]
    return out


def affinity_tensor(
    traces: Array,
    window: int,
    *,
    stride: int | None = None,
    smooth: float = 0.0,
    normalize: Literal["window", "trace"] = "window",
) -> Array:
    r"""Differential affinities of all neuron pairs per time window (and animal).

    Each trace is smoothed with a Gaussian of width ``smooth`` steps (if > 0) and
    differentiated by forward differences; the derivatives are z-scored, within each window
    (``normalize="window"``, the default) or over the whole trace (``"trace"``), giving
    ``z_i(t)``. The affinity of the pair ``i < j`` in window ``k`` is

    .. math:: a_{ij}(k) = \frac{1}{w} \sum_{t \in W_k} \max\bigl(0, z_i(t) z_j(t)\bigr),

    large when the two neurons rise together or fall together, zero when they change in
    opposite directions: a derivative co-activation in the spirit of the differential
    affinity of arXiv 2402.14102 (whose exact nonlinear form differs). With window
    normalization the affinity depends on how the neurons co-vary inside the window, not on
    how much they move there (it is at most 1 + the window's derivative correlation, 2);
    a neuron whose derivative is constant inside a window has ``z = 0`` there.

    Parameters
    ----------
    traces
        Real floating array of shape ``(n_animals, n_neurons, n_steps)``, or
        ``(n_neurons, n_steps)`` for one animal; any array-API backend.
    window
        Derivative samples per window, an integer in ``[1, n_steps - 1]`` (at least 2 for
        ``normalize="window"``).
    stride
        Samples between window starts (default: ``window``, non-overlapping windows).
    smooth
        Width in steps of the Gaussian smoothing before differentiation (0: none); the
        kernel is cut at ``round(3 smooth)`` steps, the edges extended by their end values.
    normalize
        ``"window"``: z-score the derivatives inside every window; ``"trace"``: over the
        whole trace.

    Returns
    -------
    Array
        Nonnegative affinities of ``traces``' backend and dtype, shape
        ``(n_pairs, n_windows, n_animals)`` (``(n_pairs, n_windows)`` for 2-D input), with
        ``n_pairs = n_neurons (n_neurons - 1) / 2`` in the order of :func:`pair_indices` and
        ``n_windows`` from :func:`n_windows`.

    Raises
    ------
    TypeError
        If ``traces`` is not a real floating array.
    ValueError
        If ``traces`` has the wrong number of dimensions, fewer than 2 neurons, NaN or Inf
        (count and first index), a neuron whose derivative is constant over the whole trace
        (e.g. a constant trace), or if ``window``, ``stride``, ``smooth`` or ``normalize``
        is out of range.

    References
    ----------
    L. Dyballa, S. Lang, A. Haslund-Gourley, E. Yemini, S. W. Zucker, "Learning dynamic
    representations of the functional connectome in neurobiological networks", ICLR 2024,
    arXiv:2402.14102.
    """
    xp = array_namespace(traces)
    if not xp.isdtype(traces.dtype, "real floating"):
        raise TypeError(f"traces: expected a real floating array, got dtype {traces.dtype}")
    if traces.ndim not in (2, 3):
        raise ValueError(
            "traces: expected shape (n_animals, n_neurons, n_steps) or (n_neurons, n_steps), "
            f"got {traces.ndim} dimension(s) {tuple(traces.shape)}"
        )
    single = traces.ndim == 2
    x = traces[None, ...] if single else traces
    n_neurons, n_steps = int(x.shape[1]), int(x.shape[2])
    if n_neurons < 2:
        raise ValueError(f"traces: expected at least 2 neurons, got {n_neurons}")
    if n_steps < 2:
        raise ValueError(f"traces: expected at least 2 time steps, got {n_steps}")
    k = n_windows(n_steps, window, stride)
    stride = window if stride is None else stride
    if normalize not in ("window", "trace"):
        raise ValueError(f"normalize: expected 'window' or 'trace', got {normalize!r}")
    if normalize == "window" and window < 2:
        raise ValueError("window: expected at least 2 samples with normalize='window', got 1")
    if not (isinstance(smooth, int | float) and not isinstance(smooth, bool) and smooth >= 0):
        raise ValueError(f"smooth: expected a number >= 0, got {smooth!r}")
    bad = ~xp.isfinite(x)
    if bool(xp.any(bad)):
        count = int(xp.sum(xp.astype(bad, xp.int64)))
        where = _first_index(xp, bad)
        raise ValueError(
            f"traces: expected finite values, got {count} NaN/Inf value(s), the first at "
            f"(animal, neuron, step) = {where}"
        )
    if smooth > 0:
        x = _smooth(xp, x, float(smooth))
    d = x[..., 1:] - x[..., :-1]
    tiny = 1e3 * xp.finfo(x.dtype).eps * xp.max(xp.abs(x), axis=-1, keepdims=True)
    std = xp.std(d, axis=-1, keepdims=True)
    flat = std <= tiny
    if bool(xp.any(flat)):
        animal, neuron, _ = _first_index(xp, flat)
        raise ValueError(
            f"traces: neuron {neuron} of animal {animal} has a constant derivative (e.g. a "
            "constant trace), so its co-activation is undefined; drop it"
        )
    if normalize == "trace":
        d = (d - xp.mean(d, axis=-1, keepdims=True)) / std
    rows, cols = pair_indices(n_neurons)
    dev = device(traces)
    rows, cols = xp.asarray(rows, device=dev), xp.asarray(cols, device=dev)
    out = []
    for w in range(k):
        z = d[..., w * stride : w * stride + window]
        if normalize == "window":
            z = z - xp.mean(z, axis=-1, keepdims=True)
            s = xp.std(z, axis=-1, keepdims=True)
            live = s > tiny
            z = xp.where(live, z / xp.where(live, s, xp.ones_like(s)), xp.zeros_like(z))
        prod = xp.take(z, rows, axis=1) * xp.take(z, cols, axis=1)
        out.append(xp.mean(xp.where(prod > 0, prod, xp.zeros_like(prod)), axis=-1))
    a = xp.permute_dims(xp.stack(out, axis=-1), (1, 2, 0))  # pairs x windows x animals
    return a[..., 0] if single else a


def refold(pair_values: Any, n_neurons: int | None = None) -> np.ndarray:
    """Refold values over the pairs ``i < j`` into a symmetric matrix with zero diagonal.

    NumPy-only by design (graphs live on the host): the values are copied to the host.

    Parameters
    ----------
    pair_values
        1-D array of length ``n (n - 1) / 2`` in the order of :func:`pair_indices`.
    n_neurons
        ``n``; inferred from the length if omitted.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n)``.

    Raises
    ------
    ValueError
        If ``pair_values`` is not 1-D or its length is not ``n (n - 1) / 2``.
    """
    v = to_numpy(pair_values)
    if v.ndim != 1:
        raise ValueError(f"pair_values: expected a 1-D array, got shape {v.shape}")
    m = v.shape[0]
    if n_neurons is None:
        n = int(round((1 + math.sqrt(1 + 8 * m)) / 2))
        if n * (n - 1) // 2 != m or m == 0:
            raise ValueError(
                f"pair_values: expected a length n (n - 1) / 2 for some n >= 2, got {m}"
            )
    else:
        n = _nonneg_int(n_neurons, "n_neurons", 2)
        if n * (n - 1) // 2 != m:
            raise ValueError(
                f"pair_values: expected length {n * (n - 1) // 2} for n_neurons = {n}, got {m}"
            )
    out = np.zeros((n, n), dtype=np.result_type(v.dtype, np.float64))
    i, j = pair_indices(n)
    out[i, j] = v
    out[j, i] = v
    return out


# -------------------------------------------------------------------------- the analysis


@dataclass(frozen=True)
class DynamicCommunities:
    """NTF components of an affinity tensor and the communities of each.

    Components are sorted by decreasing weight. NumPy arrays throughout.

    Attributes
    ----------
    weights
        Component weights, shape ``(R,)``.
    pairs, time, animals
        Unit-norm factors: pair pattern ``(n_pairs, R)``, temporal loading
        ``(n_windows, R)``, animal loading ``(n_animals, R)``.
    labels
        Community of every neuron in every component's graph, shape ``(R, n_neurons)``.
    courses
        Mean within-community affinity of every community per window (mean over the pairs
        inside the community and the animals), shape ``(R, C, n_windows)`` with ``C`` the
        largest number of communities; NaN for absent communities and singletons.
    errors
        Relative error of the NTF after each iteration.
    """

    weights: np.ndarray
    pairs: np.ndarray
    time: np.ndarray
    animals: np.ndarray
    labels: np.ndarray
    courses: np.ndarray
    errors: tuple[float, ...]

    @property
    def rank(self) -> int:
        """Number of components."""
        return int(self.weights.shape[0])

    @property
    def n_communities(self) -> np.ndarray:
        """Number of communities of every component, shape ``(R,)``."""
        return self.labels.max(axis=1) + 1

    @property
    def peak_windows(self) -> np.ndarray:
        """Window where each component's temporal loading is largest, shape ``(R,)``."""
        return np.argmax(self.time, axis=0)

    def graph(self, component: int) -> np.ndarray:
        """The refolded weighted graph ``weights[r] * pair pattern`` of one component."""
        return self.weights[component] * refold(self.pairs[:, component], self.labels.shape[1])


def _check_tensor(tensor: Any) -> tuple[Any, int]:
    shape = tuple(int(s) for s in getattr(tensor, "shape", ()))
    if len(shape) != 3:
        raise ValueError(
            f"tensor: expected a (n_pairs, n_windows, n_animals) array, got shape {shape}"
        )
    m = shape[0]
    n = int(round((1 + math.sqrt(1 + 8 * m)) / 2))
    if m == 0 or n * (n - 1) // 2 != m:
        raise ValueError(f"tensor: the pair mode must have length n (n - 1) / 2, got {m}")
    return tensor, n


def community_courses(tensor: Any, labels: np.ndarray) -> np.ndarray:
    """Mean within-community affinity per window (over pairs and animals).

    Parameters
    ----------
    tensor
        ``(n_pairs, n_windows, n_animals)`` affinities (any backend; copied to the host).
    labels
        ``(R, n_neurons)`` communities.

    Returns
    -------
    numpy.ndarray
        ``(R, C, n_windows)``, NaN for absent communities and singletons.
    """
    x, n = _check_tensor(tensor)
    x = to_numpy(x).mean(axis=2)  # pairs x windows
    labels = np.atleast_2d(np.asarray(labels))
    i, j = pair_indices(n)
    c_max = int(labels.max()) + 1
    out = np.full((labels.shape[0], c_max, x.shape[1]), np.nan)
    for r, lab in enumerate(labels):
        inside = lab[i] == lab[j]
        for c in range(int(lab.max()) + 1):
            sel = inside & (lab[i] == c)
            if np.any(sel):
                out[r, c] = x[sel].mean(axis=0)
    return out


def dynamic_communities(
    tensor: Array,
    rank: int,
    *,
    method: Literal["louvain", "sbm"] = "louvain",
    resolution: float = 1.0,
    ntf_method: Literal["hals", "mu"] = "hals",
    tol: float = 1e-8,
    max_iter: int = 500,
    seed: int = 0,
) -> DynamicCommunities:
    """NTF of an affinity tensor, then the communities of every component's graph.

    Parameters
    ----------
    tensor
        Nonnegative ``(n_pairs, n_windows, n_animals)`` affinities (:func:`affinity_tensor`),
        any backend supported by :func:`tensorsim.decomp.nonneg_cp`.
    rank
        Number of NTF components.
    method, resolution
        Community detection (:func:`~solvers.communities.detect_communities`).
    ntf_method, tol, max_iter
        Passed to :func:`tensorsim.decomp.nonneg_cp` (random start seeded by ``seed``).
    seed
        Seed of the NTF start and of the community search.

    Returns
    -------
    DynamicCommunities
        Factors, communities and community time courses, components by decreasing weight.

    Raises
    ------
    ValueError
        If the tensor is not 3-way with a pair mode of length ``n (n - 1) / 2``, or as
        :func:`tensorsim.decomp.nonneg_cp` and :func:`~solvers.communities.detect_communities`.

    References
    ----------
    L. Dyballa et al., arXiv:2402.14102 (NTF of differential affinities, communities per
    component).
    """
    x, n = _check_tensor(tensor)
    if ntf_method not in ("hals", "mu"):
        raise ValueError(f"ntf_method: expected 'hals' or 'mu', got {ntf_method!r}")
    seed = _nonneg_int(seed, "seed")
    cp = nonneg_cp(x, rank, method=ntf_method, tol=tol, max_iter=max_iter, rng=seed)
    weights = to_numpy(cp.weights).astype(np.float64)
    order = np.argsort(-weights, kind="stable")
    pairs, time, animals = (to_numpy(f).astype(np.float64)[:, order] for f in cp.factors)
    weights = weights[order]
    labels = np.stack(
        [
            detect_communities(
                refold(weights[r] * pairs[:, r], n),
                method=method,
                resolution=resolution,
                seed=seed,
            )
            for r in range(weights.shape[0])
        ]
    )
    courses = community_courses(x, labels)
    return DynamicCommunities(weights, pairs, time, animals, labels, courses, cp.errors)


def static_communities(
    tensor: Array,
    *,
    method: Literal["louvain", "sbm"] = "louvain",
    resolution: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Communities of the pooled graph (affinities summed over windows and animals).

    What a static functional connectome gives: the baseline of the time-resolved analysis.

    Returns
    -------
    numpy.ndarray
        Community of every neuron, shape ``(n_neurons,)``.
    """
    x, n = _check_tensor(tensor)
    pooled = to_numpy(x).sum(axis=(1, 2))
    return detect_communities(refold(pooled, n), method=method, resolution=resolution, seed=seed)


def analyse_run(
    tensor: Array,
    rank: int,
    params: AnalysisParams,
    *,
    partitions: Any,
    window_epoch: Any,
    seed: int = 0,
) -> dict[str, Any]:
    """NTF, communities and their scores against known partitions, for one NTF rank.

    Parameters
    ----------
    tensor
        ``(n_pairs, n_windows, n_animals)`` affinities (:func:`affinity_tensor`).
    rank
        Number of NTF components.
    params
        The NTF and community options (``params.ranks`` is not used).
    partitions
        The partition of the neurons in every epoch, shape ``(n_epochs, n_neurons)``.
    window_epoch
        Epoch of every window, shape ``(n_windows,)`` (:func:`window_epochs`).
    seed
        Seed of the NTF start and of the community search.

    Returns
    -------
    dict
        The :class:`DynamicCommunities` fields (``weights``, ``pairs``, ``time``,
        ``animals``, ``labels``, ``courses``), ``ntf_error`` (the last relative error),
        ``ntf_iterations``, ``nmi`` (component x epoch,
        :func:`~solvers.communities.partition_nmi`), ``peak_window``, ``peak_epoch`` (the
        epoch of that window), ``epoch_nmi`` and ``epoch_component``
        (:func:`~solvers.communities.epoch_scores`), ``static_labels`` and ``static_nmi``
        (:func:`static_communities`) and ``epoch_affinity`` (mean affinity of each pair
        over the windows of each epoch and the animals, NaN for an epoch without windows).

    Raises
    ------
    ValueError
        If ``window_epoch`` does not have one entry per window, or as
        :func:`dynamic_communities` and :func:`~solvers.communities.partition_nmi`.

    References
    ----------
    L. Dyballa et al., arXiv:2402.14102.
    """
    _check_tensor(tensor)
    epochs = np.asarray(window_epoch)
    if epochs.shape != (int(tensor.shape[1]),):
        raise ValueError(
            f"window_epoch: expected shape ({int(tensor.shape[1])},) (one epoch per window), "
            f"got {epochs.shape}"
        )
    res = dynamic_communities(
        tensor,
        rank,
        method=params.communities,
        resolution=params.resolution,
        ntf_method=params.ntf_method,
        tol=params.tol,
        max_iter=params.max_iter,
        seed=seed,
    )
    nmi = partition_nmi(res.labels, partitions)
    peak_epoch = epochs[res.peak_windows]
    best, component = epoch_scores(nmi, peak_epoch)
    static = static_communities(
        tensor, method=params.communities, resolution=params.resolution, seed=seed
    )
    pooled = to_numpy(tensor).mean(axis=2)
    epoch_affinity = np.stack(
        [
            pooled[:, epochs == e].mean(axis=1) if np.any(epochs == e) else np.nan * pooled[:, 0]
            for e in range(nmi.shape[1])
        ]
    )
    return {
        "weights": res.weights,
        "pairs": res.pairs,
        "time": res.time,
        "animals": res.animals,
        "labels": res.labels,
        "courses": res.courses,
        "ntf_error": res.errors[-1],
        "ntf_iterations": len(res.errors),
        "nmi": nmi,
        "peak_window": res.peak_windows,
        "peak_epoch": peak_epoch,
        "epoch_nmi": best,
        "epoch_component": component,
        "static_labels": static,
        "static_nmi": partition_nmi(static, partitions)[0],
        "epoch_affinity": epoch_affinity,
    }
