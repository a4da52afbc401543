"""Tree topology: builders, derived structure, round trips, equality and bad input."""

import pytest

from tensorsim.ttn import Tree


def _flatten(nested):
    if isinstance(nested, int):
        return [nested]
    return [s for sub in nested for s in _flatten(sub)]


def _check_structure(tree: Tree) -> None:
    """Every derived attribute agrees with ``children`` (computed independently here)."""
    n, d = tree.n_nodes, tree.n_sites
    assert tree.root == n - 1
    assert tree.inner_nodes == tuple(range(d, n))
    assert tree.edges == tuple(range(n - 1))
    # parent / position from children
    parent = {c: p for p in range(n) for c in tree.children[p]}
    assert tree.parent[tree.root] == -1
    assert tree.position[tree.root] == 0
    for node in tree.edges:
        p = parent[node]
        assert tree.parent[node] == p
        assert tree.children[p][tree.position[node] - 1] == node
        assert tree.depth(node) == tree.depth(p) + 1
        assert tree.path_to_root(node) == (node, *tree.path_to_root(p))
    assert tree.depth(tree.root) == 0
    assert tree.path_to_root(tree.root) == (tree.root,)
    # leaves are exactly the sites
    for node in range(n):
        assert tree.is_leaf(node) == (node < d)
        assert (tree.children[node] == ()) == (node < d)
    # pre-order: a permutation, root first, parent before child, and depth-first
    pre, post = tree.preorder, tree.postorder
    assert sorted(pre) == list(range(n)) and pre[0] == tree.root
    assert post == tuple(reversed(pre)) and post[-1] == tree.root
    where = {node: i for i, node in enumerate(pre)}
    for node in tree.edges:
        assert where[tree.parent[node]] < where[node]
    # subtrees are contiguous in pre-order
    for node in range(n):
        below = [node]
        stack = list(tree.children[node])
        while stack:
            c = stack.pop()
            below.append(c)
            stack.extend(tree.children[c])
        i = where[node]
        assert set(pre[i : i + len(below)]) == set(below)
    # sites_below: left-to-right leaves of the nested form
    for node in range(n):
        assert tree.sites_below[node] == tuple(_flatten(tree.nested(node)))
    assert sorted(tree.sites_below[tree.root]) == list(range(d))
    # children have smaller ids than their parent (post-order numbering)
    for node in range(n):
        assert all(c < node for c in tree.children[node])


def test_balanced_binary_shapes():
    t4 = Tree.balanced_binary(4)
    assert t4.children == ((), (), (), (), (0, 1), (2, 3), (4, 5))
    assert t4.nested() == ((0, 1), (2, 3))
    assert t4.dims == (2, 2, 2, 2)
    # odd number of sites: left half takes the extra site
    t5 = Tree.balanced_binary(5, dims=3)
    assert t5.nested() == (((0, 1), 2), (3, 4))
    assert t5.dims == (3,) * 5
    t8 = Tree.balanced_binary(8)
    assert t8.nested() == (((0, 1), (2, 3)), ((4, 5), (6, 7)))
    assert t8.n_nodes == 15
    assert all(t8.depth(s) == 3 for s in range(8))
    for t in (t4, t5, t8, Tree.balanced_binary(16), Tree.balanced_binary(7)):
        _check_structure(t)
        assert all(len(t.children[v]) == 2 for v in t.inner_nodes)


def test_caterpillar_and_star():
    cat = Tree.caterpillar(4, dims=(2, 3, 4, 5))
    assert cat.nested() == (((0, 1), 2), 3)
    assert cat.children == ((), (), (), (), (0, 1), (4, 2), (5, 3))
    assert cat.dims == (2, 3, 4, 5)
    assert [cat.depth(s) for s in range(4)] == [3, 3, 2, 1]
    star = Tree.star(5)
    assert star.nested() == (0, 1, 2, 3, 4)
    assert star.children[star.root] == (0, 1, 2, 3, 4)
    assert star.n_nodes == 6
    assert all(star.parent[s] == 5 and star.position[s] == s + 1 for s in range(5))
    for t in (cat, star, Tree.caterpillar(2), Tree.caterpillar(6), Tree.star(2)):
        _check_structure(t)


def test_from_nested_non_sorted_leaf_order():
    nested = ((2, 0), (1, (3, 4)))
    t = Tree.from_nested(nested, dims=(2, 3, 4, 2, 3))
    # inner ids in post-order: (2, 0) -> 5, (3, 4) -> 6, (1, 6) -> 7, root -> 8
    assert t.children == ((), (), (), (), (), (2, 0), (3, 4), (1, 6), (5, 7))
    assert t.parent == (5, 7, 5, 6, 6, 8, 7, 8, -1)
    assert t.position == (2, 1, 1, 1, 2, 1, 2, 2, 0)
    assert t.sites_below[t.root] == (2, 0, 1, 3, 4)
    assert t.sites_below[5] == (2, 0)
    assert t.sites_below[7] == (1, 3, 4)
    assert t.preorder == (8, 5, 2, 0, 7, 1, 6, 3, 4)
    assert t.postorder == (4, 3, 6, 1, 7, 0, 2, 5, 8)
    assert t.depth(3) == 3 and t.depth(2) == 2 and t.depth(1) == 2
    assert t.path_to_root(4) == (4, 6, 7, 8)
    assert t.dims == (2, 3, 4, 2, 3)  # dims are per site id, not per position
    _check_structure(t)


@pytest.mark.parametrize(
    "nested",
    [
        (0, 1),
        ((0, 1), (2, 3)),
        ((2, 0), (1, (3, 4))),
        (3, (0, 2), 1),
        ((((4, 3), 2), 1), 0),
        ((0, (1,)), 2),
        [[1, 0], [2]],
    ],
)
def test_nested_round_trip_and_structure(nested):
    d = len(_flatten(nested))
    dims = tuple(2 + (s % 3) for s in range(d))
    t = Tree.from_nested(nested, dims=dims)
    _check_structure(t)
    back = Tree.from_nested(t.nested(), dims=t.dims)
    assert back == t
    assert back.children == t.children
    # the nested form is tuples all the way down and keeps the order
    assert _flatten(t.nested()) == _flatten(nested)
    assert eval(repr(t), {"Tree": lambda n, dims: Tree.from_nested(n, dims)}) == t


def test_single_site_trees_are_rejected():
    for build in (
        lambda: Tree.from_nested(0, dims=5),
        lambda: Tree.balanced_binary(1),
        lambda: Tree.caterpillar(1),
        lambda: Tree(((),), (2,)),
    ):
        with pytest.raises(ValueError, match="at least 2 sites|>= 2"):
            build()


def test_hash_and_equality():
    a = Tree.from_nested(((0, 1), (2, 3)))
    b = Tree.balanced_binary(4)
    _ = a.preorder, a.sites_below, a.parent  # cached properties must not affect equality
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert len({a, b, Tree.balanced_binary(4)}) == 1
    assert a != Tree.balanced_binary(4, dims=3)  # same shape, other dims
    assert a != Tree.balanced_binary(4, dims=(2, 2, 2, 3))
    assert a != Tree.caterpillar(4)
    assert a != Tree.from_nested(((1, 0), (2, 3)))  # same shape, other leaf order
    assert Tree.star(3) != Tree.caterpillar(3)
    with pytest.raises(AttributeError):
        a.dims = (3, 3, 3, 3)  # frozen


def test_dims_per_site():
    t = Tree.from_nested(((1, 0), 2), dims=[4, 5, 6])
    assert t.dims == (4, 5, 6)
    with pytest.raises(ValueError, match="dims"):
        Tree.from_nested(((1, 0), 2), dims=(2, 2))
    with pytest.raises(ValueError, match="dims"):
        Tree.from_nested(((1, 0), 2), dims=(2, 0, 2))
    with pytest.raises(ValueError, match="dims"):
        Tree.balanced_binary(4, dims=0)


@pytest.mark.parametrize(
    ("nested", "err"),
    [
        ((0, 0, 1), ValueError),  # duplicate site
        (((0, 1), (1, 2)), ValueError),  # duplicate site in two subtrees
        ((0, 2), ValueError),  # missing site 1
        ((1, 2), ValueError),  # missing site 0
        ((0, True), TypeError),  # bool is not a site
        (True, TypeError),
        ((0, ()), TypeError),  # empty tuple inside
        ((), TypeError),  # empty tree
        ((0, 1.0), TypeError),  # float
        ((0, "1"), TypeError),
        ((0, None), TypeError),
        ((-1, 0), ValueError),
    ],
)
def test_from_nested_bad_input(nested, err):
    with pytest.raises(err, match="nested"):
        Tree.from_nested(nested)


@pytest.mark.parametrize("builder", [Tree.balanced_binary, Tree.caterpillar, Tree.star])
@pytest.mark.parametrize("n_sites", [0, -2, True, 2.0, "4"])
def test_builders_bad_n_sites(builder, n_sites):
    with pytest.raises(ValueError, match="n_sites"):
        builder(n_sites)


def test_constructor_rejects_inconsistent_children():
    with pytest.raises(ValueError, match="children"):
        Tree(((), (0,), (1,)), (2, 2))  # a leaf with a child
    with pytest.raises(ValueError, match="children"):
        Tree(((), (), (), (0, 1), ()), (2, 2, 2))  # inner node without children
    with pytest.raises(ValueError, match="children"):
        Tree(((), (), (0, 3), (1,)), (2, 2))  # child id larger than the parent
    with pytest.raises(ValueError, match="two parents"):
        Tree(((), (), (0, 1), (0, 2)), (2, 2))
    with pytest.raises(ValueError, match="not connected"):
        Tree(((), (), (), (0, 1), (3,)), (2, 2, 2))  # site 2 hangs nowhere
    with pytest.raises(ValueError, match="at least one inner node"):
        Tree(((), ()), (2, 2))
    with pytest.raises(ValueError, match="dims"):
        Tree((), ())


def test_constructor_rejects_fewer_nodes_than_sites():
    with pytest.raises(ValueError, match="at least one inner node"):
        Tree(((),), (2, 2))


@pytest.mark.parametrize("nested", [((0, 1), (2, 3)), ((2, 0), (1, (3, 4))), (3, (0, 2), 1)])
def test_subtree_postorder_is_the_postorder_restricted_to_the_subtree(nested):
    t = Tree.from_nested(nested)
    for node in range(t.n_nodes):
        below = set(t.sites_below[node])
        inside = [n for n in t.postorder if set(t.sites_below[n]) <= below]
        assert t.subtree_postorder(node) == tuple(inside)
        assert t.subtree_postorder(node)[-1] == node
    assert t.subtree_postorder(t.root) == t.postorder
