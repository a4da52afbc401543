"""Communities of weighted graphs and their agreement with planted partitions.

:func:`detect_communities` finds the communities of a symmetric nonnegative weight matrix by
Louvain modularity optimization (networkx, the default) or a nested weighted stochastic block
model (graph-tool, optional); :func:`partition_nmi` and :func:`epoch_scores` score found
partitions against planted ones by normalized mutual information (scikit-learn). Used by the
dynamic functional connectome (:mod:`solvers.connectome`, arXiv 2402.14102).

NumPy-only (the graph libraries work on host data); networkx, scikit-learn and graph-tool
are imported inside the functions that use them.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from tensorsim._array_api import to_numpy

__all__ = ["detect_communities", "epoch_scores", "partition_nmi"]


def _check_weights(weights: Any) -> np.ndarray:
    w = to_numpy(weights)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 1:
        raise ValueError(f"weights: expected a square matrix, got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.floating) and not np.issubdtype(w.dtype, np.integer):
        raise TypeError(f"weights: expected a real array, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights: expected finite values, got {np.sum(~np.isfinite(w))} NaN/Inf")
    if np.any(w < 0):
        raise ValueError(f"weights: expected nonnegative weights, got minimum {w.min():.3g}")
    if not np.allclose(w, w.T, rtol=1e-10, atol=0.0):
        raise ValueError("weights: expected a symmetric matrix")
    return w


def _canonical(groups: list[Any], n: int) -> np.ndarray:
    """Labels ``0, 1, ...`` in the order of each community's smallest member."""
    labels = np.full(n, -1, dtype=np.int64)
    for c, members in enumerate(sorted(sorted(int(v) for v in g) for g in groups)):
        labels[members] = c
    if np.any(labels < 0):  # pragma: no cover - the backends partition every node
        raise RuntimeError("community detection left nodes without a community")
    return labels


def _louvain(w: np.ndarray, resolution: float, seed: int) -> list[Any]:
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(w.shape[0]))
    i, j = np.nonzero(np.triu(w, k=1))
    g.add_weighted_edges_from(zip(i.tolist(), j.tolist(), w[i, j].tolist(), strict=True))
    return nx.community.louvain_communities(g, weight="weight", resolution=resolution, seed=seed)


def _sbm(w: np.ndarray, seed: int) -> list[Any]:  # pragma: no cover - needs graph-tool
    try:
        import graph_tool.all as gt
    except ImportError as exc:
        raise ImportError(
            "method='sbm' needs graph-tool (conda-forge 'graph-tool' or Debian's "
            "'python3-graph-tool'), which is not importable here; use method='louvain'"
        ) from exc
    gt.seed_rng(seed)
    i, j = np.nonzero(np.triu(w, k=1))
    g = gt.Graph(directed=False)
    g.add_vertex(w.shape[0])
    weight = g.new_edge_property("double")
    g.add_edge_list(np.column_stack([i, j, w[i, j]]), eprops=[weight])
    best = None
    for deg_corr in (False, True):
        state = gt.minimize_nested_blockmodel_dl(
            g,
            state_args={"recs": [weight], "rec_types": ["real-exponential"], "deg_corr": deg_corr},
        )
        if best is None or state.entropy() < best.entropy():
            best = state
    blocks = np.asarray(best.levels[0].get_blocks().a)
    return [np.nonzero(blocks == b)[0] for b in np.unique(blocks)]


def detect_communities(
    weights: Any,
    *,
    method: Literal["louvain", "sbm"] = "louvain",
    resolution: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Communities of a weighted undirected graph given by its weight matrix.

    NumPy-only by design (the weights are copied to the host).

    Parameters
    ----------
    weights
        Symmetric nonnegative ``(n, n)`` matrix; zero means no edge, the diagonal is ignored.
    method
        ``"louvain"``: modularity optimization, ``networkx.community.louvain_communities``
        (Blondel et al. 2008, arXiv:0803.0476); ``"sbm"``: nested stochastic block model with
        real-exponential edge weights, the lower description length of the plain and the
        degree-corrected model (graph-tool, optional; as in arXiv:2402.14102).
    resolution
        Louvain resolution (> 0; larger gives smaller communities).
    seed
        Seed of the randomized search.

    Returns
    -------
    numpy.ndarray
        Community of every node, shape ``(n,)``, labelled ``0, 1, ...`` in the order of each
        community's smallest node; a node without edges is a community of its own.

    Raises
    ------
    ValueError
        If ``weights`` is not square, finite, nonnegative and symmetric, or ``method``,
        ``resolution`` or ``seed`` is invalid.
    TypeError
        If ``weights`` is not real.
    ImportError
        For ``method="sbm"`` without graph-tool.
    """
    w = _check_weights(weights)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    seed = int(seed)
    if not (isinstance(resolution, int | float) and resolution > 0):
        raise ValueError(f"resolution: expected a number > 0, got {resolution!r}")
    if method == "louvain":
        groups = _louvain(w, float(resolution), seed)
    elif method == "sbm":
        groups = _sbm(w, seed)
    else:
        raise ValueError(f"method: expected 'louvain' or 'sbm', got {method!r}")
    return _canonical(groups, w.shape[0])


def partition_nmi(labels: Any, partitions: Any) -> np.ndarray:
    """Normalized mutual information of every found partition with every planted one.

    Parameters
    ----------
    labels
        Found communities, shape ``(n_components, n_neurons)`` (or ``(n_neurons,)``).
    partitions
        Planted communities, shape ``(n_epochs, n_neurons)`` (or ``(n_neurons,)``).

    Returns
    -------
    numpy.ndarray
        ``nmi[r, e]`` (arithmetic normalization, scikit-learn's default), shape
        ``(n_components, n_epochs)``.
    """
    from sklearn.metrics import normalized_mutual_info_score

    found, planted = np.atleast_2d(to_numpy(labels)), np.atleast_2d(to_numpy(partitions))
    if found.ndim != 2 or planted.ndim != 2 or found.shape[1] != planted.shape[1]:
        raise ValueError(
            f"labels, partitions: expected the same number of neurons, got shapes "
            f"{found.shape} and {planted.shape}"
        )
    return np.asarray(
        [[normalized_mutual_info_score(p, f) for p in planted] for f in found], dtype=np.float64
    )


def epoch_scores(
    nmi: np.ndarray, peak_epochs: np.ndarray, *, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch: the best NMI among the components whose temporal loading peaks in it.

    Parameters
    ----------
    nmi
        ``(n_components, n_epochs)`` from :func:`partition_nmi`.
    peak_epochs
        Epoch of the peak of each component's temporal loading, shape ``(n_components,)``.
    valid
        Components to consider (default: all).

    Returns
    -------
    best : numpy.ndarray
        Shape ``(n_epochs,)``; 0 where no component peaks in the epoch.
    component : numpy.ndarray
        The component reaching it, -1 where none.
    """
    nmi = np.asarray(nmi, dtype=np.float64)
    peaks = np.asarray(peak_epochs)
    if peaks.shape != (nmi.shape[0],):
        raise ValueError(f"peak_epochs: expected shape ({nmi.shape[0]},), got {peaks.shape}")
    ok = np.ones(nmi.shape[0], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    best = np.zeros(nmi.shape[1])
    component = np.full(nmi.shape[1], -1, dtype=np.int64)
    for e in range(nmi.shape[1]):
        candidates = np.nonzero((peaks == e) & ok)[0]
        if candidates.size:
            r = int(candidates[np.argmax(nmi[candidates, e])])
            best[e], component[e] = nmi[r, e], r
    return best, component
