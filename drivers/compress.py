"""Compress a tensor in Tucker, TT and CP formats over a list of tolerances and ranks.

The cases are spread over MPI ranks by estimated cost; rank 0 writes one netCDF4/HDF5 file
with one record per case (format, tolerance or rank, ranks, stored numbers, compression
ratio, relative error, error bound, wall time)::

    mpirun -n 4 python -m drivers.compress --set input.shape=[128,128,128]
    python -m drivers.compress --config run.toml --set output.path=runs/field.nc
    python -m drivers.compress plot runs/compress.nc        # error vs compression plot

The input is the built-in smooth field plus noise (``input.source = "synthetic"``), a
``.npy`` file, or a variable of an HDF5/netCDF file (``input.variable``). Read the output
with ``xarray.open_dataset(path, engine="h5netcdf")``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from problems.synthetic import smooth_field
from tensorsim import Truncation, cp_als, sthosvd, tt_svd
from tensorsim.config import Params, build_parser, config_from_args, config_to_toml, param
from tensorsim.log import setup_logging
from tensorsim.parallel import Executor, abort_on_error, get_comm

__all__ = ["CompressConfig", "main", "run_case"]

logger = logging.getLogger("drivers.compress")

Format = Literal["tucker", "tt", "cp"]


@dataclass(frozen=True)
class InputParams(Params):
    """The tensor to compress.

    Attributes
    ----------
    source
        ``"synthetic"``, a ``.npy`` file, or an HDF5/netCDF file (``.h5``, ``.hdf5``, ``.nc``).
    variable
        Dataset path inside an HDF5/netCDF source (e.g. ``"density"``).
    shape
        Grid of the synthetic field.
    noise
        Relative noise level of the synthetic field.
    seed
        Seed of the synthetic noise and of the CP initialization.
    """

    source: str = param("synthetic", "'synthetic', a .npy file, or an .h5/.hdf5/.nc file")
    variable: str = param("", "dataset inside an HDF5/netCDF source")
    shape: tuple[int, ...] = param((64, 64, 64), "grid of the synthetic field", ge=2)
    noise: float = param(1e-4, "relative Gaussian noise of the synthetic field", ge=0.0)
    seed: int = param(0, "seed of the synthetic noise and of CP initialization", ge=0)


@dataclass(frozen=True)
class CasesParams(Params):
    """Which compressions to run.

    Attributes
    ----------
    formats
        Formats to run.
    tolerances
        Relative Frobenius tolerances of the Tucker (ST-HOSVD) and TT-SVD cases.
    cp_ranks
        Ranks of the CP-ALS cases.
    cp_max_iter
        Largest number of ALS sweeps.
    cp_tol
        Stop CP-ALS when the relative error changes by less than this.
    """

    formats: tuple[Format, ...] = param(("tucker", "tt", "cp"), "formats to run")
    tolerances: tuple[float, ...] = param(
        (1e-1, 1e-2, 1e-3, 1e-4), "relative tolerances of Tucker and TT", gt=0.0, lt=1.0
    )
    cp_ranks: tuple[int, ...] = param((2, 4, 8, 16), "ranks of the CP cases", ge=1)
    cp_max_iter: int = param(200, "largest number of CP-ALS sweeps", ge=1)
    cp_tol: float = param(1e-8, "CP-ALS stops when the error changes by less", ge=0.0)


@dataclass(frozen=True)
class OutputParams(Params):
    """Where the results go.

    Attributes
    ----------
    path
        Output file (its directory is created).
    """

    path: str = param("runs/compress.nc", "output netCDF4/HDF5 file")


@dataclass(frozen=True)
class CompressConfig(Params):
    """Configuration of ``python -m drivers.compress``.

    Attributes
    ----------
    input
        The tensor.
    cases
        The compressions.
    output
        The output file.
    """

    input: InputParams = param(InputParams(), "the tensor to compress")
    cases: CasesParams = param(CasesParams(), "which compressions to run")
    output: OutputParams = param(OutputParams(), "where results go")


@dataclass(frozen=True)
class Case:
    """One compression: a format and its tolerance (Tucker, TT) or rank (CP)."""

    format: Format
    tolerance: float = math.nan
    rank: int = 0

    @property
    def label(self) -> str:
        """Short description, e.g. ``"tucker rtol=1e-02"``."""
        if self.format == "cp":
            return f"cp rank={self.rank}"
        return f"{self.format} rtol={self.tolerance:.0e}"


def load_tensor(params: InputParams) -> np.ndarray:
    """Return the tensor described by ``params`` as a float64 array (the same on every rank)."""
    if params.source == "synthetic":
        return smooth_field(params.shape, noise=params.noise, rng=params.seed)
    path = Path(params.source)
    if not path.is_file():
        raise FileNotFoundError(f"input.source: no file {path}")
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False)
    elif path.suffix in (".h5", ".hdf5", ".nc"):
        if not params.variable:
            raise ValueError(f"input.variable: name the dataset to read from {path}")
        import h5py

        with h5py.File(path, "r") as f:
            if params.variable not in f or not isinstance(f[params.variable], h5py.Dataset):
                names = sorted(k for k in f if isinstance(f[k], h5py.Dataset))
                raise ValueError(
                    f"input.variable: {path} has no dataset {params.variable!r}; it has {names}"
                )
            x = f[params.variable][...]
    else:
        raise ValueError(f"input.source: expected 'synthetic', .npy, .h5, .hdf5 or .nc: {path}")
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(
            f"input.source: expected a real tensor with at least 2 modes, got {x.dtype} "
            f"array of shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"input.source: {path} contains NaN or Inf")
    return np.asarray(x, dtype=np.float64)


def make_cases(params: CasesParams) -> list[Case]:
    """All cases in output order: Tucker and TT by tolerance, then CP by rank."""
    cases = []
    for fmt in params.formats:
        if fmt == "cp":
            cases += [Case("cp", rank=r) for r in params.cp_ranks]
        else:
            cases += [Case(fmt, tolerance=t) for t in params.tolerances]
    return cases


def estimated_cost(case: Case, shape: Sequence[int], params: CasesParams) -> float:
    """Relative cost used to balance the cases over ranks (flop-count estimates)."""
    n = math.prod(shape)
    if case.format == "cp":
        return n * case.rank * len(shape) * params.cp_max_iter * 0.05
    return n * max(shape)


def run_case(x: np.ndarray, case: Case, params: CasesParams, seed: int) -> dict[str, Any]:
    """Compress ``x`` as ``case`` says; return the numbers of one output record."""
    start = time.perf_counter()
    iterations = 0
    bound = math.nan
    if case.format == "tucker":
        result = sthosvd(x, Truncation(rtol=case.tolerance))
        ranks, bound = result.ranks, result.error_bound
    elif case.format == "tt":
        result = tt_svd(x, Truncation(rtol=case.tolerance))
        ranks, bound = result.ranks, result.error_bound
    else:
        result = cp_als(
            x, case.rank, tol=params.cp_tol, max_iter=params.cp_max_iter, rng=seed + case.rank
        )
        ranks, iterations = (result.rank,), len(result.errors)
    wall = time.perf_counter() - start
    error = float(np.linalg.norm(x - result.to_dense()) / np.linalg.norm(x))
    return {
        "format": case.format,
        "label": case.label,
        "tolerance": case.tolerance,
        "ranks": tuple(int(r) for r in ranks),
        "stored": int(result.size),
        "compression_ratio": x.size / result.size,
        "relative_error": error,
        "error_bound": bound / float(np.linalg.norm(x)),
        "iterations": iterations,
        "wall_time": wall,
    }


def write_results(
    path: Path, results: list[dict], x: np.ndarray, cfg: CompressConfig, comm
) -> None:
    """Write one record per case (rank 0 only; the Writer is a no-op elsewhere)."""
    from tensorsim.io import Writer

    width = max(len(r["ranks"]) for r in results)
    attrs = {"input_shape": list(x.shape), "input_norm": float(np.linalg.norm(x))}
    with Writer(
        path, record_dim="case", comm=comm, config=config_to_toml(cfg), attrs=attrs
    ) as out:
        out.set_dimension("rank_index", width)
        out.define_series("format", dtype=str, long_name="tensor format")
        out.define_series("label", dtype=str, long_name="case description")
        out.define_series("tolerance", long_name="relative tolerance (NaN for CP)")
        out.define_series(
            "ranks",
            ("rank_index",),
            dtype="int64",
            long_name="Tucker: rank per mode; TT: rank per bond; CP: rank (0-padded)",
        )
        out.define_series("stored", dtype="int64", long_name="stored numbers")
        out.define_series("compression_ratio", long_name="entries of x / stored numbers")
        out.define_series("relative_error", long_name="||x - approximation|| / ||x||")
        out.define_series(
            "error_bound", long_name="a priori bound of the relative error (NaN for CP)"
        )
        out.define_series("iterations", dtype="int64", long_name="CP-ALS sweeps (0 for SVD)")
        out.define_series("wall_time", units="s", long_name="time to compress")
        for i, res in enumerate(results):
            ranks = np.zeros(width, dtype=np.int64)
            ranks[: len(res["ranks"])] = res["ranks"]
            out.append(i, **{**res, "ranks": ranks})


def plot(path: str) -> Path:
    """Plot relative error against compression ratio per format; return the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for fmt, marker in (("tucker", "o"), ("tt", "s"), ("cp", "^")):
        sel = ds.where(ds["format"] == fmt, drop=True)
        if sel.sizes["case"]:
            ax.loglog(sel["compression_ratio"], sel["relative_error"], marker, ls="-", label=fmt)
    ax.set_xlabel("compression ratio (entries / stored numbers)")
    ax.set_ylabel("relative error")
    ax.set_title(f"compression of a {ds.attrs['input_shape']} tensor")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    out = Path(path).with_suffix(".png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> list[dict] | None:
    """Run the driver; return the results (on every rank), or None for ``plot``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["plot"]:
        if len(argv) != 2:
            raise SystemExit("usage: python -m drivers.compress plot FILE")
        setup_logging()
        logger.info("wrote %s", plot(argv[1]))
        return None
    parser = build_parser(
        CompressConfig, prog="python -m drivers.compress", description=__doc__.split("\n")[0]
    )
    args = parser.parse_args(argv)
    comm = get_comm()
    setup_logging(comm)
    with abort_on_error(comm):
        cfg = config_from_args(CompressConfig, args)
        x = load_tensor(cfg.input)
        cases = make_cases(cfg.cases)
        costs = [estimated_cost(c, x.shape, cfg.cases) for c in cases]
        logger.info(
            "compressing a %s tensor: %d cases on %d rank(s)", x.shape, len(cases), comm.size
        )
        executor = Executor(comm)
        results = executor.map(
            lambda case: run_case(x, case, cfg.cases, cfg.input.seed), cases, costs=costs
        )
        path = Path(cfg.output.path)
        if comm.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        write_results(path, results, x, cfg, comm)
        for res in results:
            logger.info(
                "%-18s ranks %-14s ratio %9.1f  error %.2e  %.3f s",
                res["label"],
                "x".join(map(str, res["ranks"])),
                res["compression_ratio"],
                res["relative_error"],
                res["wall_time"],
            )
        logger.info(
            "load balance: busy time per rank %s s",
            ", ".join(f"{t:.2f}" for t in executor.last_timings),
        )
        logger.info("wrote %s (open with xarray.open_dataset(path, engine='h5netcdf'))", path)
    return results


if __name__ == "__main__":
    main()
