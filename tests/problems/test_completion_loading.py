"""The data table of completion experiments (problems.completion_data.DataParams, load_data)."""

from __future__ import annotations

import numpy as np
import pytest

from problems.completion_data import (
    GENERATOR_FIELDS,
    DataParams,
    load_data,
    shape_for,
    sized_data,
    synthetic_completion,
)
from tensorsim.io.sparse import write_tsv


def test_generator_source_gives_the_generators_tensor_and_describes_it():
    data = DataParams(shape=(9, 8, 7), rank=2, density=0.3, noise=0.05, skew=0.5, seed=4)
    tensor, attrs = load_data(data)
    ref = synthetic_completion((9, 8, 7), rank=2, density=0.3, noise=0.05, skew=0.5, seed=4)
    np.testing.assert_array_equal(tensor.indices, ref.tensor.indices)
    np.testing.assert_array_equal(tensor.values, ref.tensor.values)
    assert attrs == {
        "source": "synthetic", "subsample": 1.0, "shape": [9, 8, 7],
        "observed_cells": ref.tensor.nnz, "density": ref.tensor.density, "noise": 0.05,
        "latent_rank": 2, "skew": 0.5,
    }  # fmt: skip


def test_subsample_keeps_a_seeded_fraction_of_the_cells(tmp_path):
    full = synthetic_completion((10, 9, 8), density=0.5, seed=1).tensor
    path = write_tsv(tmp_path / "t.tensor", full)
    tensor, attrs = load_data(DataParams(source="file", path=str(path), subsample=0.5, seed=3))
    keep = np.random.default_rng([3, 1]).random(full.nnz) < 0.5
    np.testing.assert_array_equal(tensor.indices, full.indices[keep])
    np.testing.assert_array_equal(tensor.values, full.values[keep])
    assert attrs["file"] == str(path) and attrs["observed_cells"] == int(keep.sum())
    assert attrs["shape"] == [10, 9, 8] and attrs["subsample"] == 0.5


def test_il2_source_counts_its_missing_cells():
    tensor, attrs = load_data(DataParams(source="il2"))
    assert attrs["missing_cells"] == 192 and attrs["observed_cells"] == tensor.nnz == 4800
    assert attrs["shape"] == [13, 4, 12, 8] and attrs["density"] == 4800 / (13 * 4 * 12 * 8)
    assert "noise" not in attrs and "file" not in attrs


def test_unused_fields_follow_the_source():
    assert set(DataParams().unused()) == {"path"}
    il2 = DataParams(source="il2").unused()
    assert set(il2) == {"path", "seed", *GENERATOR_FIELDS}
    assert "source = 'il2'" in il2["shape"]
    assert set(DataParams(source="il2", subsample=0.5).unused()) == {"path", *GENERATOR_FIELDS}
    assert set(DataParams(source="file", path="x").unused()) == {"seed", *GENERATOR_FIELDS}


def test_sized_data_has_exactly_the_cells_on_a_cube():
    data = DataParams(rank=2, noise=0.2, skew=0.0, seed=5)
    tensor = sized_data(data, 500, 0.03)
    shape = shape_for(500, 0.03)
    assert tensor.shape == shape and tensor.nnz == 500
    ref = synthetic_completion(shape, rank=2, density=500 / np.prod(shape), noise=0.2, seed=5)
    np.testing.assert_array_equal(tensor.values, ref.tensor.values)


def test_bad_input_is_rejected():
    with pytest.raises(TypeError, match="data: expected DataParams"):
        load_data({"source": "synthetic"})
    with pytest.raises(TypeError, match="data: expected DataParams"):
        sized_data(None, 100, 0.1)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_data(DataParams(source="file", path="/nonexistent/x.tensor"))
