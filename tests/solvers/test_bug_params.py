"""BUGParams and make_stepper: validation, every option reaches its integrator, bitwise calls."""

from __future__ import annotations

import dataclasses
import functools
import typing

import numpy as np
import pytest

from problems.radiative_transfer import (
    TransportParams,
    initial_moments,
    mass_weights,
    time_step,
    transport_operator,
)
from problems.spin_chain import (
    SpinChainParams,
    build_tree,
    exact_dynamics,
    hamiltonian,
    initial_vectors,
)
from solvers.bug import (
    INTEGRATOR_OPTIONS,
    INTEGRATORS,
    BUGParams,
    LinearTreeRHS,
    make_stepper,
)
from tensorsim import Truncation
from tensorsim.config import ConfigError, load_config
from tensorsim.ttn import Tree, inner, local_expectations, product_state
from tensorsim.ttn.conservation import functional_network, include_functional
from tensorsim.ttn.operator import to_ttno

Z = np.diag([1.0, -1.0])


@functools.cache
def chain(sites: int = 4):
    params = SpinChainParams(sites=sites)
    tree = build_tree(params)
    rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree), factor=-1j)
    return params, tree, rhs


def _initial(bug: BUGParams, sites: int = 4):
    params, tree, _ = chain(sites)
    return bug.initial_state(tree, initial_vectors(params), dtype=np.complex128)


def _run(stepper, y, h, n):
    infos = []
    for k in range(n):
        y, info = stepper(y, k * h, h)
        infos.append(info)
    return y, infos


def _same(a, b) -> bool:
    return all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
        for x, y in zip(a.tensors, b.tensors, strict=True)
    )


# ---------------------------------------------------------------- the parameter table


def test_integrator_choices_are_the_registry():
    hint = typing.get_type_hints(BUGParams)["integrator"]
    assert set(typing.get_args(hint)) == set(INTEGRATORS) == set(INTEGRATOR_OPTIONS)


def test_defaults_and_truncation_as_the_drivers_built_it():
    bug = BUGParams()
    assert (bug.integrator, bug.substep, bug.rejection, bug.conserve) == (
        "parallel_bug",
        "krylov",
        "norm",
        False,
    )
    # spin chain: absolute tolerance only; radiative transfer / UQ: relative only
    assert bug.truncation() == Truncation(atol=1e-8, max_rank=40, min_rank=2)
    rt = BUGParams(integrator="augmented_bug", atol=None, rtol=1e-3, max_rank=50, initial_rank=10)
    assert rt.truncation() == Truncation(rtol=1e-3, max_rank=50, min_rank=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_rank": 1}, "'max_rank': 1 is smaller than min_rank = 2"),
        ({"initial_rank": 41}, "'initial_rank': 41 is larger than max_rank = 40"),
        (
            {"integrator": "augmented_bug", "rejection": "paper"},
            "'rejection': 'paper' applies to integrator 'parallel_bug' only",
        ),
        ({"integrator": "bug", "rejection": "none"}, "applies to integrator 'parallel_bug' only"),
        (
            {"integrator": "bug", "conserve": True},
            "'conserve'.*applies to integrators 'augmented_bug', 'parallel_bug' only",
        ),
        ({"integrator": "tebd"}, "'integrator': expected one of 'parallel_bug'"),
        ({"substep": "euler"}, "'substep'"),
        ({"atol": -1.0}, "'atol'"),
        ({"rtol": 0.0}, "'rtol'"),
    ],
)
def test_bad_values_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BUGParams(**kwargs)


def test_refusal_names_the_key_in_a_loaded_config():
    with pytest.raises(ConfigError, match="applies to integrator 'parallel_bug' only"):
        load_config(BUGParams, overrides=["integrator=augmented_bug", "rejection=paper"])
    # the default rejection with another integrator is no choice, so it is accepted
    assert load_config(BUGParams, overrides=["integrator=bug"]).rejection == "norm"
    cfg = load_config(BUGParams, overrides=["atol=none", "rtol=1e-4"])
    assert cfg.truncation() == Truncation(rtol=1e-4, max_rank=40, min_rank=2)


def test_a_subclass_default_rejection_is_its_own():
    @dataclasses.dataclass(frozen=True)
    class Paper(BUGParams):
        rejection: typing.Literal["norm", "paper", "none"] = "paper"

    assert Paper().rejection == "paper"
    # the table's own default is no choice of the user's: accepted with any integrator
    assert Paper(integrator="augmented_bug").rejection == "paper"
    for other in ("norm", "none"):
        with pytest.raises(ConfigError, match="applies to integrator 'parallel_bug' only"):
            Paper(integrator="augmented_bug", rejection=other)


def test_initial_state_is_the_padded_product_state():
    params, tree, _ = chain()
    bug = BUGParams(initial_rank=3)
    y = bug.initial_state(tree, initial_vectors(params), dtype=np.complex128)
    ref = product_state(tree, initial_vectors(params), rank=3, dtype=np.complex128)
    assert _same(y, ref)
    assert max(y.ranks().values()) == 3
    weights = [np.array([1.0, 2.0])] * 4
    conserving = BUGParams(integrator="augmented_bug", conserve=True)
    y = conserving.initial_state(tree, initial_vectors(params), conserve=weights)
    assert _same(
        y, include_functional(product_state(tree, initial_vectors(params), rank=2), weights)
    )
    # without conserve the weights are the problem's, not used
    plain = BUGParams().initial_state(tree, initial_vectors(params), conserve=weights)
    assert _same(plain, product_state(tree, initial_vectors(params), rank=2))
    with pytest.raises(ValueError, match="conserve: this problem defines no conserved"):
        conserving.initial_state(tree, initial_vectors(params))


# ---------------------------------------------------------------- make_stepper


@pytest.mark.parametrize("name", sorted(INTEGRATORS))
def test_every_integrator_is_reachable_and_bitwise_a_direct_call(name):
    _, tree, rhs = chain()
    bug = BUGParams(integrator=name, initial_rank=4 if name == "bug" else 2)
    stepper = make_stepper(bug, rhs)
    assert stepper.func is INTEGRATORS[name]
    adaptive = {"bug": set(), "tdvp": {"enrich"}, "tdvp2": {"enrich"}}.get(
        name, {"enrich", "normal_rtol"}
    )
    expected = (
        {"rhs", "trunc", "executor", "substep"}
        | adaptive
        | ({"rejection"} if name == "parallel_bug" else set())
    )
    assert set(stepper.keywords) == expected
    y0 = _initial(bug)
    h = 0.05
    y, infos = _run(stepper, y0, h, 3)
    direct = y0
    for k in range(3):
        extra = {"rejection": "norm"} if name == "parallel_bug" else {}
        if name != "bug":
            extra.update(enrich=8)
        if name not in ("bug", "tdvp", "tdvp2"):
            extra.update(normal_rtol=1e-2)
        direct, info = INTEGRATORS[name](
            direct,
            k * h,
            h,
            rhs=rhs,
            trunc=Truncation(atol=1e-8, max_rank=40, min_rank=2),
            executor=None,
            **extra,
        )
        assert info.ranks == infos[k].ranks and info.trunc_error == infos[k].trunc_error
    assert _same(y, direct)


@pytest.mark.parametrize("name", sorted(INTEGRATORS))
def test_substep_reaches_the_integrator(name):
    """Krylov is exact to round-off; RK4 is accurate but not exact (measured ~1e-5, ~2e-7)."""
    params, _, rhs = chain()
    h, n = 0.02, 10
    exact = float(exact_dynamics(params, np.array([n * h])).mz_mean[0])
    errors = {}
    for substep in ("krylov", "rk4"):
        bug = BUGParams(integrator=name, substep=substep, initial_rank=4 if name == "bug" else 2)
        stepper = make_stepper(bug, rhs)
        assert stepper.keywords["substep"] == substep
        y, _ = _run(stepper, _initial(bug), h, n)
        errors[substep] = abs(float(np.mean(local_expectations(y, Z))) - exact)
    assert errors["krylov"] < 1e-10
    assert 1e-9 < errors["rk4"] < 1e-4


def test_rejection_reaches_the_parallel_bug():
    """From the zero-padded state the first step is redone under 'norm' and 'paper' only
    (the textbook method: no enrichment, which would make the first step right)."""
    params, _, rhs = chain()
    h, n = 0.1, 5
    exact = float(exact_dynamics(params, np.array([n * h])).mz_mean[0])
    rejected, errors = {}, {}
    for rejection in ("norm", "paper", "none"):
        bug = BUGParams(rejection=rejection, enrich=0)
        stepper = make_stepper(bug, rhs)
        assert stepper.keywords["rejection"] == rejection
        y, infos = _run(stepper, _initial(bug), h, n)
        rejected[rejection] = sum(i.rejected for i in infos)
        errors[rejection] = abs(float(np.mean(local_expectations(y, Z))) - exact)
    assert rejected["none"] == 0 and rejected["norm"] >= 1 and rejected["paper"] >= 1
    assert errors["norm"] < 1e-10 and errors["none"] > 1e-4


@functools.cache
def transport():
    params = TransportParams(cells=41, degree=7, t_end=0.2, boundary="periodic")
    op = transport_operator(params)
    tree = Tree.from_nested((0, 1), op.dims)
    rhs = LinearTreeRHS(to_ttno(op, tree), factor=1.0)
    return params, tree, rhs


@pytest.mark.parametrize("name", ["augmented_bug", "parallel_bug"])
def test_conserve_passes_the_problem_weights(name):
    """As the radiative-transfer driver called it (rk4, rtol, the mass functional): bitwise."""
    params, tree, rhs = transport()
    weights = mass_weights(params)
    h, _ = time_step(params)
    common = dict(integrator=name, atol=None, rtol=1e-3, max_rank=50, initial_rank=10)
    common["substep"] = "rk4"
    bug = BUGParams(**common, conserve=True)
    stepper = make_stepper(bug, rhs, conserve=weights)
    assert stepper.keywords["conserve"] is weights
    y0 = bug.initial_state(tree, initial_moments(params), conserve=weights)
    y, _ = _run(stepper, y0, h, 4)
    direct = include_functional(product_state(tree, initial_moments(params), rank=10), weights)
    for k in range(4):
        direct, _ = INTEGRATORS[name](
            direct,
            k * h,
            h,
            rhs=rhs,
            trunc=Truncation(rtol=1e-3, max_rank=50, min_rank=2),
            executor=None,
            substep="rk4",
            conserve=weights,
        )
    assert _same(y, direct)
    # conserve = False: the weights are the problem's but not passed, and the result differs
    free = BUGParams(**common)
    plain = make_stepper(free, rhs, conserve=weights)
    assert "conserve" not in plain.keywords
    z, _ = _run(plain, free.initial_state(tree, initial_moments(params), conserve=weights), h, 4)
    # periodic, no absorption: the discrete operator conserves the mass, so only the
    # truncation changes it (measured 4e-16 with conserve, 4e-6 and 5e-5 without)
    w = functional_network(y0, weights)
    m0 = float(inner(w, y0))
    assert abs(float(inner(w, y)) - m0) < 1e-13 * m0
    assert abs(float(inner(w, z)) - m0) > 1e-7 * m0


def test_conserve_refusals():
    params, tree, rhs = transport()
    bug = BUGParams(integrator="augmented_bug", conserve=True)
    with pytest.raises(ValueError, match="conserve: this problem defines no conserved functional"):
        make_stepper(bug, rhs)
    with pytest.raises(ValueError, match="expected 2 weight vectors"):
        make_stepper(bug, rhs, conserve=mass_weights(params)[:1])
    with pytest.raises(TypeError, match="conserve: expected a sequence"):
        make_stepper(bug, rhs, conserve=np.ones(3))
    # the BUG keeps no functional: refused when set (even past the table's own check)
    fixed = BUGParams(integrator="bug")
    object.__setattr__(fixed, "conserve", True)
    with pytest.raises(ValueError, match="applies to integrators 'augmented_bug', 'parallel_bug'"):
        make_stepper(fixed, rhs, conserve=mass_weights(params))


def test_make_stepper_argument_types():
    _, _, rhs = chain()
    with pytest.raises(TypeError, match="params: expected a BUGParams"):
        make_stepper({"integrator": "bug"}, rhs)
    with pytest.raises(TypeError, match="rhs: expected a LinearTreeRHS"):
        make_stepper(BUGParams(), rhs.op)


def test_the_registry_is_read_when_the_stepper_is_made(monkeypatch):
    """A wrapper put into INTEGRATORS (fault injection) is used, with the declared options."""
    _, _, rhs = chain()
    calls = []

    def wrapper(state, t, h, **kwargs):
        calls.append(sorted(kwargs))
        return INTEGRATORS_REAL(state, t, h, **kwargs)

    INTEGRATORS_REAL = INTEGRATORS["bug"]
    monkeypatch.setitem(INTEGRATORS, "bug", wrapper)
    bug = BUGParams(integrator="bug")
    make_stepper(bug, rhs)(_initial(bug), 0.0, 0.01)
    assert calls == [["executor", "rhs", "substep", "trunc"]]
