"""Spin chains: Hamiltonians against dense Kronecker products, exact dynamics against
dense ``expm``, analytic solutions and published reference values."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from problems.shipped_data import reference_values
from problems.spin_chain import (
    PAULIS,
    ExactResult,
    SpinChainParams,
    build_tree,
    cut_entropy,
    exact_dynamics,
    exact_ground_state,
    hamiltonian,
    initial_vectors,
    lattice_bonds,
    lattice_shape,
    magnetization_operator,
    next_nearest_bonds,
    pauli_correlations,
)
from solvers.bug import dmrg
from tensorsim import Truncation
from tensorsim.config import ConfigError
from tensorsim.ttn import Tree, random_ttn
from tensorsim.ttn.operator import to_ttno

# Written out here, independent of the module's constants.
I2 = np.eye(2)
X = np.array([[0.0, 1.0], [1.0, 0.0]])
Y = np.array([[0.0, -1.0j], [1.0j, 0.0]])
Z = np.array([[1.0, 0.0], [0.0, -1.0]])
N = np.array([[1.0, 0.0], [0.0, 0.0]])
UP = np.array([1.0, 0.0])
DOWN = np.array([0.0, 1.0])

MODELS = ("long_range_ising", "tfim", "xxz", "j1j2")


def embed(ops: dict[int, np.ndarray], d: int) -> np.ndarray:
    """Dense ``prod_s ops[s]`` on d sites, site 0 the leftmost Kronecker factor."""
    return reduce(np.kron, [ops.get(s, I2) for s in range(d)], np.ones((1, 1)))


def dense_hamiltonian(p: SpinChainParams) -> np.ndarray:
    d = p.sites
    h = np.zeros((2**d, 2**d), dtype=complex)
    if p.model == "long_range_ising":
        for k in range(d):
            h += p.omega * embed({k: X}, d) + p.delta * embed({k: N}, d)
        for i in range(d):
            for j in range(i + 1, d):
                h += p.nu / abs(i - j) ** p.alpha * embed({i: N, j: N}, d)
    elif p.model == "tfim":
        for i in range(d - 1):
            h -= p.j * embed({i: X, i + 1: X}, d)
        for i in range(d):
            h -= p.g * embed({i: Z}, d)
    elif p.model == "xxz":
        for i in range(d - 1):
            h += p.j * (
                embed({i: X, i + 1: X}, d)
                + embed({i: Y, i + 1: Y}, d)
                + p.jz * embed({i: Z, i + 1: Z}, d)
            )
        for i in range(d):
            h += p.hz * embed({i: Z}, d)
    else:  # j1j2: Heisenberg exchange j on (i, i + 1) and j2 on (i, i + 2)
        for step, coupling in ((1, p.j), (2, p.j2)):
            for i in range(d - step):
                h += coupling * sum(embed({i: P, i + step: P}, d) for P in (X, Y, Z))
    return h


def params_for(model: str, d: int, **kw) -> SpinChainParams:
    """Non-default couplings, so that every coefficient is exercised."""
    couplings = {
        "long_range_ising": {"omega": 0.7, "delta": -0.4, "nu": 1.3, "alpha": 1.5},
        "tfim": {"j": 0.8, "g": 1.3},
        "xxz": {"j": 0.9, "jz": -0.6, "hz": 0.35},
        "j1j2": {"j": 0.9, "j2": -0.4},
    }[model]
    return SpinChainParams(model=model, sites=d, **{**couplings, **kw})


def product(vectors: list[np.ndarray]) -> np.ndarray:
    return reduce(np.kron, vectors, np.ones(1))


# ------------------------------------------------------------------ Hamiltonians


@pytest.mark.parametrize("d", [3, 4, 5])
@pytest.mark.parametrize("model", MODELS)
def test_hamiltonian_matches_dense_kron(model, d):
    p = params_for(model, d)
    got = hamiltonian(p).to_sparse().toarray()
    np.testing.assert_allclose(got, dense_hamiltonian(p), rtol=0, atol=1e-13)


@pytest.mark.parametrize("model", MODELS)
def test_default_couplings_match_dense_kron(model):
    p = SpinChainParams(model=model, sites=4)
    got = hamiltonian(p).to_sparse().toarray()
    np.testing.assert_allclose(got, dense_hamiltonian(p), rtol=0, atol=1e-13)


@pytest.mark.parametrize("model", MODELS)
def test_hamiltonian_hermitian_and_real(model):
    op = hamiltonian(params_for(model, 6))
    h = op.to_sparse()
    assert abs(h - h.conj().T).max() == 0.0
    assert abs(op.adjoint().to_sparse() - h).max() < 1e-14
    assert not op.is_complex  # XXZ's YY coupling is written with the real matrix iY


def test_hamiltonian_term_counts_and_zero_terms():
    d = 6
    assert len(hamiltonian(SpinChainParams(sites=d)).terms) == 2 * d + d * (d - 1) // 2
    assert len(hamiltonian(SpinChainParams(model="tfim", sites=d)).terms) == 2 * d - 1
    # hz = 0: the field terms are left out
    assert len(hamiltonian(SpinChainParams(model="xxz", sites=d)).terms) == 3 * (d - 1)
    j1j2 = SpinChainParams(model="j1j2", sites=d)
    assert len(hamiltonian(j1j2).terms) == 3 * (d - 1) + 3 * (d - 2)
    assert len(hamiltonian(SpinChainParams(model="j1j2", sites=d, j2=0.0)).terms) == 3 * (d - 1)
    zero = hamiltonian(SpinChainParams(model="tfim", sites=3, j=0.0, g=0.0))
    assert abs(zero.to_sparse()).max() == 0.0


def test_params_validation():
    with pytest.raises(ValueError, match="sites"):
        SpinChainParams(sites=1)
    with pytest.raises(ConfigError, match="model"):
        SpinChainParams(model="heisenberg")
    with pytest.raises(ConfigError, match="alpha"):
        SpinChainParams(alpha=-1.0)
    with pytest.raises(ConfigError, match="initial"):
        SpinChainParams(initial="down")
    with pytest.raises(ValueError, match="omega"):
        hamiltonian(SpinChainParams(sites=3, omega=math.inf))
    with pytest.raises(TypeError, match="SpinChainParams"):
        hamiltonian({"sites": 4})
    # another model's coupling is refused, not ignored
    with pytest.raises(ConfigError, match="'jz': a coupling of model 'xxz', not of model 'tfim'"):
        SpinChainParams(model="tfim", jz=0.5)
    with pytest.raises(ConfigError, match="'omega'"):
        SpinChainParams(model="xxz", omega=2.0)
    with pytest.raises(ConfigError, match="'j2': a coupling of model 'j1j2', not of model 'xxz'"):
        SpinChainParams(model="xxz", j2=0.3)
    with pytest.raises(ConfigError, match="'jz': a coupling of model 'xxz', not of model 'j1j2'"):
        SpinChainParams(model="j1j2", jz=0.5)
    assert SpinChainParams(model="j1j2", j=2.0, j2=0.3).j == 2.0  # j is shared
    with pytest.raises(ValueError, match="j2: expected a finite value"):
        hamiltonian(SpinChainParams(model="j1j2", sites=3, j2=math.nan))


def test_builder_keeps_the_hand_written_terms_to_the_bit():
    """The models come from tensorsim.ttn.ModelBuilder; the XXZ terms are the ones written
    out by hand (YY as -(iY)(iY) with the real iY), coefficient and matrix bit for bit."""
    p = SpinChainParams(model="xxz", sites=3, j=0.9, jz=-0.6, hz=0.35)
    iy = np.array([[0.0, 1.0], [-1.0, 0.0]])
    want = []
    for i, j in ((0, 1), (1, 2)):
        want += [(0.9, {i: X, j: X}), (-0.9, {i: iy, j: iy}), (0.9 * -0.6, {i: Z, j: Z})]
    want += [(0.35, {k: Z}) for k in range(3)]
    got = hamiltonian(p).terms
    assert len(got) == len(want)
    for (c, f), (c_want, f_want) in zip(got, want, strict=True):
        assert type(c) is float and c == c_want and list(f) == list(f_want)
        for site, m in f.items():
            assert m.dtype == np.float64 and m.tobytes() == f_want[site].tobytes()


# ------------------------------------------------------------------ tree and initial state


@pytest.mark.parametrize("kind", ["balanced_binary", "caterpillar"])
def test_build_tree(kind):
    tree = build_tree(SpinChainParams(sites=8, tree=kind))
    assert tree.n_sites == 8 and tree.dims == (2,) * 8
    assert tree.nested() == getattr(Tree, kind)(8).nested()
    assert build_tree(SpinChainParams(sites=16)).nested() == (
        (((0, 1), (2, 3)), ((4, 5), (6, 7))),
        (((8, 9), (10, 11)), ((12, 13), (14, 15))),
    )


def test_initial_vectors_and_observable():
    up = initial_vectors(SpinChainParams(sites=5))
    assert len(up) == 5 and all(np.array_equal(v, UP) for v in up)
    neel = initial_vectors(SpinChainParams(sites=5, initial="neel"))
    assert [int(np.argmax(v)) for v in neel] == [0, 1, 0, 1, 0]
    assert all(v.shape == (2,) and np.linalg.norm(v) == 1.0 for v in neel)
    z = magnetization_operator()
    np.testing.assert_array_equal(z, Z)
    z[0, 0] = 5.0  # a copy: the module's constant stays intact
    np.testing.assert_array_equal(magnetization_operator(), Z)


# ------------------------------------------------------------------ exact dynamics


@pytest.mark.parametrize("initial", ["up", "neel"])
@pytest.mark.parametrize("model", MODELS)
def test_exact_dynamics_two_sites_against_dense_expm(model, initial):
    p = params_for(model, 2, initial=initial)
    times = np.array([0.0, 0.25, 0.25, 1.0, 2.5])
    res = exact_dynamics(p, times)
    assert isinstance(res, ExactResult)
    h = dense_hamiltonian(p)
    psi0 = product([UP, DOWN] if initial == "neel" else [UP, UP]).astype(complex)
    z_ops = [embed({0: Z}, 2), embed({1: Z}, 2)]
    for n, t in enumerate(times):
        psi = scipy.linalg.expm(-1j * t * h) @ psi0
        mz = [np.vdot(psi, zk @ psi).real for zk in z_ops]
        np.testing.assert_allclose(res.mz[n], mz, atol=1e-12)
        assert res.energy[n] == pytest.approx(np.vdot(psi, h @ psi).real, abs=1e-12)
    np.testing.assert_allclose(res.mz_mean, res.mz.mean(axis=1), atol=1e-15)
    np.testing.assert_allclose(res.norm, 1.0, atol=1e-12)
    np.testing.assert_array_equal(res.times, times)
    assert res.mz.shape == (5, 2) and res.energy.shape == res.norm.shape == (5,)


@pytest.mark.parametrize("d", [3, 4])
def test_single_site_field_analytic(d):
    # H = omega sum_k X_k: exp(-i t omega X)|up> = cos(omega t)|up> - i sin(omega t)|down>,
    # so <Z_k>(t) = cos(2 omega t) (and -cos(2 omega t) for a site starting down).
    omega = 0.7
    times = np.linspace(0.25, 3.0, 7)  # need not start at 0
    signs = np.array([(-1.0) ** k for k in range(d)])
    for initial, sign in [("up", np.ones(d)), ("neel", signs)]:
        p = SpinChainParams(sites=d, omega=omega, delta=0.0, nu=0.0, initial=initial)
        res = exact_dynamics(p, times)
        expect = np.cos(2 * omega * times)[:, None] * sign[None, :]
        np.testing.assert_allclose(res.mz, expect, atol=1e-12)
        np.testing.assert_allclose(res.energy, 0.0, atol=1e-12)


def test_tfim_l16_against_tenpy_quimb_tebd():
    # TeNPy TFIChain(L=16, J=1, g=1.5) from all up, TEBD order 2, dt=0.05, chi=32:
    # <Sigmaz_8>(t=2) = 0.792260 (quimb TEBD 0.792256); TEBD carries a Trotter error.
    # The values and their origin: data/references.toml.
    ref = reference_values("tfim_l16_tebd")
    p = SpinChainParams(model="tfim", sites=16, j=1.0, g=1.5)
    res = exact_dynamics(p, np.array([0.0, 2.0]))
    value = res.mz[-1, 8]
    print(f"TFIM L=16 exact <Z_8>(t=2) = {value:.8f} (TeNPy TEBD {ref['tenpy']:.6f})")
    assert abs(value - ref["tenpy"]) < 1e-3, value
    # all up: <Z_i> = 1 and <X_i X_i+1> = 0, so E = -g L
    np.testing.assert_allclose(res.energy, -1.5 * 16, atol=1e-10)
    np.testing.assert_allclose(res.norm, 1.0, atol=1e-12)
    np.testing.assert_allclose(res.mz[0], 1.0)
    # reflection symmetry of the open chain
    np.testing.assert_allclose(res.mz[-1], res.mz[-1, ::-1], atol=1e-10)


def long_range_energy_all_up(d: int, delta: float, nu: float, alpha: float) -> float:
    # n = 1 on every site and <X_k> = 0: E = d delta + nu sum_{k=1}^{d-1} (d - k) k^-alpha
    return d * delta + nu * sum((d - k) * k**-alpha for k in range(1, d))


def test_long_range_energy_formula():
    # bug-ttn.md section 7 quotes E = 92.1833 for d = 16 (alpha = 1: 16 + 2 (16 H_15 - 15))
    e = long_range_energy_all_up(16, 1.0, 2.0, 1.0)
    h15 = sum(1.0 / k for k in range(1, 16))
    assert e == pytest.approx(16 + 2 * (16 * h15 - 15), rel=1e-14)
    assert e == pytest.approx(reference_values("long_range_ising_d16")["energy"], abs=5e-5)


def occupations(d: int) -> np.ndarray:
    """``occ[x, k]`` = 1 where site k of basis state x is up (index bit 0)."""
    index = np.arange(2**d)
    return 1 - ((index[:, None] >> (d - 1 - np.arange(d))[None, :]) & 1)


def independent_long_range_matrix(d: int, omega: float, delta: float, nu: float) -> sp.csr_array:
    """The alpha=1 long-range Ising Hamiltonian by bit arithmetic (no SumOfProducts)."""
    index = np.arange(2**d)
    occ = occupations(d)
    diag = delta * occ.sum(axis=1).astype(float)
    for i in range(d):
        for j in range(i + 1, d):
            diag += nu / (j - i) * occ[:, i] * occ[:, j]
    rows = [index]
    cols = [index]
    vals = [diag]
    for k in range(d):
        rows.append(index)
        cols.append(index ^ (1 << (d - 1 - k)))
        vals.append(np.full(2**d, omega))
    return sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2**d,) * 2
    )


def test_long_range_ising_d12():
    d = 12
    p = SpinChainParams(sites=d)
    times = np.array([0.0, 0.3, 1.0])
    res = exact_dynamics(p, times)
    h = independent_long_range_matrix(d, 1.0, 1.0, 2.0)
    psi0 = np.zeros(2**d, dtype=complex)
    psi0[0] = 1.0
    z_diag = 2.0 * occupations(d) - 1.0
    for n, t in enumerate(times):
        psi = spla.expm_multiply(-1j * t * h, psi0) if t > 0 else psi0
        mz = np.abs(psi) ** 2 @ z_diag
        np.testing.assert_allclose(res.mz[n], mz, atol=1e-10)
        assert res.mz_mean[n] == pytest.approx(mz.mean(), abs=1e-10)
    np.testing.assert_allclose(res.energy, long_range_energy_all_up(d, 1.0, 2.0, 1.0), rtol=1e-12)
    np.testing.assert_allclose(res.norm, 1.0, atol=1e-12)


def test_long_range_ising_d16_reference():
    # bug-ttn.md section 7: exact mz_mean(1) = 0.95905871 and E = 92.1833 (d = 16, 2412.00858
    # Sec. 5.1 parameters, all sites in (1, 0)); the values: data/references.toml.
    ref = reference_values("long_range_ising_d16")
    p = SpinChainParams()
    res = exact_dynamics(p, np.array([0.0, 1.0]))
    print(f"long-range Ising d=16 mz_mean(1) = {res.mz_mean[-1]:.8f}, E = {res.energy[-1]:.6f}")
    assert res.mz_mean[-1] == pytest.approx(ref["mz_mean_t1"], abs=5e-9)
    e = long_range_energy_all_up(16, 1.0, 2.0, 1.0)
    np.testing.assert_allclose(res.energy, e, rtol=1e-12)
    assert res.energy[-1] == pytest.approx(ref["energy"], abs=5e-5)
    np.testing.assert_allclose(res.norm, 1.0, atol=1e-12)


def test_exact_dynamics_errors():
    with pytest.raises(ValueError, match=r"sites.*2\^sites"):
        exact_dynamics(SpinChainParams(sites=17), np.array([0.0, 1.0]))
    p = SpinChainParams(sites=3)
    for bad in ([1.0, 0.5], [-0.1, 1.0], [], [[0.0, 1.0]], [0.0, math.nan]):
        with pytest.raises(ValueError, match="times"):
            exact_dynamics(p, np.array(bad))


def _kron_site(op: np.ndarray, k: int, d: int) -> np.ndarray:
    """``op`` on site ``k`` of ``d`` (site 0 the most significant), by Kronecker products."""
    out = np.ones((1, 1))
    for s in range(d):
        out = np.kron(out, op if s == k else np.eye(2))
    return out


@pytest.mark.parametrize("pauli", ["x", "y", "z"])
def test_pauli_correlations_against_kronecker_products(rng, pauli):
    d = 5
    psi = rng.standard_normal(2**d) + 1j * rng.standard_normal(2**d)
    got = pauli_correlations(psi, pauli)
    op = PAULIS[pauli]
    for i in range(d):
        for j in range(d):
            m = _kron_site(op, i, d) @ _kron_site(op, j, d)
            want = np.vdot(psi, m @ psi).real / np.vdot(psi, psi).real
            assert got[i, j] == pytest.approx(want, abs=1e-13)


def test_cut_entropy_of_known_states():
    ghz = np.zeros(2**4)
    ghz[0] = ghz[-1] = 1 / np.sqrt(2)
    for sites in ([0], [1, 2], [0, 3], [0, 1, 2]):
        assert cut_entropy(ghz, sites) == pytest.approx(np.log(2), abs=1e-14)
    product = np.kron(np.kron([1.0, 0.0], [0.6, 0.8]), [0.0, 1.0])
    assert cut_entropy(product, [1]) == pytest.approx(0.0, abs=1e-14)
    zz, xx = pauli_correlations(ghz, "z"), pauli_correlations(ghz, "x")
    np.testing.assert_allclose(zz, np.ones((4, 4)), atol=1e-15)
    np.testing.assert_allclose(xx, np.eye(4), atol=1e-15)
    with pytest.raises(ValueError, match="pauli: expected one of"):
        pauli_correlations(ghz, "w")


def test_exact_dynamics_entropies_and_correlations_at_time_zero_and_refusals():
    params = SpinChainParams(model="xxz", sites=6, initial="neel")
    out = exact_dynamics(params, np.array([0.0, 0.3]), cuts=[[0, 1, 2], [5]], correlations=["zz"])
    assert out.entropy.shape == (2, 2) and out.corr["zz"].shape == (2, 6, 6)
    np.testing.assert_allclose(out.entropy[0], 0.0, atol=1e-14)  # a product state
    neel = np.array([1.0 if (i + j) % 2 == 0 else -1.0 for i in range(6) for j in range(6)])
    np.testing.assert_allclose(out.corr["zz"][0].ravel(), neel, atol=1e-14)
    assert out.entropy[1, 0] > 1e-3
    np.testing.assert_allclose(np.diag(out.corr["zz"][1])[:-1], 1.0)
    np.testing.assert_allclose(
        [out.corr["zz"][1][k, k + 1] for k in range(5)], out.zz[1], atol=1e-13
    )
    with pytest.raises(ValueError, match="correlations: expected 'xx', 'yy' or 'zz'"):
        exact_dynamics(params, np.array([0.0]), correlations=["zx"])


def test_square_lattice_bonds_tree_and_hamiltonian():
    params = SpinChainParams(model="tfim", lattice="square", lx=3, ly=2, sites=6, g=0.7)
    # k = x * ly + y: bonds along x (k, k + 2) and along y (k, k + 1) within a column
    assert lattice_bonds(params) == [(0, 1), (0, 2), (1, 3), (2, 3), (2, 4), (3, 5), (4, 5)]
    assert lattice_shape(params) == (3, 2)
    # the tree bisects the longer extent first: columns {0, 1} | {2, 3, 4, 5}, ...
    assert build_tree(params).nested() == ((0, 1), ((2, 3), (4, 5)))
    x, z = np.array([[0.0, 1.0], [1.0, 0.0]]), np.diag([1.0, -1.0])

    def site(op, k):
        return reduce(np.kron, [op if s == k else np.eye(2) for s in range(6)])

    dense = -sum(site(x, i) @ site(x, j) for i, j in lattice_bonds(params))
    dense = dense - 0.7 * sum(site(z, k) for k in range(6))
    np.testing.assert_allclose(hamiltonian(params).to_sparse().toarray(), dense, atol=1e-14)
    ladder = SpinChainParams(model="xxz", lattice="ladder", lx=3, sites=6)
    assert lattice_bonds(ladder) == lattice_bonds(params)
    # the long-range model decays with the Euclidean distance on the lattice
    lr = SpinChainParams(lattice="square", lx=2, ly=2, sites=4, omega=0.0, delta=0.0, alpha=2.0)
    diag = np.diag(hamiltonian(lr).to_sparse().toarray())
    assert diag[0] == pytest.approx(2.0 * (4 * 1.0 + 2 * 0.5))  # 4 bonds at 1, 2 at sqrt 2


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"lattice": "square", "lx": 3, "ly": 3, "sites": 8}, "sites = lx \\* ly"),
        ({"lattice": "square", "lx": 0, "ly": 3, "sites": 3}, "lx, ly >= 1"),
        ({"lattice": "ladder", "lx": 2, "ly": 3, "sites": 6}, "a ladder has ly = 2"),
        ({"lx": 2}, "'lx'/'ly': the extents of a ladder or square lattice"),
    ],
)
def test_lattice_options_are_checked(overrides, match):
    with pytest.raises(ConfigError, match=match):
        SpinChainParams(**overrides)


# ------------------------------------------------------------------ J1-J2


def test_next_nearest_bonds_and_the_square_j1j2_hamiltonian():
    chain = SpinChainParams(model="j1j2", sites=5)
    assert next_nearest_bonds(chain) == [(0, 2), (1, 3), (2, 4)]
    square = SpinChainParams(model="j1j2", lattice="square", lx=3, ly=2, sites=6, j=0.8, j2=0.3)
    # k = x * ly + y: the two diagonals of the plaquettes {0, 1, 2, 3} and {2, 3, 4, 5}
    assert next_nearest_bonds(square) == [(0, 3), (1, 2), (2, 5), (3, 4)]
    ladder = SpinChainParams(model="j1j2", lattice="ladder", lx=3, sites=6)
    assert next_nearest_bonds(ladder) == next_nearest_bonds(square)
    three = SpinChainParams(model="j1j2", lattice="square", lx=3, ly=3, sites=9)
    assert len(next_nearest_bonds(three)) == 8 and len(lattice_bonds(three)) == 12
    dense = np.zeros((64, 64), dtype=complex)
    for coupling, bonds in ((0.8, lattice_bonds(square)), (0.3, next_nearest_bonds(square))):
        for i, j in bonds:
            dense += coupling * sum(embed({i: P, j: P}, 6) for P in (X, Y, Z))
    np.testing.assert_allclose(hamiltonian(square).to_sparse().toarray(), dense, atol=1e-14)


def test_majumdar_ghosh_chain_has_the_dimer_ground_state():
    """J2 = J1 / 2, open chain of even length: the singlets on (0, 1), (2, 3), ... are the
    ground state, energy -3 J1 d / 2 in the Pauli convention (-3/4 per singlet in S.S)."""
    d, j = 12, 0.7
    params = SpinChainParams(model="j1j2", sites=d, j=j, j2=j / 2)
    energy, vector = exact_ground_state(params)
    singlet = np.array([0.0, 1.0, -1.0, 0.0]) / math.sqrt(2)
    dimer = reduce(np.kron, [singlet] * (d // 2), np.ones(1))
    h = hamiltonian(params).to_sparse().tocsr()
    print(f"Majumdar-Ghosh d={d}: ED {energy:.14f}, -3 J d / 2 = {-1.5 * j * d:.14f}")
    assert energy == pytest.approx(-1.5 * j * d, rel=1e-12)
    assert float(dimer @ (h @ dimer)) == pytest.approx(-1.5 * j * d, rel=1e-13)
    np.testing.assert_allclose(h @ dimer, -1.5 * j * d * dimer, atol=1e-12)  # an eigenvector
    assert abs(np.vdot(dimer, vector)) == pytest.approx(1.0, abs=1e-10)  # the ground state
    gap = spla.eigsh(h, k=2, which="SA", return_eigenvectors=False)
    assert np.ptp(gap) > 0.5  # unique, gapped


@pytest.mark.parametrize(("tree", "enrich"), [("caterpillar", 0), ("balanced_binary", 4)])
def test_j1j2_chain_ground_state_by_dmrg(tree, enrich):
    params = SpinChainParams(model="j1j2", sites=12, j2=0.3, tree=tree)
    exact, _ = exact_ground_state(params)
    tree_ = build_tree(params)
    result = dmrg(
        to_ttno(hamiltonian(params), tree_),
        random_ttn(tree_, 4, rng=3),
        Truncation(atol=1e-10, max_rank=64),
        enrich=enrich,
    )
    error = abs(result.energies[-1] - exact) / abs(exact)
    print(f"J1-J2 d=12 j2=0.3 {tree}: DMRG {result.energies[-1]:.12f}, exact {exact:.12f}, "
          f"relative error {error:.1e}")  # fmt: skip
    assert result.converged and error <= 1e-10
