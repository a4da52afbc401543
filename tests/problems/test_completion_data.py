"""Sparse tensors (checks, splits, TSV/HDF5 files) and the completion data sets."""

from __future__ import annotations

import numpy as np
import pytest

from problems.completion_data import (
    il2_tensor,
    load_tensor,
    shape_for,
    synthetic_completion,
    synthetic_values,
)
from tensorsim.io.sparse import (
    SparseTensor,
    cell_keys,
    read_hdf5,
    read_tsv,
    sparse_tensor,
    split_cells,
    write_hdf5,
    write_tsv,
)


@pytest.fixture
def small(rng):
    shape = (7, 5, 6)
    keys = rng.choice(np.prod(shape), size=60, replace=False)
    idx = np.stack(np.unravel_index(keys, shape), axis=1)
    return sparse_tensor(idx, rng.standard_normal(60), shape)


def test_sparse_tensor_keeps_cells_and_infers_shape(small):
    t = sparse_tensor(small.indices, small.values)
    assert t.shape == tuple(int(m) + 1 for m in small.indices.max(axis=0))
    assert t.indices.dtype == np.int64 and t.values.dtype == np.float64
    np.testing.assert_array_equal(t.values, small.values)
    assert small.density == 60 / (7 * 5 * 6) and len(small) == 60


@pytest.mark.parametrize(
    ("indices", "values", "shape", "error", "message"),
    [
        ([[0, 1], [2, 5]], [1.0, 2.0], (3, 5), ValueError, "index 5 out of range in mode 1"),
        ([[0, 1], [-1, 0]], [1.0, 2.0], None, ValueError, "negative index -1 in mode 0"),
        ([[0, 1], [0, 1]], [1.0, 2.0], None, ValueError, r"duplicate cell.*\(0, 1\) appears 2"),
        ([[0, 1], [1, 1]], [1.0, np.nan], None, ValueError, r"finite.*\(1, 1\)"),
        ([[0, 1], [1, 1]], [1.0, np.inf], None, ValueError, "NaN/Inf"),
        ([[0, 0]], [1.0], (2, 0), ValueError, "mode 1 is empty"),
        (np.zeros((0, 2), int), np.zeros(0), None, ValueError, "at least one observed cell"),
        (np.zeros((3, 0), int), np.zeros(3), None, ValueError, "at least one mode"),
        ([[0.5, 1]], [1.0], None, TypeError, "integers"),
        ([[0, 1]], ["a"], None, TypeError, "real numbers"),
        ([[0, 1]], [1.0, 2.0], None, ValueError, r"shape \(nnz, d\)"),
        ([[0, 1]], [1.0], (3,), ValueError, "expected 2 sizes"),
    ],
)
def test_bad_cells_are_rejected(indices, values, shape, error, message):
    with pytest.raises(error, match=message):
        sparse_tensor(np.asarray(indices), np.asarray(values), shape)


def test_split_is_disjoint_complete_and_seeded(small):
    a = split_cells(small, seed=3)
    b = split_cells(small, seed=3)
    c = split_cells(small, seed=4)
    assert (a.test.nnz, a.val.nnz, a.train.nnz) == (6, 11, 43)  # 10 %, then 20 % of 54
    keys = [set(cell_keys(p.indices, small.shape)) for p in a]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert set.union(*keys) == set(cell_keys(small.indices, small.shape))
    for p in a:  # values travel with their cells
        lookup = dict(zip(cell_keys(small.indices, small.shape), small.values, strict=True))
        np.testing.assert_array_equal(
            p.values, [lookup[k] for k in cell_keys(p.indices, small.shape)]
        )
    np.testing.assert_array_equal(a.test.indices, b.test.indices)
    assert not np.array_equal(a.test.indices, c.test.indices)
    with pytest.raises(ValueError, match="test: expected a fraction"):
        split_cells(small, test=1.5)
    with pytest.raises(ValueError, match="too few"):
        split_cells(small.subset(np.arange(3)))


def test_tsv_and_hdf5_round_trip(small, tmp_path):
    for path, write, read in (
        (tmp_path / "t.tensor", write_tsv, read_tsv),
        (tmp_path / "t.h5", write_hdf5, read_hdf5),
    ):
        write(path, small)
        back = read(path) if read is read_hdf5 else read(path, small.shape)
        assert back.shape == small.shape
        np.testing.assert_array_equal(back.indices, small.indices)
        np.testing.assert_array_equal(back.values, small.values)  # %.17g is exact
        again = load_tensor(path, small.shape)
        np.testing.assert_array_equal(again.values, small.values)


def test_tsv_reader_format_and_errors(tmp_path):
    p = tmp_path / "a.tensor"
    p.write_text("# comment\n0\t1\t2.5\n\n3\t0\t-1e-3\n")
    t = read_tsv(p)
    assert t.shape == (4, 2)
    np.testing.assert_array_equal(t.indices, [[0, 1], [3, 0]])
    np.testing.assert_array_equal(t.values, [2.5, -1e-3])
    p.write_text("0\t1\t2.5\n0\t1\t3.0\n")
    with pytest.raises(ValueError, match="duplicate"):
        read_tsv(p)
    p.write_text("0\t1\t2.5\n0\t3\n")
    with pytest.raises(ValueError, match="line 2 has 2 fields"):
        read_tsv(p)
    p.write_text("0\t1\tnan\n")
    with pytest.raises(ValueError, match="finite"):
        read_tsv(p)
    p.write_text("0\tx\t1\n")
    with pytest.raises(ValueError, match="line 1"):
        read_tsv(p)
    p.write_text("0\t9\t1\n")
    with pytest.raises(ValueError, match="out of range"):
        read_tsv(p, (2, 4))


def test_synthetic_generator_matches_an_independent_formula():
    prob = synthetic_completion((20, 15, 10), rank=3, density=0.05, noise=0.0, seed=7)
    t = prob.tensor
    assert isinstance(t, SparseTensor) and t.nnz == round(0.05 * 3000)
    a, b, c = prob.factors
    dense = np.einsum("ir,jr,kr->ijk", a, b, c)
    # uniform(0, 1) factors: each rank-one term has mean 1/8 and variance 3^-3 - 4^-3
    z = (dense - 3 / 8) / np.sqrt(3 * (3.0**-3 - 4.0**-3))
    expected = np.tanh(z) + 0.5 * np.tanh(z) ** 2
    np.testing.assert_allclose(t.values, expected[tuple(t.indices.T)], rtol=1e-12)
    np.testing.assert_allclose(synthetic_values(prob.factors, t.indices), t.values)
    noisy = synthetic_completion((20, 15, 10), rank=3, density=0.05, noise=0.1, seed=7)
    resid = noisy.tensor.values - noisy.clean_values(noisy.tensor.indices)
    assert 0.07 < resid.std() < 0.13
    assert shape_for(10_000, 0.03) == (70, 70, 70)


def test_skewed_generator_concentrates_cells():
    flat = synthetic_completion((40, 40), density=0.1, skew=0.0, seed=1).tensor
    skew = synthetic_completion((40, 40), density=0.1, skew=1.5, seed=1).tensor
    top = lambda t: np.sort(np.bincount(t.indices[:, 0], minlength=40))[-4:].sum()  # noqa: E731
    assert skew.nnz == flat.nnz == 160
    assert top(skew) > 2 * top(flat)
    with pytest.raises(ValueError, match="density"):
        synthetic_completion((10, 10), density=0.0)


def test_il2_keeps_its_natural_missing_cells_unobserved():
    # data/il2.npz, no tensorly needed: the observed and the missing cells tile the tensor
    t, missing = il2_tensor()
    assert t.shape == (13, 4, 12, 8) and t.values.dtype == np.float64
    assert missing.shape == (192, 4) and t.nnz + missing.shape[0] == 13 * 4 * 12 * 8
    cells = np.concatenate([t.indices, missing])
    assert np.unique(np.ravel_multi_index(cells.T, t.shape)).size == cells.shape[0]
    assert np.isfinite(t.values).all() and t.values.min() >= 0


def test_il2_is_tensorlys_tensor_bit_for_bit():
    pytest.importorskip("tensorly")
    from tensorly.datasets import load_IL2data

    from problems.shipped_data import load_arrays

    bunch = load_IL2data()
    dense = np.asarray(bunch.tensor)
    shipped = load_arrays("il2.npz", ["tensor", "dims", "ticks_ligands", "ticks_doses"])
    assert shipped["tensor"].dtype == dense.dtype
    np.testing.assert_array_equal(shipped["tensor"].view(np.uint64), dense.view(np.uint64))
    assert shipped["dims"].tolist() == list(bunch.dims)
    assert shipped["ticks_ligands"].tolist() == list(bunch.ticks[0])
    np.testing.assert_array_equal(shipped["ticks_doses"], bunch.ticks[2])
    t, missing = il2_tensor()
    assert t.shape == dense.shape == (13, 4, 12, 8)
    assert missing.shape == (int(np.isnan(dense).sum()), 4) == (192, 4)
    assert t.nnz + missing.shape[0] == dense.size
    np.testing.assert_array_equal(t.values, dense[tuple(t.indices.T)])
    assert np.isnan(dense[tuple(missing.T)]).all()
