"""Einstein summation on any array-API backend, with contraction paths from opt_einsum.

The array API standard has ``tensordot`` and ``matmul`` but no ``einsum``. :func:`einsum`
asks ``opt_einsum`` for the pairwise contraction order (cached per expression and shapes)
and carries out each pair as one batched ``matmul``, so tree-network contractions run
unchanged on NumPy, CuPy, PyTorch (with autograd) and ``array_api_strict``.
"""

from __future__ import annotations

import functools
import logging
import math

from tensorsim._array_api import Array, array_namespace

__all__ = ["einsum"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def _path(subscripts: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    import opt_einsum

    # Memory limit on intermediates: 2**24 elements, or 16 times the largest operand when
    # that is more. Without a limit the flop-optimal path can build huge intermediates
    # (operator bonds times four state bonds in tree-network environments); a limit tied to
    # the operands alone forces slow contraction orders.
    limit = max(16 * max(math.prod(s) for s in shapes), 2**24)
    path, _ = opt_einsum.contract_path(
        subscripts, *shapes, shapes=True, optimize="auto", memory_limit=limit
    )
    return tuple(tuple(p) for p in path)


def _parse(subscripts: str, n_operands: int) -> tuple[list[str], str]:
    if "->" not in subscripts:
        raise ValueError(
            f"subscripts: expected an explicit output ('...->...'), got {subscripts!r}"
        )
    lhs, out = subscripts.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != n_operands:
        raise ValueError(
            f"subscripts: {len(terms)} operand terms for {n_operands} operands in {subscripts!r}"
        )
    if "." in subscripts:
        raise ValueError("subscripts: ellipsis is not supported; name every index")
    return terms, out


def _sum_out(xp, a: Array, sa: str, keep: set[str]) -> tuple[Array, str]:
    """Sum over indices of ``a`` that appear nowhere else (and take diagonals of repeats)."""
    if len(set(sa)) != len(sa):
        raise ValueError(
            f"subscripts: repeated index within one operand ({sa!r}) is not supported"
        )
    drop = [i for i, c in enumerate(sa) if c not in keep]
    if drop:
        a = xp.sum(a, axis=tuple(drop))
        sa = "".join(c for c in sa if c in keep)
    return a, sa


def _pair(xp, a: Array, sa: str, b: Array, sb: str, keep: set[str]) -> tuple[Array, str]:
    """Contract two operands; indices in ``keep`` survive, shared others are summed."""
    a, sa = _sum_out(xp, a, sa, keep | set(sb))
    b, sb = _sum_out(xp, b, sb, keep | set(sa))
    batch = [c for c in sa if c in sb and c in keep]
    contract = [c for c in sa if c in sb and c not in keep]
    free_a = [c for c in sa if c not in sb]
    free_b = [c for c in sb if c not in sa]
    size = {**dict(zip(sa, a.shape, strict=True)), **dict(zip(sb, b.shape, strict=True))}
    for c in set(sa) & set(sb):
        if a.shape[sa.index(c)] != b.shape[sb.index(c)]:
            raise ValueError(
                f"operands: index {c!r} has size {a.shape[sa.index(c)]} and {b.shape[sb.index(c)]}"
            )
    a_t = xp.permute_dims(a, tuple(sa.index(c) for c in batch + free_a + contract))
    b_t = xp.permute_dims(b, tuple(sb.index(c) for c in batch + contract + free_b))
    nb = math.prod(size[c] for c in batch)
    na = math.prod(size[c] for c in free_a)
    nk = math.prod(size[c] for c in contract)
    nbb = math.prod(size[c] for c in free_b)
    out = xp.reshape(a_t, (nb, na, nk)) @ xp.reshape(b_t, (nb, nk, nbb))
    labels = batch + free_a + free_b
    return xp.reshape(out, tuple(size[c] for c in labels)), "".join(labels)


def einsum(subscripts: str, *operands: Array) -> Array:
    """Evaluate an Einstein summation such as ``"xab,ybc->xyac"``.

    Parameters
    ----------
    subscripts
        Index letters of each operand, comma separated, then ``->`` and the output indices
        (explicit output required; no ellipsis; an index may not repeat within an operand).
    *operands
        Arrays of one backend.

    Returns
    -------
    Array
        The contraction, with axes in the order of the output indices.

    Notes
    -----
    The contraction order is opt_einsum's ``"auto"`` path for the given shapes (cached);
    every pairwise step is one batched matrix product, which is what keeps this fast on
    every backend.
    """
    xp = array_namespace(*operands)
    terms, out = _parse(subscripts, len(operands))
    sizes: dict[str, int] = {}
    for t, op in zip(terms, operands, strict=True):
        if len(t) != op.ndim:
            raise ValueError(f"subscripts: {t!r} names {len(t)} axes of an operand with {op.ndim}")
        for c, n in zip(t, op.shape, strict=True):
            if sizes.setdefault(c, int(n)) != n:
                raise ValueError(f"operands: index {c!r} has size {sizes[c]} and {n}")
    ops = list(zip(operands, terms, strict=True))
    if len(ops) == 1:
        a, sa = _sum_out(xp, ops[0][0], ops[0][1], set(out))
    else:
        path = _path(subscripts, tuple(tuple(int(s) for s in op.shape) for op in operands))
        for group in path:
            # a step may join more than two operands (memory limit); do it pairwise
            members = [ops[k] for k in group]
            rest = [ops[k] for k in range(len(ops)) if k not in group]
            outer = set(out).union(*(set(s) for _, s in rest))
            a, sa = members[0]
            for k, (b, sb) in enumerate(members[1:], start=2):
                keep = outer.union(*(set(s) for _, s in members[k:]))
                a, sa = _pair(xp, a, sa, b, sb, keep)
            ops = [*rest, (a, sa)]
        a, sa = ops[0]
        a, sa = _sum_out(xp, a, sa, set(out))
    if sorted(sa) != sorted(out):
        raise ValueError(f"subscripts: output {out!r} names indices not in the operands")
    return xp.permute_dims(a, tuple(sa.index(c) for c in out))
