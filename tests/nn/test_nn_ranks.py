"""Rank rule of factorized weights: tensorly's choice for a float rank, counts, bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from tensorsim.nn.ranks import (
    check_factorization,
    cp_rank,
    factorized_size,
    resolve_ranks,
    tt_ranks,
    tucker_ranks,
)

SHAPES = [(32, 32, 16, 9), (4, 32, 32, 16, 9), (3, 5, 8, 5), (64, 64, 64, 33), (8, 8, 12)]
FRACTIONS = [0.02, 0.05, 0.1, 0.42, 1.0]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fraction", FRACTIONS)
def test_ranks_are_tensorlys(shape, fraction):
    tensorly = pytest.importorskip("tensorly")
    assert list(tucker_ranks(shape, fraction)) == list(
        tensorly.tucker_tensor.validate_tucker_rank(shape, fraction)
    )
    assert cp_rank(shape, fraction) == max(tensorly.cp_tensor.validate_cp_rank(shape, fraction), 1)
    assert list(tt_ranks(shape, fraction)) == list(
        tensorly.tt_tensor.validate_tt_rank(shape, fraction)[1:-1]
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_counts_follow_the_formulas_and_the_fraction(shape):
    n = math.prod(shape)
    assert factorized_size(shape, "dense", ()) == n
    r = tucker_ranks(shape, 0.1)
    assert factorized_size(shape, "tucker", r) == math.prod(r) + sum(
        s * k for s, k in zip(shape, r, strict=True)
    )
    (c,) = resolve_ranks(shape, "cp", 0.1)
    assert factorized_size(shape, "cp", (c,)) == c * (1 + sum(shape))
    t = (1, *tt_ranks(shape, 0.1), 1)
    assert factorized_size(shape, "tt", t[1:-1]) == sum(
        t[k] * shape[k] * t[k + 1] for k in range(len(shape))
    )
    # the integer ranks keep roughly the asked fraction (rounding of small ranks aside)
    for kind in ("tucker", "cp", "tt"):
        size = factorized_size(shape, kind, resolve_ranks(shape, kind, 0.42))
        assert 0.2 * n < size < 0.8 * n


def test_explicit_ranks_and_dense():
    assert resolve_ranks((4, 5, 6), "tucker", (2, 3, 4)) == (2, 3, 4)
    assert resolve_ranks((4, 5, 6), "cp", 7) == (7,)
    assert resolve_ranks((4, 5, 6), "tt", (3, 9)) == (3, 9)
    assert resolve_ranks((4, 5, 6), "dense", 0.5) == ()
    assert check_factorization(None) == "dense"
    assert check_factorization("Tucker") == "tucker"


@pytest.mark.parametrize("rank", [0.0, -0.1, 1.5, float("nan"), "0.1", True])
@pytest.mark.parametrize("kind", ["tucker", "cp", "tt", "dense"])
def test_bad_fraction_names_rank(rank, kind):
    with pytest.raises(ValueError, match="rank"):
        resolve_ranks((4, 5, 6), kind, rank)


@pytest.mark.parametrize(
    ("kind", "rank"),
    [("tucker", (2, 3)), ("tucker", (5, 3, 3)), ("cp", (2, 3)), ("tt", (0, 2)), ("cp", 0)],
)
def test_bad_explicit_ranks(kind, rank):
    with pytest.raises(ValueError, match="rank"):
        resolve_ranks((4, 5, 6), kind, rank)


def test_bad_factorization_and_shape():
    with pytest.raises(ValueError, match="factorization"):
        resolve_ranks((4, 5, 6), "svd", 0.5)
    with pytest.raises(ValueError, match="shape"):
        resolve_ranks((4,), "tucker", 0.5)
    with pytest.raises(ValueError, match="shape"):
        tt_ranks((4, 5), 0.5)


def test_import_tensorsim_does_not_import_torch():
    code = "import sys, tensorsim; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
