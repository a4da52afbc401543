import numpy as np
import pytest

from tensorsim._array_api import to_numpy
from tensorsim.einsum import einsum

CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("xab,ybc,xy->ac", [(2, 3, 4), (5, 4, 6), (2, 5)]),
    ("aij,xab,xik,bkl->jl", [(3, 4, 5), (2, 3, 6), (2, 4, 7), (6, 7, 8)]),
    ("xab,xbc->xac", [(4, 2, 3), (4, 3, 2)]),  # batch index
    ("ij,jk->k", [(3, 4), (4, 5)]),  # summed free index
    ("abc->cab", [(2, 3, 4)]),
    ("ab,cd->abcd", [(2, 3), (4, 5)]),  # outer product
]


@pytest.mark.parametrize(("subscripts", "shapes"), CASES)
def test_matches_numpy_einsum(xp, rng, subscripts, shapes):
    arrays = [rng.standard_normal(s) + 1j * rng.standard_normal(s) for s in shapes]
    out = einsum(subscripts, *[xp.asarray(a) for a in arrays])
    np.testing.assert_allclose(to_numpy(out), np.einsum(subscripts, *arrays), rtol=1e-12)


def test_bad_subscripts():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="explicit output"):
        einsum("ij,jk", a, a.T)
    with pytest.raises(ValueError, match="names 3 axes of an operand with 2"):
        einsum("ijk,jk->i", a, a)
    with pytest.raises(ValueError, match="size 3 and 2"):
        einsum("ij,jk->ik", a, a)
    with pytest.raises(ValueError, match="repeated index"):
        einsum("ii->i", np.ones((2, 2)))


def test_gradient_flows():
    torch = pytest.importorskip("torch")
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 5, dtype=torch.float64)
    einsum("ij,jk->ik", a, b).sum().backward()
    torch.testing.assert_close(a.grad, b.sum(1).expand(3, 4))


def test_path_stays_pairwise_when_no_path_fits_the_memory_limit():
    """H^H H environments at rank 128: no pairwise path fits the limit, and opt_einsum's
    fallback (all operands in one step, done pair by pair) built a 408 GiB outer product."""
    from tensorsim.einsum import _path
    from tensorsim.ttn.environment import _node_env_subscripts

    shapes = ((128, 128, 128), (256, 256, 256), (256, 128, 128), (256, 128, 128), (128, 128, 128))
    path = _path(_node_env_subscripts(2), shapes)
    assert all(len(group) == 2 for group in path), path
