"""Benchmark tensorsim's kernels against TensorLy and the block-circulant t-product.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.kernels [--repeat N] [--quick] [--output PATH]

Each case builds its seeded test tensor once; both implementations then run on that same
array in this one process. A timing is the best (min) of ``--repeat`` runs after one warm-up
call, measured with ``time.perf_counter``. Both relative errors are computed the same way,
``||x - reconstruction||_F / ||x||_F``, from the dense reconstruction.

A full run writes ``benchmarks/results/kernels.md``. ``--quick`` runs small sizes as a smoke
test and only prints, unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import tensorly as tl
from tensorly.cp_tensor import CPTensor
from tensorly.decomposition import parafac, tensor_train, tucker

from benchmarks._common import (
    add_noise,
    bcirc_product,
    best_time,
    machine_info,
    markdown_table,
    progress,
    relative_error,
    write_report,
)
from tensorsim import Truncation, cp_als, hosvd, sthosvd, t_product, tt_svd
from tensorsim.decomp import CP
from tensorsim.testing import bcirc

RESULTS = Path(__file__).resolve().parent / "results" / "kernels.md"

#: Base seed; case ``i`` uses ``np.random.default_rng([SEED, i])``.
SEED = 20240611

#: Relative noise levels added to the exact low-rank tensors.
TUCKER_NOISE = 1e-3
CP_NOISE = 1e-3
TT_NOISE = 1e-6

#: Stopping rule shared by ``cp_als`` and ``parafac``.
CP_TOL = 1e-8
CP_MAX_ITER = 100

#: The issue's target for the t-product against the block-circulant product.
TPRODUCT_TARGET = 10.0


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one benchmark run.

    Attributes
    ----------
    tucker_n, tucker_rank
        Tucker case: ``n x n x n`` tensor of multilinear rank ``(r, r, r)``.
    cp_n, cp_rank
        CP case: ``n x n x n`` tensor of CP rank ``r``.
    cp_sweeps
        Number of ALS sweeps in the fixed-iteration CP comparison.
    tt_n, tt_order, tt_rank
        TT case: ``n^order`` tensor of TT rank ``r``.
    tprod_n, tprod_k
        t-product case: ``(n, n, k) x (n, n, k)``.
    """

    tucker_n: int
    tucker_rank: int
    cp_n: int
    cp_rank: int
    cp_sweeps: int
    tt_n: int
    tt_order: int
    tt_rank: int
    tprod_n: int
    tprod_k: int


FULL = Sizes(100, 10, 100, 10, 50, 20, 5, 5, 64, 64)
QUICK = Sizes(30, 5, 30, 5, 10, 8, 5, 3, 16, 16)


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    Attributes
    ----------
    case
        What is compared.
    ours, ref
        tensorsim and reference (TensorLy, or the block-circulant product) times in seconds.
    ours_err, ref_err
        Relative errors of the reconstructions (``None`` where not applicable).
    note
        Iteration counts, agreement checks and the like.
    reference
        What the reference time measures: ``"TensorLy"``, ``"bcirc product"`` or
        ``"bcirc construction + product"``.
    """

    case: str
    ours: float
    ref: float
    ours_err: float | None
    ref_err: float | None
    note: str
    reference: str = "TensorLy"

    @property
    def ratio(self) -> float:
        """Reference time over tensorsim time (> 1: tensorsim is faster)."""
        return self.ref / self.ours

    def cells(self) -> list[str]:
        """Return the formatted table cells."""
        return [
            self.case,
            _ms(self.ours),
            _ms(self.ref),
            f"{self.ratio:.2f}",
            _err(self.ours_err),
            _err(self.ref_err),
            self.note,
        ]


HEADER = (
    "case",
    "tensorsim",
    "TensorLy (or bcirc)",
    "ratio ref/tensorsim",
    "tensorsim rel. error",
    "TensorLy rel. error",
    "notes",
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _err(value: float | None) -> str:
    return "—" if value is None else f"{value:.3e}"


def tucker_rows(sizes: Sizes, repeat: int, rng: np.random.Generator) -> list[Row]:
    """Tucker: ``sthosvd`` and ``hosvd`` against TensorLy's HOOI ``tucker`` (its defaults)."""
    n, r = sizes.tucker_n, sizes.tucker_rank
    core = rng.standard_normal((r, r, r))
    u = [rng.standard_normal((n, r)) for _ in range(3)]
    x = add_noise(np.einsum("abc,ia,jb,kc->ijk", core, *u), TUCKER_NOISE, rng)
    # return_errors only hands back the error list that partial_tucker computes anyway
    t_ref, (ref, ref_errors) = best_time(
        partial(tucker, x, rank=[r, r, r], init="svd", return_errors=True), repeat
    )
    ref_err = relative_error(x, tl.tucker_to_tensor(ref))
    rows = []
    for name, kernel in (("sthosvd", sthosvd), ("hosvd", hosvd)):
        t_ours, ours = best_time(partial(kernel, x, Truncation(max_rank=r)), repeat)
        rows.append(
            Row(
                f"Tucker {n}³, rank {r}: `{name}` vs `tucker` (HOOI)",
                t_ours,
                t_ref,
                relative_error(x, ours.to_dense()),
                ref_err,
                f"HOOI iterations: {len(ref_errors)}",
            )
        )
    return rows


def cp_rows(sizes: Sizes, repeat: int, rng: np.random.Generator) -> list[Row]:
    """CP-ALS: ``cp_als`` against ``parafac``, to convergence and for a fixed sweep count."""
    n, r, sweeps = sizes.cp_n, sizes.cp_rank, sizes.cp_sweeps
    x = add_noise(
        np.einsum("ir,jr,kr->ijk", *[rng.standard_normal((n, r)) for _ in range(3)]),
        CP_NOISE,
        rng,
    )
    t_ours, ours = best_time(
        partial(cp_als, x, r, init="svd", tol=CP_TOL, max_iter=CP_MAX_ITER), repeat
    )
    t_ref, (ref, ref_errors) = best_time(
        partial(
            parafac,
            x,
            rank=r,
            init="svd",
            tol=CP_TOL,
            n_iter_max=CP_MAX_ITER,
            return_errors=True,
        ),
        repeat,
    )
    converged = Row(
        f"CP-ALS {n}³, rank {r}: `cp_als` vs `parafac`, SVD init, tol {CP_TOL:g}",
        t_ours,
        t_ref,
        relative_error(x, ours.to_dense()),
        relative_error(x, tl.cp_to_tensor(ref)),
        f"iterations: tensorsim {len(ours.errors)}, TensorLy {len(ref_errors)}",
    )

    weights = np.ones(r)
    factors = [rng.standard_normal((n, r)) for _ in range(3)]
    t_ours, ours = best_time(
        partial(cp_als, x, r, init=CP(weights, tuple(factors)), tol=0.0, max_iter=sweeps),
        repeat,
    )
    # return_errors=True makes parafac compute the error every sweep, as cp_als does
    t_ref, (ref, ref_errors) = best_time(
        lambda: parafac(
            x,
            rank=r,
            init=CPTensor((weights, list(factors))),
            tol=0.0,
            n_iter_max=sweeps,
            return_errors=True,
        ),
        repeat,
    )
    history_gap = max(abs(a - b) for a, b in zip(ours.errors, ref_errors, strict=True))
    fixed = Row(
        f"CP-ALS {n}³, rank {r}: same random init, {sweeps} sweeps, **time per sweep**",
        t_ours / len(ours.errors),
        t_ref / len(ref_errors),
        relative_error(x, ours.to_dense()),
        relative_error(x, tl.cp_to_tensor(ref)),
        f"sweeps: {len(ours.errors)} / {len(ref_errors)}; "
        f"max gap between error histories {history_gap:.1e}",
    )
    return [converged, fixed]


def tt_rows(sizes: Sizes, repeat: int, rng: np.random.Generator) -> list[Row]:
    """TT-SVD: ``tt_svd`` against ``tensor_train``."""
    n, d, r = sizes.tt_n, sizes.tt_order, sizes.tt_rank
    ranks = [1] + [r] * (d - 1) + [1]
    cores = [rng.standard_normal((ranks[i], n, ranks[i + 1])) for i in range(d)]
    dense = cores[0].reshape(n, -1)
    for g in cores[1:]:
        dense = (dense @ g.reshape(g.shape[0], -1)).reshape(-1, g.shape[2])
    x = add_noise(dense.reshape((n,) * d), TT_NOISE, rng)
    t_ours, ours = best_time(partial(tt_svd, x, Truncation(max_rank=r)), repeat)
    t_ref, ref = best_time(partial(tensor_train, x, rank=ranks), repeat)
    return [
        Row(
            f"TT-SVD {n}^{d}, rank {r}: `tt_svd` vs `tensor_train`",
            t_ours,
            t_ref,
            relative_error(x, ours.to_dense()),
            relative_error(x, tl.tt_to_tensor(ref)),
            f"bond ranks: {ours.ranks} / {tuple(ranks[1:-1])}",
        )
    ]


def tproduct_rows(sizes: Sizes, repeat: int, rng: np.random.Generator) -> list[Row]:
    """t-product: ``t_product`` against the block-circulant matrix product."""
    n, k = sizes.tprod_n, sizes.tprod_k
    a = rng.standard_normal((n, n, k))
    b = rng.standard_normal((n, n, k))
    t_ours, ours = best_time(partial(t_product, a, b), repeat)
    t_build, big = best_time(partial(bcirc, a), repeat)
    t_mul, ref = best_time(partial(bcirc_product, big, b), repeat)
    diff = float(np.max(np.abs(ours - ref)))
    progress(f"  t-product: max |t_product - bcirc product| = {diff:.2e}")
    shape = f"({n},{n},{k})"
    agreement = f"max abs diff {diff:.1e} (max abs entry {np.max(np.abs(ref)):.1f})"
    return [
        Row(
            f"t-product {shape}x{shape}: `t_product` vs `bcirc(A) @ unfold(B)`, product only",
            t_ours,
            t_mul,
            None,
            None,
            agreement,
            "bcirc product",
        ),
        Row(
            f"t-product {shape}x{shape}: `t_product` vs bcirc construction + product",
            t_ours,
            t_build + t_mul,
            None,
            None,
            f"bcirc construction alone: {_ms(t_build)}",
            "bcirc construction + product",
        ),
    ]


CASES = (
    ("Tucker", tucker_rows),
    ("CP", cp_rows),
    ("TT", tt_rows),
    ("t-product", tproduct_rows),
)


def case_notes(sizes: Sizes) -> list[str]:
    """One line per case on what it measures."""
    return [
        f"**Tucker**: {sizes.tucker_n}³ tensor, Gaussian core and factors of multilinear "
        f"rank {sizes.tucker_rank}, plus Gaussian noise of relative norm {TUCKER_NOISE:g}. "
        "tensorsim's one-pass truncated SVDs (`sthosvd`: sequentially truncated; `hosvd`: "
        "every factor from the full tensor) against TensorLy's `tucker` (SVD init, then HOOI "
        "until the error changes by less than its default tol 1e-4). HOOI may reach a slightly "
        "lower error; the same TensorLy time is shown in both rows.",
        f"**CP-ALS, SVD init**: {sizes.cp_n}³ tensor of CP rank {sizes.cp_rank} (Gaussian "
        f"factors) plus noise {CP_NOISE:g}; both start from the leading left singular vectors "
        f"of the unfoldings and stop when the relative error changes by less than {CP_TOL:g} "
        f"(at most {CP_MAX_ITER} sweeps); the time is to convergence.",
        f"**CP-ALS, same random init**: the same tensor, both started from the same Gaussian "
        f"factors (weights 1) with tol 0 and {sizes.cp_sweeps} sweeps; time per sweep "
        "(TensorLy with `return_errors=True`, so both evaluate the error every sweep). Equal "
        "error histories show that both do the same arithmetic.",
        f"**TT-SVD**: {sizes.tt_n}^{sizes.tt_order} tensor from Gaussian TT cores of rank "
        f"{sizes.tt_rank}, plus noise {TT_NOISE:g}; one left-to-right sweep of truncated SVDs "
        "in both.",
        f"**t-product**: Gaussian ({sizes.tprod_n},{sizes.tprod_n},{sizes.tprod_k}) tensors. "
        "tensorsim: real FFT along the tubes, one batched matmul over the half spectrum, "
        "inverse FFT. Reference (plain NumPy, no TensorLy): the block-circulant matrix "
        "`bcirc(A)` of shape (nk, nk) times `unfold(B)` (frontal slices stacked), folded back; "
        "the construction of `bcirc(A)` is timed separately. The reference column holds the "
        "product alone in one row and construction + product in the other.",
    ]


def targets(rows: Sequence[Row], sizes: Sizes) -> list[str]:
    """Check the issue's targets against the measured rows."""
    slower = [
        f"{row.case} (ratio {row.ratio:.2f})"
        for row in rows
        if row.reference == "TensorLy" and row.ratio < 1
    ]
    ratio = {row.reference: row.ratio for row in rows}
    product_only, with_build = ratio["bcirc product"], ratio["bcirc construction + product"]
    verdict = "met" if product_only >= TPRODUCT_TARGET else "NOT met"
    return [
        "No tensorsim kernel slower than TensorLy: "
        + ("all ratios >= 1." if not slower else "slower in " + "; ".join(slower) + "."),
        f"t-product at least {TPRODUCT_TARGET:g}x faster than the block-circulant product "
        f"(target set for n=64, k=64; measured n={sizes.tprod_n}, k={sizes.tprod_k}): "
        f"product only {product_only:.1f}x, construction + product {with_build:.1f}x: "
        f"{verdict}.",
    ]


def render(rows: Sequence[Row], sizes: Sizes, repeat: int, command: str) -> str:
    """Return the markdown report."""
    info = machine_info()
    lines = [
        "# Kernel benchmarks: tensorsim vs TensorLy",
        "",
        f"Generated by `{command}`.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "## Results",
        "",
        f"Times: best (min) of {repeat} runs after one warm-up call, `time.perf_counter`; both "
        "implementations run on the same seeded tensors in one process. Ratio = reference time "
        "/ tensorsim time (> 1: tensorsim faster). Relative error = ||x - x̂||_F / ||x||_F "
        "of the dense reconstruction, computed the same way for both.",
        "",
        markdown_table(HEADER, [row.cells() for row in rows]),
        "",
        "## What each case measures",
        "",
        *[f"{i}. {note}" for i, note in enumerate(case_notes(sizes), start=1)],
        "",
        "## Targets",
        "",
        *[f"- {line}" for line in targets(rows, sizes)],
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.kernels",
        description="Compare tensorsim's kernels with TensorLy and the block-circulant t-product.",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per kernel, best kept (default 3)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, a smoke run of a few seconds"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="markdown file to write (default benchmarks/results/kernels.md for a full run, "
        "nothing for --quick)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat: expected an integer >= 1, got {args.repeat}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run every case, print the table and write the report."""
    args = parse_args(argv)
    tl.set_backend("numpy")
    sizes = QUICK if args.quick else FULL
    rows: list[Row] = []
    for i, (name, run_case) in enumerate(CASES):
        progress(f"running {name} ...")
        rows += run_case(sizes, args.repeat, np.random.default_rng([SEED, i]))
    command = " ".join(["python -m benchmarks.kernels", *(sys.argv[1:] if argv is None else argv)])
    report = render(rows, sizes, args.repeat, command)
    output = args.output if args.output is not None or args.quick else RESULTS
    write_report(report, output)


if __name__ == "__main__":
    main()
