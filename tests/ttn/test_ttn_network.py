"""Tree tensor networks against dense NumPy references built here."""

import functools
import string

import numpy as np
import pytest

from tensorsim._array_api import to_numpy
from tensorsim.linalg import Truncation
from tensorsim.ttn import (
    TTN,
    Tree,
    add,
    inner,
    local_expectations,
    norm,
    orthonormalize,
    product_state,
    random_ttn,
    scale,
    to_dense,
    truncate,
    validate,
)

DTYPES = ["float64", "complex128"]
MIXED = ((2, 0), (1, (3, 4)))  # non-sorted leaf order


# ---------------------------------------------------------------- references (NumPy only)


def dense_ref(tree: Tree, tensors) -> np.ndarray:
    """Contract the network in one np.einsum: sites in order, root's size-1 mode dropped."""
    letters = iter(string.ascii_letters)
    bond = [next(letters) for _ in range(tree.n_nodes)]  # bond of each node to its parent
    site = [next(letters) for _ in range(tree.n_sites)]
    terms = []
    for node in range(tree.n_nodes):
        if node < tree.n_sites:
            terms.append(site[node] + bond[node])
        else:
            terms.append(bond[node] + "".join(bond[c] for c in tree.children[node]))
    spec = ",".join(terms) + "->" + "".join(site) + bond[tree.root]
    arrays = [np.asarray(to_numpy(t)) for t in tensors]
    return np.einsum(spec, *arrays, optimize="greedy")[..., 0]


def random_tensors(tree: Tree, ranks: dict, rng, dtype: str) -> list[np.ndarray]:
    """Raw Gaussian node tensors (not orthonormal) with the given edge ranks."""

    def gauss(shape):
        a = rng.standard_normal(shape)
        if dtype == "complex128":
            a = a + 1j * rng.standard_normal(shape)
        return a

    out = []
    for node in range(tree.n_nodes):
        if node < tree.n_sites:
            out.append(gauss((tree.dims[node], ranks[node])))
        else:
            top = 1 if node == tree.root else ranks[node]
            out.append(gauss((top, *(ranks[c] for c in tree.children[node]))))
    return out


def make_ttn(xp, tree, arrays, dtype):
    return TTN(tree, tuple(xp.asarray(a, dtype=getattr(xp, dtype)) for a in arrays))


def raw_ttn(xp, tree, rng, dtype, rank=3):
    ranks = {e: rank for e in tree.edges} if isinstance(rank, int) else rank
    arrays = random_tensors(tree, ranks, rng, dtype)
    return make_ttn(xp, tree, arrays, dtype), arrays


def np_of(ttn):
    return [np.asarray(to_numpy(t)) for t in ttn.tensors]


def check_orthonormal_np(ttn, atol=1e-12):
    """Every non-root node has orthonormal columns towards its parent (NumPy, own code)."""
    tree = ttn.tree
    for node in tree.edges:
        t = np.asarray(to_numpy(ttn.tensors[node]))
        m = t if node < tree.n_sites else t.reshape(t.shape[0], -1).T
        np.testing.assert_allclose(m.conj().T @ m, np.eye(m.shape[1]), atol=atol)


def schmidt_values(dense: np.ndarray, sites) -> np.ndarray:
    """Singular values of the dense tensor split into ``sites`` | rest."""
    rest = [s for s in range(dense.ndim) if s not in sites]
    mat = np.transpose(dense, (*sites, *rest)).reshape(
        int(np.prod([dense.shape[s] for s in sites])), -1
    )
    return np.linalg.svd(mat, compute_uv=False)


def rel_err(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b))


# ---------------------------------------------------------------- to_dense


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_dense_two_level_tree_matches_explicit_einsum(xp, rng, dtype):
    tree = Tree.balanced_binary(4, dims=(2, 3, 2, 3))
    ranks = {0: 2, 1: 3, 2: 2, 3: 2, 4: 3, 5: 2}
    y, (u0, u1, u2, u3, c4, c5, c6) = raw_ttn(xp, tree, rng, dtype, ranks)
    ref = np.einsum("ia,jb,kc,ld,xab,ycd,zxy->ijklz", u0, u1, u2, u3, c4, c5, c6)[..., 0]
    out = to_numpy(y.to_dense())
    assert out.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(to_numpy(to_dense(y)), ref, rtol=1e-12, atol=1e-13)


def test_to_dense_non_sorted_leaf_order_matches_explicit_einsum(xp, rng):
    tree = Tree.from_nested(MIXED, dims=(2, 3, 4, 2, 3))
    ranks = {0: 2, 1: 3, 2: 2, 3: 2, 4: 3, 5: 3, 6: 2, 7: 2}
    y, (u0, u1, u2, u3, u4, c5, c6, c7, c8) = raw_ttn(xp, tree, rng, "complex128", ranks)
    # node 5 = (2, 0), node 6 = (3, 4), node 7 = (1, 6), root 8 = (5, 7)
    ref = np.einsum("ia,jb,kc,ld,me,pca,qde,sbq,zps->ijklmz", u0, u1, u2, u3, u4, c5, c6, c7, c8)[
        ..., 0
    ]
    out = to_numpy(y.to_dense())
    assert out.shape == (2, 3, 4, 2, 3)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    "tree",
    [
        Tree.star(4, dims=(2, 3, 2, 3)),
        Tree.caterpillar(5, dims=(3, 2, 2, 3, 2)),
        Tree.from_nested((3, (0, 2), 1), dims=(2, 3, 2, 4)),
        Tree.balanced_binary(7, dims=2),
    ],
    ids=["star", "caterpillar", "mixed-arity", "binary7"],
)
def test_to_dense_other_trees(rng, tree):
    y, arrays = raw_ttn(np, tree, rng, "complex128", rank=2)
    np.testing.assert_allclose(to_numpy(y.to_dense()), dense_ref(tree, arrays), atol=1e-12)


def test_to_dense_max_size():
    y = random_ttn(Tree.balanced_binary(4, dims=3), 2, rng=0)
    assert y.to_dense(max_size=81).shape == (3, 3, 3, 3)
    with pytest.raises(ValueError, match="max_size"):
        y.to_dense(max_size=80)


# ---------------------------------------------------------------- inner, norm, add, scale


@pytest.mark.parametrize("dtype", DTYPES)
def test_inner_and_norm_match_dense_vdot(xp, rng, dtype):
    tree = Tree.from_nested(MIXED, dims=(2, 3, 2, 3, 2))
    a, aa = raw_ttn(xp, tree, rng, dtype, rank=2)
    b, bb = raw_ttn(xp, tree, rng, dtype, rank=3)
    da, db = dense_ref(tree, aa), dense_ref(tree, bb)
    ref = np.vdot(da, db)  # conjugates the first argument
    got = complex(to_numpy(inner(a, b)))
    assert abs(got - ref) <= 1e-12 * abs(ref)
    got_ba = complex(to_numpy(inner(b, a)))
    assert abs(got_ba - np.conj(ref)) <= 1e-12 * abs(ref)
    assert norm(a) == pytest.approx(np.linalg.norm(da), rel=1e-12)
    assert a.norm() == pytest.approx(np.linalg.norm(da), rel=1e-12)
    assert isinstance(norm(b), float)


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_matches_dense_sum_and_ranks_add(xp, rng, dtype):
    tree = Tree.from_nested(MIXED, dims=(2, 3, 2, 3, 2))
    a, aa = raw_ttn(xp, tree, rng, dtype, rank=2)
    b, bb = raw_ttn(xp, tree, rng, dtype, rank={e: 1 + e % 3 for e in tree.edges})
    s = add(a, b)
    np.testing.assert_allclose(
        to_numpy(s.to_dense()), dense_ref(tree, aa) + dense_ref(tree, bb), atol=1e-12
    )
    assert s.ranks() == {e: a.ranks()[e] + b.ranks()[e] for e in tree.edges}
    assert tuple(s.tensors[tree.root].shape)[0] == 1
    validate(s)


def test_add_real_and_complex(xp, rng):
    tree = Tree.balanced_binary(4, dims=(2, 3, 2, 2))
    a, aa = raw_ttn(xp, tree, rng, "float64", rank=2)
    b, bb = raw_ttn(xp, tree, rng, "complex128", rank=2)
    s = add(a, b)
    assert s.dtype == xp.complex128
    np.testing.assert_allclose(
        to_numpy(s.to_dense()), dense_ref(tree, aa) + dense_ref(tree, bb), atol=1e-12
    )


@pytest.mark.parametrize(("dtype", "factor"), [("float64", -2.5), ("complex128", 0.5 - 1.5j)])
def test_scale_matches_dense(xp, rng, dtype, factor):
    tree = Tree.caterpillar(4, dims=(2, 3, 2, 2))
    a, aa = raw_ttn(xp, tree, rng, dtype, rank=2)
    s = scale(a, factor)
    np.testing.assert_allclose(to_numpy(s.to_dense()), factor * dense_ref(tree, aa), atol=1e-12)
    # the input is not modified
    np.testing.assert_allclose(to_numpy(a.to_dense()), dense_ref(tree, aa), atol=1e-12)


def test_inner_and_add_need_the_same_tree():
    a = random_ttn(Tree.balanced_binary(4), 2, rng=0)
    b = random_ttn(Tree.caterpillar(4), 2, rng=0)
    with pytest.raises(ValueError, match="same tree"):
        inner(a, b)
    with pytest.raises(ValueError, match="same tree"):
        add(a, b)


# ---------------------------------------------------------------- orthonormalize


@pytest.mark.parametrize("dtype", DTYPES)
def test_orthonormalize_keeps_tensor_and_shrinks_ranks(xp, rng, dtype):
    tree = Tree.from_nested(MIXED, dims=(2, 3, 2, 3, 2))
    # rank 4 exceeds what leaves of dimension 2 or 3 can hold
    ranks = {0: 4, 1: 2, 2: 1, 3: 4, 4: 3, 5: 3, 6: 4, 7: 2}
    y, arrays = raw_ttn(xp, tree, rng, dtype, ranks)
    ref = dense_ref(tree, arrays)
    z = orthonormalize(y)
    np.testing.assert_allclose(to_numpy(z.to_dense()), ref, atol=1e-12 * np.abs(ref).max())
    validate(z, orthonormal=True)
    check_orthonormal_np(z)
    # expected ranks: min(rank, rows of the parent matrix), leaves up
    expect = {}
    for node in tree.postorder[:-1]:
        rows = (
            tree.dims[node]
            if node < tree.n_sites
            else int(np.prod([expect[c] for c in tree.children[node]]))
        )
        expect[node] = min(ranks[node], rows)
    assert z.ranks() == expect
    assert z.ranks()[0] == 2 and z.ranks()[3] == 3
    # the root carries the norm
    root = np.asarray(to_numpy(z.tensors[tree.root]))
    assert np.linalg.norm(root) == pytest.approx(np.linalg.norm(ref), rel=1e-12)
    assert z.orthonormalize().ranks() == expect


def test_validate_orthonormal_rejects_raw_network(rng):
    tree = Tree.balanced_binary(4, dims=3)
    y, _ = raw_ttn(np, tree, rng, "float64", rank=2)
    with pytest.raises(ValueError, match=r"tensors\[\d+\]: not orthonormal"):
        validate(y, orthonormal=True)


# ---------------------------------------------------------------- truncate


@pytest.mark.parametrize("dtype", DTYPES)
def test_truncate_rank_deficient_sum_is_exact(xp, rng, dtype):
    tree = Tree.from_nested(MIXED, dims=(2, 3, 2, 3, 2))
    y = random_ttn(tree, 2, rng=rng, dtype=getattr(xp, dtype), xp=xp)
    factor = 2.0 - 1.0j if dtype == "complex128" else -3.0
    s = add(add(y, scale(y, factor)), y)  # rank 6 per edge, true rank 2
    assert all(r == 3 * y.ranks()[e] for e, r in s.ranks().items())
    t, discarded = truncate(s, Truncation(atol=1e-12))
    assert t.ranks() == y.ranks()
    assert set(discarded) == set(tree.edges)
    assert max(discarded.values()) < 1e-12
    ref = (2.0 + factor) * to_numpy(y.to_dense())
    np.testing.assert_allclose(to_numpy(t.to_dense()), ref, atol=1e-12)
    validate(t, orthonormal=True)


def test_truncate_sum_with_shared_bases_is_exact(rng):
    # a + b where b shares every tensor of a but the root: true ranks are those of a
    tree = Tree.balanced_binary(5, dims=(2, 3, 2, 3, 2))
    a = random_ttn(tree, 3, rng=rng, dtype=np.complex128)
    root = rng.standard_normal(a.tensors[tree.root].shape) * 1j
    b = TTN(tree, (*a.tensors[:-1], root))
    t, _ = truncate(add(a, b), Truncation(atol=1e-12))
    assert t.ranks() == a.ranks()
    np.testing.assert_allclose(t.to_dense(), a.to_dense() + b.to_dense(), atol=1e-12)


def _check_truncation_bounds(xp, rng, dtype, max_rank, tree):
    y, arrays = raw_ttn(xp, tree, rng, dtype, rank=4)
    ref = dense_ref(tree, arrays)
    t, discarded = truncate(y, Truncation(max_rank=max_rank))
    assert all(r <= max_rank for r in t.ranks().values())
    validate(t, orthonormal=True)
    err = np.linalg.norm(to_numpy(t.to_dense()) - ref)
    # upper bound: every edge cut is an orthogonal projection of the current state
    assert err <= sum(discarded.values()) * (1 + 1e-10) + 1e-12
    # lower bound (Eckart-Young): across any edge the result has rank <= max_rank
    tails = {
        e: np.sqrt(np.sum(schmidt_values(ref, tree.sites_below[e])[max_rank:] ** 2))
        for e in tree.edges
    }
    assert err >= max(tails.values()) * (1 - 1e-10)
    # the first edge below the root is cut at the exact Schmidt values of the input
    first = tree.children[tree.root][0]
    assert discarded[first] == pytest.approx(tails[first], rel=1e-10, abs=1e-14)
    assert max_rank == 3 or max(discarded.values()) > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_rank", [1, 2, 3])
def test_truncate_max_rank_error_bounds(xp, rng, dtype, max_rank):
    _check_truncation_bounds(xp, rng, dtype, max_rank, Tree.from_nested(MIXED, dims=3))


@pytest.mark.parametrize(
    "tree",
    [Tree.caterpillar(5, dims=(3, 2, 3, 2, 3)), Tree.star(4, dims=3), Tree.balanced_binary(6)],
    ids=["caterpillar", "star", "binary6"],
)
@pytest.mark.parametrize("max_rank", [1, 2])
def test_truncate_max_rank_error_bounds_other_trees(rng, tree, max_rank):
    # leaves as children of the root (caterpillar, star) take the leaf branch of the cut
    _check_truncation_bounds(np, rng, "complex128", max_rank, tree)


def test_truncate_min_rank_and_rtol(rng):
    tree = Tree.balanced_binary(4, dims=3)
    y = random_ttn(tree, 3, rng=rng, dtype=np.complex128)
    t, disc = truncate(y, Truncation(atol=1e6, min_rank=2))
    assert t.ranks() == dict.fromkeys(tree.edges, 2)
    t1, _ = truncate(y, Truncation(atol=1e6))
    assert t1.ranks() == dict.fromkeys(tree.edges, 1)
    # rtol is relative to the norm of the state: scaling the state changes nothing
    rule = Truncation(rtol=0.3)
    a, da = truncate(y, rule)
    b, db = truncate(scale(y, 1e4), rule)
    assert a.ranks() == b.ranks()
    for e in tree.edges:
        assert db[e] == pytest.approx(1e4 * da[e], rel=1e-8, abs=1e-12)
    assert a.norm() * 1e4 == pytest.approx(b.norm(), rel=1e-12)
    # no rule: nothing is cut
    c, dc = truncate(y, Truncation())
    assert c.ranks() == y.ranks() and all(v == 0 for v in dc.values())
    np.testing.assert_allclose(c.to_dense(), y.to_dense(), atol=1e-12)


# ---------------------------------------------------------------- builders


@pytest.mark.parametrize("rank", [1, 2, 3, 5])
def test_product_state_is_dense_outer_product(xp, rng, rank):
    dims = (2, 3, 2, 3, 2)
    tree = Tree.from_nested(MIXED, dims=dims)
    vecs = [rng.standard_normal(n) + 1j * rng.standard_normal(n) for n in dims]
    y = product_state(tree, vecs, rank=rank, dtype=xp.complex128, xp=xp)
    ref = functools.reduce(np.multiply.outer, vecs)
    np.testing.assert_allclose(to_numpy(y.to_dense()), ref, atol=1e-12)
    validate(y, orthonormal=True)
    check_orthonormal_np(y)
    expect = {}
    for node in tree.postorder[:-1]:
        if node < tree.n_sites:
            expect[node] = min(rank, dims[node])
        else:
            expect[node] = min(rank, int(np.prod([expect[c] for c in tree.children[node]])))
    assert y.ranks() == expect
    assert y.norm() == pytest.approx(np.prod([np.linalg.norm(v) for v in vecs]), rel=1e-12)
    # the first column of every leaf is the normalized vector itself (no phase)
    for s, v in enumerate(vecs):
        np.testing.assert_allclose(to_numpy(y.tensors[s])[:, 0], v / np.linalg.norm(v))


def test_product_state_one_vector_for_all_sites_and_real(rng):
    tree = Tree.balanced_binary(4, dims=2)
    v = np.array([0.6, -0.8]) * 2
    y = product_state(tree, v, rank=2)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.to_dense(), functools.reduce(np.multiply.outer, [v] * 4))
    validate(y, orthonormal=True)
    assert y.ranks() == dict.fromkeys(tree.edges, 2)


def test_product_state_bad_input():
    tree = Tree.balanced_binary(3, dims=(2, 3, 2))
    good = [np.ones(2), np.ones(3), np.ones(2)]
    with pytest.raises(ValueError, match="vectors"):
        product_state(tree, good[:2])
    with pytest.raises(ValueError, match=r"vectors\[1\]"):
        product_state(tree, [np.ones(2), np.ones(2), np.ones(2)])
    with pytest.raises(ValueError, match=r"vectors\[2\]: the zero vector"):
        product_state(tree, [np.ones(2), np.ones(3), np.zeros(2)])
    with pytest.raises(ValueError, match=r"vectors\[0\]: complex"):
        product_state(tree, [np.array([1, 1j]), np.ones(3), np.ones(2)])
    with pytest.raises(ValueError, match="rank"):
        product_state(tree, good, rank=0)


def test_random_ttn_shapes(rng):
    tree = Tree.balanced_binary(4, dims=3)
    y = random_ttn(tree, 2, rng=1)
    shapes = [tuple(t.shape) for t in y.tensors]
    assert shapes == [(3, 2)] * 4 + [(2, 2, 2), (2, 2, 2), (1, 2, 2)]
    big = random_ttn(tree, 5, rng=1)
    assert [tuple(t.shape) for t in big.tensors] == [(3, 3)] * 4 + [(5, 3, 3)] * 2 + [(1, 5, 5)]
    per_edge = random_ttn(tree, {0: 1, 1: 2, 2: 3, 3: 2, 4: 2, 5: 4}, rng=1)
    assert per_edge.ranks() == {0: 1, 1: 2, 2: 3, 3: 2, 4: 2, 5: 4}
    for z in (y, big, per_edge):
        validate(z, orthonormal=True)
        check_orthonormal_np(z)
    assert y.dtype == np.float64
    with pytest.raises(ValueError, match="ranks"):
        random_ttn(tree, 0)
    with pytest.raises(ValueError, match="ranks"):
        random_ttn(tree, {0: 1, 1: 2, 2: 3, 3: 2, 4: 0, 5: 4})


def test_random_ttn_deterministic_by_seed(xp):
    tree = Tree.from_nested(MIXED, dims=(2, 3, 2, 3, 2))
    a = random_ttn(tree, 2, rng=7, dtype=xp.complex128, xp=xp)
    b = random_ttn(tree, 2, rng=7, dtype=xp.complex128, xp=xp)
    c = random_ttn(tree, 2, rng=8, dtype=xp.complex128, xp=xp)
    for ta, tb in zip(a.tensors, b.tensors, strict=True):
        np.testing.assert_array_equal(to_numpy(ta), to_numpy(tb))
    da = to_numpy(a.to_dense())
    assert np.abs(da.imag).max() > 0.1
    assert np.linalg.norm(da - to_numpy(c.to_dense())) > 0.1
    # the dense tensor (gauge invariant) is the same on every backend
    ref = random_ttn(tree, 2, rng=7, dtype=np.complex128).to_dense()
    np.testing.assert_allclose(da, ref, atol=1e-12)
    validate(a, orthonormal=True)


# ---------------------------------------------------------------- local expectations


def _dense_local(dense, op, k):
    applied = np.moveaxis(np.tensordot(op, dense, axes=([1], [k])), 0, k)
    return np.vdot(dense, applied) / np.vdot(dense, dense)


def test_local_expectations_match_dense(xp, rng):
    tree = Tree.from_nested(MIXED, dims=3)
    y, arrays = raw_ttn(xp, tree, rng, "complex128", rank=2)  # not normalized, not orthonormal
    dense = dense_ref(tree, arrays)
    a = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    herm = a + a.conj().T
    got = to_numpy(local_expectations(y, a, hermitian=False))
    ref = np.array([_dense_local(dense, a, k) for k in range(5)])
    assert np.abs(ref.imag).max() > 1e-3  # a genuinely complex case
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    got_h = to_numpy(local_expectations(y, herm))
    ref_h = np.array([_dense_local(dense, herm, k) for k in range(5)])
    assert np.abs(ref_h.imag).max() < 1e-12
    assert not np.iscomplexobj(got_h)
    np.testing.assert_allclose(got_h, ref_h.real, rtol=1e-10, atol=1e-12)
    sub = to_numpy(local_expectations(y, a, sites=[3, 0], hermitian=False))
    np.testing.assert_allclose(sub, ref[[3, 0]], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- validate errors


def test_validate_names_the_inconsistent_node(rng):
    tree = Tree.balanced_binary(4, dims=(2, 3, 2, 3))
    ranks = {0: 2, 1: 3, 2: 2, 3: 2, 4: 3, 5: 2}
    good = random_tensors(tree, ranks, rng, "float64")
    TTN(tree, tuple(good))

    def bad(node, arr):
        ts = list(good)
        ts[node] = arr
        return tuple(ts)

    cases = [
        (bad(1, np.ones((2, 3))), r"tensors\[1\]: leaf of dimension 3"),
        (bad(0, np.ones((2, 2, 1))), r"tensors\[0\]: leaf"),
        (bad(4, np.ones((3, 2))), r"tensors\[4\]: inner node with 2 children"),
        (bad(4, np.ones((3, 2, 2))), r"tensors\[4\]: mode 2 has size 2 but child 1"),
        (bad(5, np.ones((2, 3, 2))), r"tensors\[5\]: mode 1 has size 3 but child 2"),
        (bad(6, np.ones((2, 3, 2))), r"tensors\[6\]: the root's mode 0"),
        (bad(6, np.ones((1, 2, 2))), r"tensors\[6\]: mode 1 has size 2 but child 4"),
        (tuple(good[:-1]), r"tensors: expected 7 tensors"),
    ]
    for tensors, msg in cases:
        with pytest.raises(ValueError, match=msg):
            TTN(tree, tensors)
    with pytest.raises(TypeError, match="tree"):
        TTN(((0, 1), (2, 3)), tuple(good))
