"""Rank-adaptive BUG integrators on quenches whose observables move, against exact dynamics.

The mean magnetization is conserved by the XXZ chain, so it proves nothing there: every
check here compares ``<Z_k>`` site by site and the nearest-neighbour ``<Z_k Z_k+1>`` with
:func:`problems.spin_chain.exact_dynamics` (sparse ``expm_multiply`` on the full vector).
The XXZ Néel quench is the case that the integrators lost without basis enrichment (per-site
errors 0.1-0.4 that grew as ``h`` shrank); the TFIM Néel quench and a random product state
complete the set. Default runs are small (8 sites, T = 0.3); the 12-site acceptance set of
``h = 0.02, 0.01, 0.005`` is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from problems.spin_chain import (
    SpinChainParams,
    build_tree,
    exact_dynamics,
    hamiltonian,
    initial_vectors,
    neighbour_zz,
)
from solvers.bug import INTEGRATORS, BUGParams, LinearTreeRHS, make_stepper
from tensorsim.config import ConfigError
from tensorsim.linalg import Truncation
from tensorsim.ttn import expectation, local_expectations, product_state
from tensorsim.ttn.operator import to_ttno

Z = np.diag([1.0, -1.0])
ADAPTIVE = ("augmented_bug", "parallel_bug", "midpoint_bug", "tdvp", "tdvp2")
XXZ = {"model": "xxz", "j": 1.0, "jz": 0.5, "hz": 0.2}
TRUNC = Truncation(atol=1e-8)


def random_vectors(sites: int, seed: int) -> list[np.ndarray]:
    """A random complex product state (each site normalized)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(sites):
        v = rng.standard_normal(2) + 1j * rng.standard_normal(2)
        out.append(v / np.linalg.norm(v))
    return out


def quench(
    params: SpinChainParams,
    integrator: str,
    h: float,
    t_end: float,
    *,
    vectors: list[np.ndarray] | None = None,
    trunc: Truncation | None = None,
    **options,
) -> dict[str, float]:
    """Max over time of the per-site ``<Z_k>`` and ``<Z_k Z_k+1>`` errors; rejections; nu.

    ``trunc`` defaults to atol 1e-8, ranks 2..64.
    """
    tree = build_tree(params)
    rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree), factor=-1j)
    zz_ops = [to_ttno(o, tree, check_hermitian=False) for o in neighbour_zz(params)]
    trunc = Truncation(atol=1e-8, max_rank=64, min_rank=2) if trunc is None else trunc
    vecs = initial_vectors(params) if vectors is None else vectors
    y = product_state(tree, vecs, rank=2, dtype=np.complex128)
    n = round(t_end / h)
    exact = exact_dynamics(params, h * np.arange(n + 1), vectors=vecs)
    err_mz = err_zz = normal = 0.0
    rejected = 0
    for k in range(n):
        y, info = INTEGRATORS[integrator](y, k * h, h, rhs=rhs, trunc=trunc, **options)
        mz = np.asarray(local_expectations(y, Z))
        zz = np.array([expectation(y, o).real for o in zz_ops])
        err_mz = max(err_mz, float(np.max(np.abs(mz - exact.mz[k + 1]))))
        err_zz = max(err_zz, float(np.max(np.abs(zz - exact.zz[k + 1]))))
        rejected += info.rejected
        normal = max(normal, info.normal)
    return {"mz": err_mz, "zz": err_zz, "rejected": rejected, "normal": normal}


@pytest.mark.parametrize("tree", ["caterpillar", "balanced_binary"])
@pytest.mark.parametrize("integrator", ADAPTIVE)
def test_xxz_neel_quench_per_site(integrator, tree):
    params = SpinChainParams(sites=8, tree=tree, initial="neel", **XXZ)
    errors = quench(params, integrator, 0.02, 0.3)
    assert errors["mz"] < 1e-3 and errors["zz"] < 1e-3, errors


def test_without_enrichment_the_xxz_quench_is_lost_and_nu_says_so():
    """The regression: the textbook augmented BUG misses the hopping from the Néel state
    (the mean, conserved, would not show it); its normal-component estimate is large."""
    params = SpinChainParams(sites=8, tree="caterpillar", initial="neel", **XXZ)
    plain = quench(params, "augmented_bug", 0.02, 0.3, enrich=0)
    enriched = quench(params, "augmented_bug", 0.02, 0.3)
    assert plain["mz"] > 5e-3, plain
    assert enriched["mz"] < plain["mz"] / 100, (plain, enriched)
    assert plain["normal"] > 10 * enriched["normal"], (plain, enriched)


def test_normal_component_estimate_vanishes_when_the_bases_hold_the_increment():
    """On 4 sites with room for every direction, the step's space holds F(Y0): nu ~ 0;
    with fixed product-state bases (no room) it is the whole off-manifold increment."""
    params = SpinChainParams(sites=4, tree="balanced_binary", initial="neel", **XXZ)
    tree = build_tree(params)
    rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree), factor=-1j)
    y = product_state(tree, initial_vectors(params), rank=1, dtype=np.complex128)
    full = Truncation(atol=1e-12, max_rank=16)
    _, info = INTEGRATORS["augmented_bug"](y, 0.0, 0.01, rhs=rhs, trunc=full, enrich=16)
    assert info.normal < 1e-9 * info.increment
    # rank one everywhere, one augmentation step: the two-site hopping stays out
    _, plain = INTEGRATORS["augmented_bug"](y, 0.0, 0.01, rhs=rhs, trunc=full, enrich=0)
    assert plain.normal > 0.5 * plain.increment


def test_enrichment_options_are_refused_for_the_fixed_rank_bug():
    with pytest.raises(ConfigError, match="'enrich'.*augmented_bug"):
        BUGParams(integrator="bug", enrich=4)
    with pytest.raises(ConfigError, match="'normal_rtol'"):
        BUGParams(integrator="bug", normal_rtol=0.1)
    with pytest.raises(ValueError, match="enrich: expected an integer >= 0"):
        INTEGRATORS["augmented_bug"](*_tiny_step_args(), rhs=_tiny_rhs(), trunc=TRUNC, enrich=-1)
    with pytest.raises(ValueError, match="normal_rtol: expected a positive number"):
        INTEGRATORS["parallel_bug"](
            *_tiny_step_args(), rhs=_tiny_rhs(), trunc=TRUNC, normal_rtol=0
        )


def _tiny_step_args() -> tuple:
    params = SpinChainParams(sites=2, tree="balanced_binary", **XXZ)
    tree = build_tree(params)
    return product_state(tree, initial_vectors(params), rank=1), 0.0, 0.01


def _tiny_rhs() -> LinearTreeRHS:
    params = SpinChainParams(sites=2, tree="balanced_binary", **XXZ)
    return LinearTreeRHS(to_ttno(hamiltonian(params), build_tree(params)), factor=-1j)


def test_make_stepper_passes_the_enrichment():
    params = SpinChainParams(sites=4, **XXZ)
    tree = build_tree(params)
    rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree), factor=-1j)
    step = make_stepper(BUGParams(integrator="augmented_bug", enrich=3, normal_rtol=None), rhs)
    assert step.keywords["enrich"] == 3 and step.keywords["normal_rtol"] is None
    assert "enrich" not in make_stepper(BUGParams(integrator="bug"), rhs).keywords


# ---------------------------------------------------------------- the 12-site acceptance set

STEPS = (0.02, 0.01, 0.005)

#: Integrators whose fitted order on the 12-site XXZ Néel quench is checked (>= 1.8).
SECOND_ORDER = ("tdvp",)


#: Error below which smaller steps need not help. The truncation (atol 1e-8 per edge and
#: step) sets about 1e-6; the parallel BUG's step control accepts up to ``c * atol`` of
#: dropped blocks and norm defect per step (c = 10), which adds up to a few 1e-5 over the
#: 50-200 steps here, whatever h (measured on 12 sites: 2.9e-5 .. 5.4e-5 at all three h).
PLATEAU = {"parallel_bug": 1e-4}

#: Known gaps (issue 19, measured 2026-12-07): every error is below 1e-3, but a smaller step
#: made it larger. Max per-site errors at h = 0.02 / 0.01 / 0.005.
KNOWN_GAPS = {
    ("tfim", "parallel_bug", "caterpillar"): "4.3e-6 / 8.0e-7 / 1.0e-4 (0 rejections at 0.005)",
    ("random", "parallel_bug", "caterpillar"): "4.2e-5 / 6.3e-5 / 2.0e-4",
    ("random", "augmented_bug", "caterpillar"): "1.6e-5 / 1.1e-5 / 1.5e-5 (plateau)",
}


def _known_gap(request, case: str, integrator: str, tree: str) -> None:
    gap = KNOWN_GAPS.get((case, integrator, tree))
    if gap is not None:
        request.applymarker(
            pytest.mark.xfail(reason=f"not monotone in h yet: {gap}", strict=False)
        )


def _assert_accurate_and_converging(
    integrator: str, results: list[dict[str, float]], record_property
) -> None:
    record_property("errors", results)  # in the JUnit XML: the numbers of the closing note
    for r in results:
        assert r["mz"] < 1e-3 and r["zz"] < 1e-3, results
    # smaller steps are no worse, until the plateau
    floor = PLATEAU.get(integrator, 1e-6)
    for coarse, fine in zip(results, results[1:], strict=False):
        assert fine["mz"] <= max(1.1 * coarse["mz"], floor), results


@pytest.mark.slow
@pytest.mark.parametrize("tree", ["caterpillar", "balanced_binary"])
@pytest.mark.parametrize("integrator", ADAPTIVE)
def test_xxz_neel_quench_12_sites(integrator, tree, record_property):
    params = SpinChainParams(sites=12, tree=tree, initial="neel", **XXZ)
    results = [quench(params, integrator, h, 1.0) for h in STEPS]
    _assert_accurate_and_converging(integrator, results, record_property)
    if integrator in SECOND_ORDER:
        # above the truncation plateau here (measured: slope 3.2 caterpillar, 3.0 binary)
        slope = np.polyfit(np.log(STEPS), np.log([r["mz"] for r in results]), 1)[0]
        record_property("slope", float(slope))
        assert slope >= 1.8, (results, slope)


@pytest.mark.slow
@pytest.mark.parametrize("tree", ["caterpillar", "balanced_binary"])
@pytest.mark.parametrize("integrator", ADAPTIVE)
def test_tfim_neel_quench_12_sites(integrator, tree, record_property, request):
    _known_gap(request, "tfim", integrator, tree)
    params = SpinChainParams(model="tfim", sites=12, tree=tree, initial="neel")
    results = [quench(params, integrator, h, 1.0) for h in STEPS]
    _assert_accurate_and_converging(integrator, results, record_property)


@pytest.mark.slow
@pytest.mark.parametrize("tree", ["caterpillar", "balanced_binary"])
@pytest.mark.parametrize("integrator", ADAPTIVE)
def test_random_product_state_12_sites(integrator, tree, record_property, request):
    _known_gap(request, "random", integrator, tree)
    params = SpinChainParams(sites=12, tree=tree, **XXZ)
    vectors = random_vectors(12, seed=7)
    results = [quench(params, integrator, h, 1.0, vectors=vectors) for h in STEPS]
    _assert_accurate_and_converging(integrator, results, record_property)


# ------------------------------------------------------- second order until the plateau

#: The steps and the truncation (atol 1e-11, ranks up to 128) of the order check: tight
#: enough that the time error shows over the whole range.
ORDER_STEPS = (0.04, 0.02, 0.01)
ORDER_TRUNC = Truncation(atol=1e-11, max_rank=128, min_rank=2)

#: The second-order BUG integrators and their options for the order check. The parallel
#: BUG is second order through its enrichment from ``H Y0`` (Kusch's second-order parallel
#: integrator, arXiv 2403.02834, "Variant 2"); its step control is off here because at
#: atol 1e-11 it would halve nearly every step.
SECOND_ORDER_BUG = {"midpoint_bug": {}, "parallel_bug": {"rejection": "none"}}


@pytest.mark.slow
@pytest.mark.parametrize("tree", ["caterpillar", "balanced_binary"])
@pytest.mark.parametrize("integrator", sorted(SECOND_ORDER_BUG))
def test_second_order_bug_on_the_12_site_xxz_quench(integrator, tree, record_property):
    """Fitted slope of the max per-site error, T = 0.8 (measured: midpoint 1.93 caterpillar,
    2.17 binary; parallel 1.96 caterpillar, 2.95 binary)."""
    params = SpinChainParams(sites=12, tree=tree, initial="neel", **XXZ)
    options = SECOND_ORDER_BUG[integrator]
    errors = [
        quench(params, integrator, h, 0.8, trunc=ORDER_TRUNC, **options)["mz"] for h in ORDER_STEPS
    ]
    slope = float(np.polyfit(np.log(ORDER_STEPS), np.log(errors), 1)[0])
    record_property("errors", errors)
    record_property("slope", slope)
    assert slope >= 1.8, (errors, slope)
