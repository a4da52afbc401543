"""PANTHER: nonnegative CP of a patient tensor, a softmax classifier, pathway groups.

The method of Luo & Mao (AAAI 2021, arXiv:2012.08580) on NumPy data (a patients x mode-1 x
mode-2 tensor, e.g. patients x pathways x genes from :mod:`problems.genomics`; this module
takes arrays and never imports the problems):

- :func:`factorize`: nonnegative CP of the tensor scaled to unit norm, HALS from a seeded
  random start, then, for a weight ``w_ortho > 0``, projected gradient with the
  scale-invariant orthogonality penalty ``w_ortho ||Abar^T Abar - I||_F^2`` on the patient
  mode, from the HALS factors (:class:`FactorParams`);
- :func:`classify`: multinomial logistic regression on standardized features with ``C``
  chosen on the validation split (:class:`ClassifierParams`); :func:`baseline_features`
  are the features of the no-factorization baseline;
- :func:`pathway_groups`: per class, the component with the largest classifier weight and
  its leading mode-1 and mode-2 entries; :func:`group_overlaps`: their overlap with planted
  groups; :func:`split_errors`: the reconstruction error per split;
- :func:`fit_and_classify`: one whole run on a tensor and its split (the steps above).

Independent of MPI and files; torch is imported only for the penalized phase and
scikit-learn only by :func:`classify`.

References
----------
Y. Luo, C. Mao, AAAI 2021, arXiv:2012.08580 (PANTHER).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensorsim.config import ConfigError, Params, param
from tensorsim.decomp import CP, nonneg_cp

__all__ = [
    "SPLITS",
    "ClassifierParams",
    "FactorParams",
    "baseline_features",
    "classify",
    "factorize",
    "fit_and_classify",
    "group_overlaps",
    "pathway_groups",
    "split_errors",
]

logger = logging.getLogger(__name__)

#: Names of the splits, in the order of :func:`problems.genomics.stratified_split`.
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class FactorParams(Params):
    """The nonnegative CP factorization (:func:`factorize`).

    Attributes
    ----------
    rank
        Number of components ``R``.
    max_iter
        HALS iterations at most.
    ortho_iter
        Projected-gradient iterations at most (runs with ``w_ortho > 0``).
    tol
        Stop when the relative error changes by less than this.
    """

    rank: int = param(8, "number of components R", ge=1)
    max_iter: int = param(500, "HALS iterations at most", ge=1)
    ortho_iter: int = param(200, "projected-gradient iterations at most", ge=1)
    tol: float = param(1e-7, "stop at this change of the relative error", gt=0.0)


@dataclass(frozen=True)
class ClassifierParams(Params):
    """The softmax classifier and the split (:func:`classify`).

    Attributes
    ----------
    cs
        Inverse regularization strengths tried; the best on validation is kept.
    fractions
        Train, validation and test fractions (per class).
    confounders
        Put the confounders in front of the patient factor.
    """

    cs: tuple[float, ...] = param((0.01, 0.1, 1.0, 10.0, 100.0), "C values tried", gt=0.0)
    fractions: tuple[float, ...] = param((0.6, 0.2, 0.2), "train/validation/test", gt=0.0)
    confounders: bool = param(True, "use the confounders as features")

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1.0) > 1e-9:
            raise ConfigError(
                "config key 'fractions': expected three fractions summing to 1, got "
                f"{list(self.fractions)}"
            )
        if not self.cs:
            raise ConfigError("config key 'cs': expected at least one value")


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


def fit_and_classify(
    tensor: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    confounders: np.ndarray,
    *,
    w_ortho: float,
    seed: int,
    factor: FactorParams,
    classifier: ClassifierParams,
    raw: np.ndarray | None = None,
    planted: Sequence[Sequence[int]] = (),
    top_mode1: int = 0,
    top_mode2: int = 10,
) -> dict[str, Any]:
    """One PANTHER run: factorize, classify the patient factor, read off the groups.

    The factorization (:func:`factorize`) is transductive: it sees every sample and no
    label. The classifier (:func:`classify`) gets ``[confounders, A diag(weights)]``, the
    baseline the same classifier on :func:`baseline_features`; the group of a class is the
    component with its largest weight (:func:`pathway_groups`).

    Parameters
    ----------
    tensor
        ``(samples, n1, n2)`` nonnegative tensor.
    labels
        ``(samples,)`` classes ``0..K-1``.
    split
        ``(samples,)`` split index (0 train, 1 validation, 2 test), as
        :func:`problems.genomics.stratified_split` draws it.
    confounders
        ``(samples, c)`` confounders (dropped when ``classifier.confounders`` is false).
    w_ortho
        Orthogonality weight on the patient mode (0: HALS only).
    seed
        Seed of the random start.
    factor, classifier
        The factorization and the classifier.
    raw
        Raw baseline features (e.g. patient x gene counts); None: the flattened tensor.
    planted
        Per class, the mode-1 indices of its planted group (empty: none planted).
    top_mode1
        Mode-1 entries per reported group; 0: the planted group's size, else
        ``min(5, n1)``.
    top_mode2
        Mode-2 entries per reported group (at most ``n2``).

    Returns
    -------
    dict
        ``accuracy``, ``baseline_accuracy``, ``rec_error`` (per split), ``C``,
        ``rel_error``, ``hals_iterations``, ``ortho_iterations``, ``fit_seconds``,
        ``min_factor``, ``ortho_offdiag`` (max ``|off-diagonal|`` of ``A^T A``),
        ``n_samples``, ``n_mode1``, ``n_mode2``, ``coef`` and ``intercept`` (classes x
        features), ``group_component``, ``overlap`` and ``overlap_best`` (per class, NaN
        without planted groups), ``in_group`` and ``planted`` (classes x n1, 0/1),
        ``gene_rank`` (classes x n2: 1, 2, ... for the group's mode-2 entries, 0 else),
        ``loading1`` and ``loading2`` (components x n1 and x n2), ``groups`` and ``genes``
        (per class, the indices of its group's entries by decreasing loading) and
        ``n_confounders`` (leading feature columns that are confounders).
    """
    cp, info = factorize(
        tensor,
        factor.rank,
        w_ortho=w_ortho,
        max_iter=factor.max_iter,
        ortho_iter=factor.ortho_iter,
        tol=factor.tol,
        seed=seed,
    )
    conf = confounders if classifier.confounders else confounders[:, :0]
    features = np.hstack([conf, cp.factors[0] * cp.weights])
    clf = classify(features, labels, split, classifier.cs)
    baseline = classify(baseline_features(tensor, conf, raw), labels, split, classifier.cs)
    n_classes = int(labels.max()) + 1
    sizes = [
        top_mode1 or (len(planted[k]) if planted else min(5, tensor.shape[1]))
        for k in range(n_classes)
    ]
    components, groups, genes = pathway_groups(
        cp, clf["coef"], conf.shape[1], sizes, min(top_mode2, tensor.shape[2])
    )
    if planted:
        overlap, best = group_overlaps(cp, planted, groups)
    else:
        overlap = best = np.full(n_classes, np.nan)
    a = cp.factors[0]
    gram = a.T @ a
    in_group = np.zeros((n_classes, tensor.shape[1]))
    gene_rank = np.zeros((n_classes, tensor.shape[2]))
    planted_rows = np.zeros((n_classes, tensor.shape[1]))
    for k in range(n_classes):
        in_group[k, groups[k]] = 1.0
        if planted:
            planted_rows[k, list(planted[k])] = 1.0
        gene_rank[k, genes[k]] = np.arange(1, genes[k].size + 1)
    return {
        "accuracy": clf["accuracy"],
        "baseline_accuracy": baseline["accuracy"],
        "C": clf["C"],
        "rec_error": split_errors(tensor, cp, split),
        "rel_error": info["rel_error"],
        "hals_iterations": info["hals_iterations"],
        "ortho_iterations": info["ortho_iterations"],
        "fit_seconds": info["seconds"],
        "min_factor": float(min(f.min() for f in cp.factors)),
        "ortho_offdiag": float(np.abs(gram - np.diag(np.diag(gram))).max()),
        "n_samples": tensor.shape[0],
        "n_mode1": tensor.shape[1],
        "n_mode2": tensor.shape[2],
        "coef": clf["coef"],
        "intercept": clf["intercept"],
        "group_component": components,
        "overlap": overlap,
        "overlap_best": best,
        "in_group": in_group,
        "planted": planted_rows,
        "gene_rank": gene_rank,
        "loading1": cp.factors[1].T,
        "loading2": cp.factors[2].T,
        "groups": groups,
        "genes": genes,
        "n_confounders": conf.shape[1],
    }
