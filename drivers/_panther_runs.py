"""One PANTHER run: factorize a patient tensor, classify the patient factor, read off groups.

Used by :mod:`drivers.panther`; each function works on NumPy data from
:mod:`problems.genomics` and is independent of MPI and files.

References
----------
Y. Luo, C. Mao, AAAI 2021, arXiv:2012.08580 (PANTHER).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tensorsim.decomp import CP, nonneg_cp

__all__ = [
    "SPLITS",
    "baseline_features",
    "classify",
    "factorize",
    "group_overlaps",
    "pathway_groups",
    "split_errors",
]

logger = logging.getLogger(__name__)

#: Names of the splits, in the order of :func:`problems.genomics.stratified_split`.
SPLITS = ("train", "validation", "test")


def factorize(
    tensor: np.ndarray,
    rank: int,
    *,
    w_ortho: float,
    max_iter: int,
    ortho_iter: int,
    tol: float,
    seed: int,
) -> tuple[CP, dict[str, Any]]:
    """Nonnegative CP of ``tensor / ||tensor||``, with the orthogonality penalty on mode 0.

    HALS (:func:`tensorsim.decomp.nonneg_cp`, ``method="hals"``) from a seeded random start
    fits the unpenalized model; with ``w_ortho > 0`` the projected-gradient method
    (``method="projected"`` on torch, ``ortho={0: w_ortho}``) then continues from the HALS
    factors for at most ``ortho_iter`` iterations. Scaling the tensor to unit norm makes
    the data term ``0.5 * relative error^2`` and ``w_ortho`` a weight relative to it.

    Returns
    -------
    CP, dict
        The factorization of the scaled tensor (its weights times ``||tensor||`` give the
        original scale) and ``{"hals_iterations", "ortho_iterations", "seconds",
        "rel_error", "errors"}``.
    """
    norm = float(np.linalg.norm(tensor))
    if norm == 0:
        raise ValueError("tensor: all entries are zero, nothing to factorize")
    x = tensor / norm
    start = time.perf_counter()
    cp = nonneg_cp(x, rank, method="hals", tol=tol, max_iter=max_iter, rng=seed)
    errors = list(cp.errors)
    info = {"hals_iterations": len(cp.errors), "ortho_iterations": 0}
    if w_ortho > 0:
        import torch

        # clamped factors drift into denormal floats, which are very slow on CPU; flushing
        # them is a process-wide switch, so it is switched back off (torch's default) after
        init = (torch.from_numpy(cp.weights), [torch.from_numpy(a) for a in cp.factors])
        torch.set_flush_denormal(True)
        try:
            out = nonneg_cp(
                torch.from_numpy(x),
                rank,
                method="projected",
                ortho={0: w_ortho},
                init=init,
                tol=tol,
                max_iter=ortho_iter,
            )
        finally:
            torch.set_flush_denormal(False)
        cp = CP(out.weights.numpy(), tuple(a.numpy() for a in out.factors), out.errors)
        errors += list(out.errors)
        info["ortho_iterations"] = len(out.errors)
    info["seconds"] = time.perf_counter() - start
    info["rel_error"] = float(errors[-1])
    info["errors"] = np.asarray(errors)
    return cp, info


def split_errors(tensor: np.ndarray, cp: CP, split: np.ndarray) -> np.ndarray:
    """Relative reconstruction error ``||X_s - X_hat_s|| / ||X_s||`` of each split's samples.

    ``cp`` is a factorization of ``tensor / ||tensor||`` (as from :func:`factorize`).
    """
    a, b, c = cp.factors
    scale = float(np.linalg.norm(tensor))
    xhat = np.einsum("ir,jr,kr->ijk", a * cp.weights, b, c) * scale
    out = np.full(len(SPLITS), np.nan)
    for s in range(len(SPLITS)):
        rows = split == s
        ref = np.linalg.norm(tensor[rows])
        if ref > 0:
            out[s] = np.linalg.norm(tensor[rows] - xhat[rows]) / ref
    return out


def classify(
    features: np.ndarray, labels: np.ndarray, split: np.ndarray, cs: Sequence[float]
) -> dict[str, Any]:
    """Multinomial logistic regression with ``C`` chosen on the validation split.

    Features are standardized with the training split's mean and deviation, so the
    coefficients of different features compare. Ties in validation accuracy go to the
    smaller ``C`` (stronger regularization).

    Returns
    -------
    dict
        ``C``, ``accuracy`` (train, validation, test), ``coef`` (classes x features, zero
        rows for classes absent from the training split), ``intercept``, ``converged``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    n_classes = int(labels.max()) + 1
    train = split == 0
    scaler = StandardScaler().fit(features[train])
    z = scaler.transform(features)
    best: dict[str, Any] | None = None
    for c in sorted(cs):
        model = LogisticRegression(C=c, max_iter=5000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z[train], labels[train])
        acc = np.asarray(
            [
                model.score(z[split == s], labels[split == s]) if (split == s).any() else np.nan
                for s in range(len(SPLITS))
            ]
        )
        if best is None or acc[1] > best["accuracy"][1]:
            coef = np.zeros((n_classes, z.shape[1]))
            intercept = np.zeros(n_classes)
            rows = model.classes_ if model.coef_.shape[0] > 1 else model.classes_[1:]
            coef[rows] = model.coef_
            intercept[rows] = model.intercept_
            if model.coef_.shape[0] == 1:  # binary: sklearn keeps one row for class 1
                coef[model.classes_[0]] = -model.coef_[0]
                intercept[model.classes_[0]] = -model.intercept_[0]
            best = {
                "C": float(c),
                "accuracy": acc,
                "coef": coef,
                "intercept": intercept,
                "converged": bool(np.all(model.n_iter_ < model.max_iter)),
            }
    assert best is not None
    if not best["converged"]:
        logger.warning("logistic regression with C=%g did not converge", best["C"])
    return best


def pathway_groups(
    cp: CP, coef: np.ndarray, n_confounders: int, top_mode1: Sequence[int], top_mode2: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Per class, the component with the largest classifier weight and its leading entries.

    Parameters
    ----------
    cp
        The factorization (mode 1: pathways, mode 2: genes).
    coef
        Classifier coefficients, classes x (confounders + components).
    n_confounders
        Leading feature columns that are confounders.
    top_mode1
        Per class, how many pathways form its group.
    top_mode2
        Genes reported per group.

    Returns
    -------
    components, pathways, genes
        The component of each class, and per class the indices of its group's pathways and
        genes, by decreasing loading.
    """
    components = np.argmax(coef[:, n_confounders:], axis=1)
    pathways = [
        np.argsort(-cp.factors[1][:, r], kind="stable")[:k]
        for r, k in zip(components, top_mode1, strict=True)
    ]
    genes = [np.argsort(-cp.factors[2][:, r], kind="stable")[:top_mode2] for r in components]
    return components, pathways, genes


def group_overlaps(
    cp: CP, planted: Sequence[Sequence[int]], chosen: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Overlap of the reported and the best-matching groups with the planted ones.

    ``overlap[k] = |chosen[k] & planted[k]| / |planted[k]|`` for the group picked through
    the classifier; ``best[k]`` is the same fraction for the top-``|planted[k]|`` pathways of
    the component matched to class ``k`` by the assignment (Hungarian) that maximizes the
    total overlap, a classifier-free measure of whether the factorization found the groups.
    """
    import scipy.optimize

    k = len(planted)
    rank = cp.factors[1].shape[1]
    overlap = np.asarray(
        [len(set(map(int, c)) & set(p)) / len(p) for c, p in zip(chosen, planted, strict=True)]
    )
    score = np.zeros((k, rank))
    for i, grp in enumerate(planted):
        for r in range(rank):
            top = np.argsort(-cp.factors[1][:, r], kind="stable")[: len(grp)]
            score[i, r] = len(set(map(int, top)) & set(grp)) / len(grp)
    rows, cols = scipy.optimize.linear_sum_assignment(score, maximize=True)
    best = np.zeros(k)
    best[rows] = score[rows, cols]
    return overlap, best


def baseline_features(
    tensor: np.ndarray, confounders: np.ndarray, raw: np.ndarray | None
) -> np.ndarray:
    """Features of the no-factorization baseline.

    The confounders, then ``raw`` (patient x gene counts) or, without it, the flattened
    tensor.
    """
    base = raw if raw is not None else tensor.reshape(tensor.shape[0], -1)
    return np.hstack([confounders, base])
