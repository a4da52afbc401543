"""PANTHER's method (solvers.panther): factorization, classifier, groups, one whole run."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from problems.genomics import SyntheticCohortParams, cohort_tensor, synthetic_cohort  # noqa: E402
from solvers.panther import (  # noqa: E402
    ClassifierParams,
    FactorParams,
    baseline_features,
    classify,
    factorize,
    fit_and_classify,
    group_overlaps,
    pathway_groups,
    split_errors,
)
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.decomp import CP  # noqa: E402


def test_factorize_error_and_orthogonality_penalty():
    cohort = synthetic_cohort(SyntheticCohortParams(n_patients=60), rng=0)
    x = cohort_tensor(cohort).tensor
    cp, info = factorize(x, 4, w_ortho=0.0, max_iter=300, ortho_iter=1, tol=1e-8, seed=0)
    xhat = np.einsum("ir,jr,kr->ijk", cp.factors[0] * cp.weights, *cp.factors[1:])
    xhat *= np.linalg.norm(x)
    assert info["rel_error"] == pytest.approx(np.linalg.norm(x - xhat) / np.linalg.norm(x))
    assert min(f.min() for f in cp.factors) >= 0
    split = np.arange(60) % 3
    errs = split_errors(x, cp, split)
    for s in range(3):
        rows = split == s
        ref = np.linalg.norm(x[rows] - xhat[rows]) / np.linalg.norm(x[rows])
        assert errs[s] == pytest.approx(ref)

    def offdiag(c):
        g = c.factors[0].T @ c.factors[0]
        return np.sum((g - np.diag(np.diag(g))) ** 2)

    ortho, info2 = factorize(x, 4, w_ortho=0.05, max_iter=300, ortho_iter=40, tol=1e-10, seed=0)
    assert info2["ortho_iterations"] > 0 and min(f.min() for f in ortho.factors) >= 0
    assert offdiag(ortho) < 0.5 * offdiag(cp)
    assert info2["rel_error"] >= info["rel_error"] - 1e-12  # the penalty costs fit
    # the penalized fit flushes denormals only while it runs (a process-wide torch switch)
    tiny = torch.tensor(np.finfo(np.float64).tiny, dtype=torch.float64)
    assert float(tiny / 4) > 0.0


def test_factorize_refuses_a_zero_tensor():
    with pytest.raises(ValueError, match="tensor: all entries are zero"):
        factorize(np.zeros((3, 2, 2)), 1, w_ortho=0.0, max_iter=5, ortho_iter=1, tol=1e-6, seed=0)


def test_classify_matches_sklearn_at_the_chosen_c(rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y = np.repeat(np.arange(3), 40)
    feats = rng.standard_normal((120, 4)) + 1.5 * np.eye(3, 4)[y]
    split = np.tile([0, 0, 0, 1, 2], 24)
    out = classify(feats, y, split, (0.01, 1.0))
    sc = StandardScaler().fit(feats[split == 0])
    ref = LogisticRegression(C=out["C"], max_iter=5000).fit(sc.transform(feats[split == 0]),
                                                           y[split == 0])  # fmt: skip
    for s in range(3):
        acc = ref.score(sc.transform(feats[split == s]), y[split == s])
        assert out["accuracy"][s] == pytest.approx(acc)
    np.testing.assert_allclose(out["coef"], ref.coef_)
    assert out["accuracy"][2] > 0.6  # chance 1/3


def test_group_overlaps_on_a_constructed_factorization():
    b = np.zeros((10, 3))
    b[[0, 1, 2], 0] = [3, 2, 1]
    b[[5, 6, 7], 1] = 1.0
    b[[7, 8, 9], 2] = [1, 2, 3]
    cp = CP(np.ones(3), (np.ones((4, 3)), b, np.ones((5, 3))))
    planted = [(0, 1, 2), (7, 8, 9)]
    chosen = [np.array([0, 1, 9]), np.array([5, 6, 7])]
    overlap, best = group_overlaps(cp, planted, chosen)
    np.testing.assert_allclose(overlap, [2 / 3, 1 / 3])
    np.testing.assert_allclose(best, [1.0, 1.0])  # components 0 and 2


def test_pathway_groups_pick_the_largest_weight_and_the_top_loadings():
    b = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.7], [0.0, 0.1]])
    c = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 1.0]])
    cp = CP(np.ones(2), (np.ones((3, 2)), b, c))
    coef = np.array([[9.0, 0.1, 0.2], [-9.0, 0.3, -0.1]])  # one confounder column first
    components, pathways, genes = pathway_groups(cp, coef, 1, [2, 3], 2)
    np.testing.assert_array_equal(components, [1, 0])
    np.testing.assert_array_equal(pathways[0], [0, 2])
    np.testing.assert_array_equal(pathways[1], [1, 2, 0])
    np.testing.assert_array_equal(genes[0], [1, 2])
    np.testing.assert_array_equal(genes[1], [0, 2])


def test_baseline_features_are_the_raw_counts_or_the_flattened_tensor():
    x = np.arange(24.0).reshape(2, 3, 4)
    conf = np.array([[7.0], [8.0]])
    np.testing.assert_array_equal(baseline_features(x, conf, None)[1], [8.0, *range(12, 24)])
    raw = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(baseline_features(x, conf, raw), [[7, 1, 2], [8, 3, 4]])


def test_fit_and_classify_is_the_composition_of_the_steps():
    cohort = synthetic_cohort(SyntheticCohortParams(n_patients=60), rng=3)
    data = cohort_tensor(cohort, fill="co2")
    x, y = data.tensor, data.labels
    split = np.arange(60) % 3
    factor = FactorParams(rank=4, max_iter=50)
    classifier = ClassifierParams(cs=(0.1, 1.0))
    kw = {"w_ortho": 0.0, "seed": 1, "factor": factor}
    out = fit_and_classify(x, y, split, data.confounders, classifier=classifier, raw=cohort.counts,
                           planted=data.planted, **kw)  # fmt: skip
    cp, info = factorize(x, 4, w_ortho=0.0, max_iter=50, ortho_iter=200, tol=1e-7, seed=1)
    clf = classify(np.hstack([data.confounders, cp.factors[0] * cp.weights]), y, split, (0.1, 1.0))
    base = classify(np.hstack([data.confounders, cohort.counts]), y, split, (0.1, 1.0))
    np.testing.assert_array_equal(out["coef"], clf["coef"])
    np.testing.assert_array_equal(out["accuracy"], clf["accuracy"])
    np.testing.assert_array_equal(out["baseline_accuracy"], base["accuracy"])
    np.testing.assert_array_equal(out["loading1"], cp.factors[1].T)
    np.testing.assert_array_equal(out["rec_error"], split_errors(x, cp, split))
    assert out["rel_error"] == info["rel_error"] and out["n_confounders"] == 2
    assert (out["n_samples"], out["n_mode1"], out["n_mode2"]) == x.shape
    # groups of the planted size, the class's component with the largest weight
    np.testing.assert_array_equal(out["group_component"], np.argmax(clf["coef"][:, 2:], axis=1))
    np.testing.assert_array_equal(out["in_group"].sum(axis=1), [len(p) for p in data.planted])
    np.testing.assert_array_equal(out["planted"].sum(axis=1), [len(p) for p in data.planted])
    inter = (out["in_group"] * out["planted"]).sum(axis=1) / out["planted"].sum(axis=1)
    np.testing.assert_allclose(out["overlap"], inter)
    np.testing.assert_array_equal(np.sort(out["gene_rank"], axis=1)[:, -10:], [range(1, 11)] * 4)
    gram = cp.factors[0].T @ cp.factors[0]
    assert out["ortho_offdiag"] == np.abs(gram - np.diag(np.diag(gram))).max()
    # without confounders, without planted groups, with fixed group sizes
    plain = fit_and_classify(x, y, split, data.confounders, top_mode1=2, top_mode2=3,
                             classifier=ClassifierParams(cs=(0.1, 1.0), confounders=False),
                             **kw)  # fmt: skip
    assert plain["coef"].shape == (4, 4) and plain["n_confounders"] == 0
    assert np.isnan(plain["overlap"]).all() and not plain["planted"].any()
    np.testing.assert_array_equal(plain["in_group"].sum(axis=1), 2)
    np.testing.assert_array_equal(plain["gene_rank"].max(axis=1), 3)


def test_bad_parameters_name_the_key():
    with pytest.raises(ConfigError, match="fractions"):
        ClassifierParams(fractions=(0.5, 0.5))
    with pytest.raises(ConfigError, match="cs"):
        ClassifierParams(cs=())
