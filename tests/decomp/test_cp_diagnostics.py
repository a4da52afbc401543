import numpy as np
import pytest

from tensorsim._array_api import to_numpy
from tensorsim.decomp import CP, core_consistency, cp_als, fms


def _cp(xp, rng, shape, rank):
    return CP(
        xp.asarray(rng.uniform(0.5, 2.0, size=rank)),
        tuple(xp.asarray(rng.standard_normal((n, rank))) for n in shape),
    )


class TestFMS:
    def test_invariant_to_order_and_scaling(self, xp, rng):
        a = _cp(xp, rng, (6, 5, 4), 3)
        perm = [2, 0, 1]
        scales = [2.0, -1.0, 0.5]
        idx = xp.asarray(perm)
        b = CP(
            xp.take(a.weights, idx),
            tuple(xp.take(f, idx, axis=1) * s for f, s in zip(a.factors, scales, strict=True)),
        )
        assert fms(a, b) == pytest.approx(1.0, abs=1e-12)
        assert fms(a, b, weights=True) == pytest.approx(1.0, abs=1e-12)

    def test_unrelated_and_weight_penalty(self, rng):
        a = _cp(np, rng, (20, 15, 10), 3)
        c = _cp(np, rng, (20, 15, 10), 3)
        assert fms(a, c) < 0.3
        heavier = CP(a.weights * np.array([1.0, 1.0, 2.0]), a.factors)
        assert fms(a, heavier) == pytest.approx(1.0)
        assert fms(a, heavier, weights=True) == pytest.approx(2.5 / 3)
        fewer = CP(a.weights[:2], tuple(f[:, :2] for f in a.factors))
        assert fms(a, fewer) == pytest.approx(2 / 3)
        with pytest.raises(ValueError, match="b"):
            fms(a, _cp(np, rng, (20, 15, 9), 3))


class TestCoreConsistency:
    def test_exact_model_scores_100(self, xp, rng):
        cp = _cp(xp, rng, (7, 6, 5), 3)
        assert core_consistency(cp.to_dense(), cp) == pytest.approx(100.0, abs=1e-8)

    def test_overfactoring_scores_lower(self, rng):
        truth = _cp(np, rng, (12, 11, 10), 2)
        x = truth.to_dense() + 0.05 * rng.standard_normal(truth.shape)
        good = core_consistency(x, cp_als(x, 2, max_iter=200))
        over = core_consistency(x, cp_als(x, 4, max_iter=200, rng=0))
        assert good > 90 and over < good - 20
        with pytest.raises(ValueError, match="cp"):
            core_consistency(x[:5], truth)
        assert np.isfinite(to_numpy(truth.weights)).all()
