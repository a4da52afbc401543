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
from dataclasses import dataclass

from tensorsim._array_api import Array, array_namespace, is_numpy

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
    if any(len(group) > 2 for group in path):
        # No pairwise path within the limit: opt_einsum then joins several operands in one
        # step, which done pair by pair in list order can be an outer product (408 GiB,
        # measured: H^H H environments at rank 128). Without the limit the path is pairwise.
        path, _ = opt_einsum.contract_path(subscripts, *shapes, shapes=True, optimize="auto")
    return tuple(tuple(p) for p in path)


def _coarse(shapes: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """Every size rounded up to a power of two: the key under which paths are cached.

    A path is valid for any sizes; the one for sizes within a factor two is as good in
    practice, and tree-network ranks change from edge to edge and step to step, so exact
    shapes missed the cache at every call (finding a path costs about a millisecond).
    """
    return tuple(tuple(1 << (n - 1).bit_length() if n > 1 else n for n in s) for s in shapes)


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


def _sum_out(sa: str, keep: set[str]) -> tuple[tuple[int, ...], str]:
    """Axes of an operand with labels ``sa`` summed away (labels not in ``keep``), and the rest."""
    if len(set(sa)) != len(sa):
        raise ValueError(
            f"subscripts: repeated index within one operand ({sa!r}) is not supported"
        )
    drop = tuple(i for i, c in enumerate(sa) if c not in keep)
    return drop, "".join(c for c in sa if c in keep)


@dataclass(frozen=True)
class _Pair:
    """One pairwise step: two operands to one batched matmul.

    ``sum_a``/``sum_b``: axes summed away first; ``perm_a``/``perm_b`` and
    ``shape_a``/``shape_b``: to ``(batch, free, contracted)`` and ``(batch, contracted,
    free)`` matrices; ``shape``: the result's shape (labels batch, free of a, free of b).
    """

    sum_a: tuple[int, ...]
    sum_b: tuple[int, ...]
    perm_a: tuple[int, ...]
    perm_b: tuple[int, ...]
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    shape: tuple[int, ...]


def _pair(sa: str, sb: str, keep: set[str], size: dict[str, int]) -> tuple[_Pair, str]:
    """Plan the contraction of two operands; indices in ``keep`` survive."""
    sum_a, sa = _sum_out(sa, keep | set(sb))
    sum_b, sb = _sum_out(sb, keep | set(sa))
    batch = [c for c in sa if c in sb and c in keep]
    contract = [c for c in sa if c in sb and c not in keep]
    free_a = [c for c in sa if c not in sb]
    free_b = [c for c in sb if c not in sa]
    nb = math.prod(size[c] for c in batch)
    na = math.prod(size[c] for c in free_a)
    nk = math.prod(size[c] for c in contract)
    nbb = math.prod(size[c] for c in free_b)
    labels = batch + free_a + free_b
    step = _Pair(
        sum_a,
        sum_b,
        tuple(sa.index(c) for c in batch + free_a + contract),
        tuple(sb.index(c) for c in batch + contract + free_b),
        (nb, na, nk),
        (nb, nk, nbb),
        tuple(size[c] for c in labels),
    )
    return step, "".join(labels)


@dataclass(frozen=True)
class _Plan:
    """A whole contraction.

    ``sum_single``: axes summed away when there is one operand; ``groups``: for each step
    of the opt_einsum path, the new order of the working list (the others first, then the
    group's members) and the pairwise steps that join the members into one operand at the
    end of the list; ``sum_last`` and ``perm``: the final reduction and permutation.
    """

    sum_single: tuple[int, ...]
    groups: tuple[tuple[tuple[int, ...], tuple[_Pair, ...]], ...]
    sum_last: tuple[int, ...]
    perm: tuple[int, ...]


@functools.lru_cache(maxsize=4096)
def _plan(subscripts: str, shapes: tuple[tuple[int, ...], ...]) -> _Plan:
    """Check ``subscripts`` against the operand shapes and plan every step (cached).

    Planning once per expression and shapes leaves only the array operations to each call:
    the index bookkeeping in Python was a third of the time of small contractions.
    """
    terms, out = _parse(subscripts, len(shapes))
    size: dict[str, int] = {}
    for t, shape in zip(terms, shapes, strict=True):
        if len(t) != len(shape):
            raise ValueError(
                f"subscripts: {t!r} names {len(t)} axes of an operand with {len(shape)}"
            )
        for c, n in zip(t, shape, strict=True):
            if size.setdefault(c, n) != n:
                raise ValueError(f"operands: index {c!r} has size {size[c]} and {n}")
    if len(terms) == 1:
        sum_single, sa = _sum_out(terms[0], set(out))
        groups: list[tuple[tuple[int, ...], tuple[_Pair, ...]]] = []
        sum_last: tuple[int, ...] = ()
    else:
        sum_single = ()
        labels = list(terms)
        groups = []
        for group in _path(subscripts, _coarse(shapes)):
            # a step may join more than two operands (memory limit); it is done pairwise
            rest = [k for k in range(len(labels)) if k not in group]
            outer = set(out).union(*(set(labels[k]) for k in rest))
            members = [labels[k] for k in group]
            sa, pairs = members[0], []
            for k in range(1, len(members)):
                keep = outer.union(*(set(m) for m in members[k + 1 :]))
                step, sa = _pair(sa, members[k], keep, size)
                pairs.append(step)
            groups.append((tuple(rest) + tuple(group), tuple(pairs)))
            labels = [labels[k] for k in rest] + [sa]
        sum_last, sa = _sum_out(labels[0], set(out))
    if sorted(sa) != sorted(out):
        raise ValueError(f"subscripts: output {out!r} names indices not in the operands")
    return _Plan(sum_single, tuple(groups), sum_last, tuple(sa.index(c) for c in out))


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
    if is_numpy(*operands):
        # the ndarray methods, without the namespace wrappers' per-call cost (a fifth of a
        # small contraction's time); the same operations
        shapes = tuple(op.shape for op in operands)
        permute, reshape = _ndarray_permute, _ndarray_reshape
    else:
        shapes = tuple(tuple(int(n) for n in op.shape) for op in operands)
        permute, reshape = xp.permute_dims, xp.reshape
    plan = _plan(subscripts, shapes)
    ops = list(operands)
    if plan.sum_single:
        ops[0] = xp.sum(ops[0], axis=plan.sum_single)
    for order, pairs in plan.groups:
        ops = [ops[k] for k in order]
        a = ops[len(ops) - len(pairs) - 1]
        for k, step in enumerate(pairs, start=len(ops) - len(pairs)):
            b = ops[k]
            if step.sum_a:
                a = xp.sum(a, axis=step.sum_a)
            if step.sum_b:
                b = xp.sum(b, axis=step.sum_b)
            a = reshape(permute(a, step.perm_a), step.shape_a)
            b = reshape(permute(b, step.perm_b), step.shape_b)
            a = reshape(a @ b, step.shape)
        ops = ops[: len(ops) - len(pairs) - 1] + [a]
    result = ops[0]
    if plan.sum_last:
        result = xp.sum(result, axis=plan.sum_last)
    return permute(result, plan.perm)


def _ndarray_permute(a: Array, axes: tuple[int, ...]) -> Array:
    return a.transpose(axes)


def _ndarray_reshape(a: Array, shape: tuple[int, ...]) -> Array:
    return a.reshape(shape)
