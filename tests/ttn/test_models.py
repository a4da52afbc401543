"""Site types and the model builder: operator algebra, dense Kronecker references, and
ground energies by DMRG against exact diagonalization and the free-fermion solution."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from solvers.bug import dmrg
from tensorsim import Truncation
from tensorsim.ttn import (
    HARDCORE_BOSON,
    SITE_TYPES,
    SPIN_HALF,
    SPIN_ONE,
    ModelBuilder,
    SiteType,
    Tree,
    build_operator,
    local_expectations,
    random_ttn,
    spin_site,
)
from tensorsim.ttn.operator import to_ttno

# Written out here, independent of the module: site type -> operator -> matrix.
S2 = 1 / math.sqrt(2)
REFERENCE = {
    "spin_half": {
        "X": [[0, 1], [1, 0]],
        "Y": [[0, -1j], [1j, 0]],
        "Z": [[1, 0], [0, -1]],
        "Sx": [[0, 0.5], [0.5, 0]],
        "Sy": [[0, -0.5j], [0.5j, 0]],
        "Sz": [[0.5, 0], [0, -0.5]],
        "Sp": [[0, 1], [0, 0]],
        "Sm": [[0, 0], [1, 0]],
        "N": [[1, 0], [0, 0]],
        "Id": [[1, 0], [0, 1]],
    },
    "spin_one": {
        "Sx": [[0, S2, 0], [S2, 0, S2], [0, S2, 0]],
        "Sy": [[0, -1j * S2, 0], [1j * S2, 0, -1j * S2], [0, 1j * S2, 0]],
        "Sz": [[1, 0, 0], [0, 0, 0], [0, 0, -1]],
        "Sp": [[0, 2 * S2, 0], [0, 0, 2 * S2], [0, 0, 0]],
        "Sm": [[0, 0, 0], [2 * S2, 0, 0], [0, 2 * S2, 0]],
        "Id": np.eye(3),
    },
    "hardcore_boson": {
        "B": [[0, 1], [0, 0]],
        "Bdag": [[0, 0], [1, 0]],
        "N": [[0, 0], [0, 1]],
        "Id": np.eye(2),
    },
}
TRUNC = Truncation(atol=1e-10, max_rank=64)


def comm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b - b @ a


def dense(ops: dict[int, np.ndarray], dims: tuple[int, ...]) -> np.ndarray:
    """``prod_s ops[s]`` by Kronecker products, site 0 the leftmost factor."""
    return reduce(np.kron, [ops.get(s, np.eye(n)) for s, n in enumerate(dims)], np.ones((1, 1)))


# ------------------------------------------------------------------ site types


@pytest.mark.parametrize("site", [SPIN_HALF, SPIN_ONE, HARDCORE_BOSON])
def test_site_matrices_match_the_written_out_ones(site):
    want = REFERENCE[site.name]
    assert set(site.names) == set(want)
    for op, m in want.items():
        np.testing.assert_allclose(site[op], np.array(m, dtype=complex), rtol=0, atol=1e-15)
    assert SITE_TYPES[site.name] is site
    assert site.dim == len(want["Id"])


@pytest.mark.parametrize("spin", [0.5, 1, 1.5, 2])
def test_spin_algebra(spin):
    site = spin_site(spin)
    sx, sy, sz, sp, sm = (site[o] for o in ("Sx", "Sy", "Sz", "Sp", "Sm"))
    np.testing.assert_allclose(comm(sx, sy), 1j * sz, atol=1e-14)
    np.testing.assert_allclose(comm(sy, sz), 1j * sx, atol=1e-14)
    np.testing.assert_allclose(comm(sz, sx), 1j * sy, atol=1e-14)
    np.testing.assert_allclose(sp, sx + 1j * sy, atol=1e-15)
    np.testing.assert_allclose(sm, sx - 1j * sy, atol=1e-15)
    np.testing.assert_allclose(sm, sp.conj().T, atol=0)
    np.testing.assert_allclose(comm(sz, sp), sp, atol=1e-14)
    casimir = sx @ sx + sy @ sy + sz @ sz
    np.testing.assert_allclose(casimir, spin * (spin + 1) * np.eye(site.dim), atol=1e-13)
    for s in (sx, sy, sz):
        np.testing.assert_allclose(s, s.conj().T, atol=0)
    assert site.dim == round(2 * spin + 1) and site[("Sz")][0, 0] == spin  # m = S first


def test_pauli_and_number_of_spin_half():
    x, y, z, n = (SPIN_HALF[o] for o in ("X", "Y", "Z", "N"))
    for p, s in ((x, "Sx"), (y, "Sy"), (z, "Sz")):
        np.testing.assert_array_equal(p, 2 * SPIN_HALF[s])
        np.testing.assert_array_equal(p @ p, np.eye(2))
    np.testing.assert_allclose(x @ y, 1j * z, atol=0)
    np.testing.assert_array_equal(n, (np.eye(2) + z) / 2)


def test_hardcore_boson_algebra():
    b, bd, n = (HARDCORE_BOSON[o] for o in ("B", "Bdag", "N"))
    np.testing.assert_array_equal(b @ bd + bd @ b, np.eye(2))  # on one site
    np.testing.assert_array_equal(n, bd @ b)
    np.testing.assert_array_equal(bd, b.conj().T)
    np.testing.assert_array_equal(b @ b, np.zeros((2, 2)))  # hard core: at most one
    np.testing.assert_array_equal(HARDCORE_BOSON["Id"], np.eye(2))
    with pytest.raises(ValueError, match="read-only"):
        b[0, 1] = 2.0


def test_custom_site_type_and_its_checks():
    site = SiteType("qutrit_z", {"Z3": np.diag([1.0, 0.0, -1.0])})
    assert site.names == ("Id", "Z3") and site.dim == 3
    np.testing.assert_array_equal(site["Id"], np.eye(3))
    assert "qutrit_z" in repr(site) and "Z3" in repr(site)
    with pytest.raises(ValueError, match="operators\\['A'\\]: expected a square matrix"):
        SiteType("bad", {"A": np.ones((2, 3))})
    with pytest.raises(ValueError, match="operators\\['B'\\]: dimension 3, the others have 2"):
        SiteType("bad", {"A": np.eye(2), "B": np.eye(3)})
    with pytest.raises(ValueError, match="operators\\['A'\\]: the matrix is not finite"):
        SiteType("bad", {"A": np.array([[np.nan, 0], [0, 1]])})
    with pytest.raises(ValueError, match="operators\\['Id'\\]: expected the identity"):
        SiteType("bad", {"Id": 2 * np.eye(2)})
    with pytest.raises(ValueError, match="operators: expected a non-empty mapping"):
        SiteType("bad", {})
    with pytest.raises(ValueError, match="name"):
        SiteType("", {"A": np.eye(2)})
    with pytest.raises(ValueError, match="spin: expected a positive multiple of 1/2"):
        spin_site(0.3)
    with pytest.raises(ValueError, match="spin"):
        spin_site(0)


# ------------------------------------------------------------------ builder vs dense


def _random_model(rng: np.random.Generator, n: int) -> tuple[ModelBuilder, np.ndarray]:
    """Random site types and terms (1-3 factors, repeated sites, complex coefficients,
    some with their Hermitian conjugate), and the same model by Kronecker products."""
    names = sorted(REFERENCE)
    types = [names[k] for k in rng.integers(0, len(names), n)]
    dims = tuple(len(REFERENCE[t]["Id"]) for t in types)
    builder = ModelBuilder(types)
    want = np.zeros((math.prod(dims),) * 2, dtype=complex)
    for _ in range(8):
        sites = rng.integers(0, n, rng.integers(1, 4))  # may repeat a site
        ops = [str(rng.choice(sorted(REFERENCE[types[s]]))) for s in sites]
        coef = complex(rng.standard_normal(), rng.standard_normal() * rng.integers(0, 2))
        hc = bool(rng.integers(0, 2))
        builder.add(coef, [(op, int(s)) for op, s in zip(ops, sites, strict=True)],
                    hermitian_conjugate=hc)  # fmt: skip
        term = np.eye(want.shape[0], dtype=complex)
        for op, s in zip(ops, sites, strict=True):  # the leftmost factor acts last
            term = term @ dense({int(s): np.array(REFERENCE[types[s]][op], complex)}, dims)
        want += coef * term
        if hc:
            want += (coef * term).conj().T
    return builder, want


@pytest.mark.parametrize("seed", range(6))
def test_random_models_against_dense_kronecker_products(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    builder, want = _random_model(rng, n)
    op = builder.operator()
    assert op.dims == builder.dims
    np.testing.assert_allclose(op.to_sparse().toarray(), want, rtol=0, atol=1e-13)
    tree = Tree.balanced_binary(n, op.dims)  # mixed local dimensions
    np.testing.assert_allclose(to_ttno(op, tree).to_dense(), want, rtol=0, atol=1e-12)


def test_term_forms_agree_and_same_site_products_multiply():
    forms = [
        build_operator("spin_one", 3, [(0.7, "Sp", 0, "Sm", 2)]),
        build_operator("spin_one", 3, [(0.7, [("Sp", 0), ("Sm", 2)])]),
        build_operator(["spin_one"] * 3, None, [(0.7, [("Sm", 2), ("Id", 1), ("Sp", 0)])]),
    ]
    want = 0.7 * dense({0: SPIN_ONE["Sp"], 2: SPIN_ONE["Sm"]}, (3, 3, 3))
    for op in forms:
        np.testing.assert_allclose(op.to_sparse().toarray(), want, atol=1e-15)
    # the same site twice: the product in the order written (Sp Sm != Sm Sp)
    one = build_operator("spin_half", 1, [(1.0, [("Sp", 0), ("Sm", 0)])])
    np.testing.assert_array_equal(one.to_sparse().toarray(), [[1.0, 0.0], [0.0, 0.0]])
    sz2 = build_operator(SPIN_ONE, 2, [(1.0, "Sz", 1, "Sz", 1)])
    np.testing.assert_array_equal(sz2.terms[0][1][1], np.diag([1.0, 0.0, 1.0]))
    # Id only and the empty product: multiples of the identity; zero terms dropped
    ident = build_operator("hardcore_boson", 2, [(2.0, "Id", 1), (0.5, []), (0.0, "N", 0)])
    assert len(ident.terms) == 2
    np.testing.assert_array_equal(ident.to_sparse().toarray(), 2.5 * np.eye(4))
    zero = build_operator("spin_half", 2, [(0.0, "X", 0)])
    assert zero.terms == ((0.0, {}),)


def test_couplings_on_a_graph_with_hermitian_conjugate():
    nx = pytest.importorskip("networkx")
    ring = nx.cycle_graph(5)
    a, b = ModelBuilder(HARDCORE_BOSON, 5), ModelBuilder("hardcore_boson", 5)
    a.add_coupling(-1.0 + 0.5j, "Bdag", "B", ring, hermitian_conjugate=True)
    b.add_coupling(-1.0 + 0.5j, "Bdag", "B", list(ring.edges()), hermitian_conjugate=True)
    assert len(a) == len(b) == 10
    h = a.operator().to_sparse().toarray()
    np.testing.assert_array_equal(h, b.operator().to_sparse().toarray())
    np.testing.assert_allclose(h, h.conj().T, atol=0)
    want = sum(
        (-1.0 + 0.5j) * dense({i: HARDCORE_BOSON["Bdag"], j: HARDCORE_BOSON["B"]}, (2,) * 5)
        for i, j in ring.edges()
    )
    np.testing.assert_allclose(h, want + want.conj().T, atol=1e-15)
    on = ModelBuilder("spin_half", 3)
    on.add_onsite(0.25, "Z", [0, 2])
    np.testing.assert_allclose(
        on.operator().to_sparse().toarray(),
        0.25 * (dense({0: SPIN_HALF["Z"]}, (2,) * 3) + dense({2: SPIN_HALF["Z"]}, (2,) * 3)),
    )


def test_real_models_stay_real():
    bonds = [(0, 1), (1, 2)]
    heis = ModelBuilder("spin_half", 3)
    for p in "XYZ":
        heis.add_coupling(1.0, p, p, bonds)
    op = heis.operator()
    assert not op.is_complex  # Y Y = -(iY)(iY) with the real matrix iY
    assert all(m.dtype == np.float64 for _, f in op.terms for m in f.values())
    tree = Tree.balanced_binary(3)
    assert to_ttno(op, tree).tensors[0].dtype == np.float64
    one = ModelBuilder("spin_one", 3)
    one.add_coupling(1.0, "Sy", "Sy", bonds)
    one.add_coupling(0.5, "Sp", "Sm", bonds, hermitian_conjugate=True)
    one.add(1j, "Sy", 1)  # i Sy is real
    assert not one.operator().is_complex
    # a complex term stays complex, with the right value
    y = build_operator("spin_half", 2, [(0.5, "Y", 1)])
    assert y.is_complex
    np.testing.assert_array_equal(
        y.to_sparse().toarray(), 0.5 * dense({1: SPIN_HALF["Y"]}, (2, 2))
    )
    # terms that are complex alone but cancel in the sum: exact, returned complex
    cancel = build_operator("spin_half", 1, [(1.0, "Y", 0), (-1.0, "Y", 0), (2.0, "X", 0)])
    assert cancel.is_complex
    np.testing.assert_array_equal(cancel.to_sparse().toarray(), [[0, 2], [2, 0]])


def test_builder_refusals_name_the_argument():
    b = ModelBuilder("spin_one", 4)
    with pytest.raises(ValueError, match="unknown operator 'Z' of site type 'spin_one'; valid: "
                       "Id, Sm, Sp, Sx, Sy, Sz"):  # fmt: skip
        b.add(1.0, "Z", 0)
    with pytest.raises(ValueError, match="site 4 is not in 0..3"):
        b.add(1.0, "Sz", 4)
    with pytest.raises(ValueError, match="site -1 is not in 0..3"):
        b.add(1.0, "Sz", 0, "Sz", -1)
    for bad in (math.nan, math.inf, complex(1, math.inf)):
        with pytest.raises(ValueError, match="coef: expected a finite number"):
            b.add(bad, "Sz", 0)
    with pytest.raises(TypeError, match="coef"):
        b.add(True, "Sz", 0)
    with pytest.raises(TypeError, match="site index"):
        b.add(1.0, "Sz", 1.5)
    with pytest.raises(TypeError, match="factors"):
        b.add(1.0, "Sz")
    with pytest.raises(TypeError, match="factors\\[0\\]: expected a pair"):
        b.add(1.0, [("Sz", 0, 1)])
    with pytest.raises(TypeError, match="operator name"):
        b.add(1.0, 3, 0)
    with pytest.raises(ValueError, match="bonds\\[1\\]: a bond joins two different sites"):
        b.add_coupling(1.0, "Sz", "Sz", [(0, 1), (2, 2)])
    with pytest.raises(ValueError, match="bonds\\[0\\]: expected a pair"):
        b.add_coupling(1.0, "Sz", "Sz", [(0, 1, 2)])
    with pytest.raises(ValueError, match="bonds\\[0\\]: site 9"):
        b.add_coupling(1.0, "Sz", "Sz", [(0, 9)])
    with pytest.raises(ValueError, match="op_j \\(site 1\\): unknown operator 'B' of site"):
        b.add_coupling(1.0, "Sp", "B", [(0, 1)])
    with pytest.raises(ValueError, match="sites\\[1\\]: site 7 is not in 0..3"):
        b.add_onsite(1.0, "Sz", [0, 7])
    with pytest.raises(ValueError, match="op \\(site 0\\): unknown operator 'N'"):
        b.add_onsite(1.0, "N")
    assert len(b) == 0  # nothing half-added
    b.add_onsite(1.0, "Sz", 2)  # one site
    assert len(b) == 1
    with pytest.raises(ValueError, match="terms\\[1\\]: .*unknown operator 'Bdag'"):
        build_operator("spin_half", 2, [(1.0, "X", 0), (1.0, "Bdag", 1)])
    with pytest.raises(ValueError, match="unknown site type 'spin_two'; valid: hardcore_boson"):
        ModelBuilder("spin_two", 2)
    with pytest.raises(ValueError, match="n_sites: give the number of sites"):
        ModelBuilder("spin_half")
    with pytest.raises(ValueError, match="n_sites: expected an integer >= 1"):
        ModelBuilder("spin_half", 0)
    with pytest.raises(ValueError, match="sites: 2 site types for n_sites = 3"):
        ModelBuilder(["spin_half", "spin_one"], 3)
    with pytest.raises(TypeError, match="sites\\[1\\]: expected a SiteType or its name"):
        ModelBuilder(["spin_half", 2])


def test_mixed_sites_check_each_site_type():
    b = ModelBuilder([SPIN_HALF, HARDCORE_BOSON, SPIN_ONE])
    assert b.dims == (2, 2, 3)
    b.add(1.0, "X", 0, "N", 1, "Sz", 2)
    with pytest.raises(ValueError, match="site 1.*unknown operator 'X' of site type 'hardcore"):
        b.add(1.0, "X", 1)


# ------------------------------------------------------------------ ground states


def _chain(n: int) -> list[tuple[int, int]]:
    return [(k, k + 1) for k in range(n - 1)]


@pytest.mark.parametrize("n", [8, pytest.param(10, marks=pytest.mark.slow)])
def test_spin_one_heisenberg_chain_by_dmrg_against_exact_diagonalization(n):
    b = ModelBuilder("spin_one", n)
    b.add_coupling(1.0, "Sz", "Sz", _chain(n))
    b.add_coupling(0.5, "Sp", "Sm", _chain(n), hermitian_conjugate=True)
    op = b.operator()
    assert not op.is_complex
    h = op.to_sparse().tocsr()
    # S.S = Sx Sx + Sy Sy + Sz Sz, by the written-out matrices
    ss = sum(
        dense({0: np.array(REFERENCE["spin_one"][s]), 1: np.array(REFERENCE["spin_one"][s])},
              (3, 3))
        for s in ("Sx", "Sy", "Sz")
    )  # fmt: skip
    np.testing.assert_allclose(
        build_operator("spin_one", 2, [(1.0, "Sx", 0, "Sx", 1), (1.0, "Sy", 0, "Sy", 1),
                                       (1.0, "Sz", 0, "Sz", 1)]).to_sparse().toarray(),
        ss, atol=1e-15,
    )  # fmt: skip
    start = np.random.default_rng(0).standard_normal(h.shape[0])
    exact = float(spla.eigsh(h, k=1, which="SA", tol=1e-14, v0=start)[0][0])
    tree = Tree.caterpillar(n, 3)
    result = dmrg(to_ttno(op, tree), random_ttn(tree, 4, rng=1), TRUNC)
    error = abs(result.energies[-1] - exact) / abs(exact)
    print(f"spin-1 Heisenberg L={n}: DMRG {result.energies[-1]:.12f}, exact {exact:.12f}, "
          f"relative error {error:.1e}")  # fmt: skip
    assert result.converged
    assert error <= 1e-8


def test_hardcore_bosons_by_dmrg_against_free_fermions():
    """``-t sum (Bdag_i B_{i+1} + h.c.) - mu sum N_i`` on an open chain: by Jordan-Wigner
    free fermions with levels ``-2 t cos(pi m / (L + 1))``, the ground energy is the sum of
    the levels below ``mu``, each minus ``mu``."""
    nx = pytest.importorskip("networkx")
    n, t, mu = 12, 1.0, 0.45
    b = ModelBuilder("hardcore_boson", n)
    b.add_coupling(-t, "Bdag", "B", nx.path_graph(n), hermitian_conjugate=True)
    b.add_onsite(-mu, "N")
    op = b.operator()
    assert not op.is_complex
    levels = -2 * t * np.cos(np.pi * np.arange(1, n + 1) / (n + 1)) - mu
    assert np.min(np.abs(levels)) > 0.2  # a gapped, unique ground state
    free = float(np.sum(levels[levels < 0]))
    particles = int(np.sum(levels < 0))
    tree = Tree.caterpillar(n, 2)
    result = dmrg(to_ttno(op, tree), random_ttn(tree, 4, rng=1), TRUNC)
    error = abs(result.energies[-1] - free) / abs(free)
    print(f"hard-core bosons L={n}: DMRG {result.energies[-1]:.12f}, free fermions {free:.12f}, "
          f"relative error {error:.1e}")  # fmt: skip
    assert error <= 1e-8
    occupation = local_expectations(result.state, HARDCORE_BOSON["N"]).real
    assert particles == 7 and abs(occupation.sum() - particles) < 1e-6
    np.testing.assert_allclose(occupation, occupation[::-1], atol=1e-6)  # reflection
