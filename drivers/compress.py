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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from analysis.compress import plots
from drivers._base import Layout, OutputParams, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems.synthetic import smooth_field
from tensorsim import Truncation, cp_als, sthosvd, tt_svd
from tensorsim.config import Params, param

__all__ = ["CompressConfig", "CompressSweep", "main", "run_case"]

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
    """Which compressions to run (Tucker and TT by ST-HOSVD / TT-SVD, CP by ALS)."""

    formats: tuple[Format, ...] = param(("tucker", "tt", "cp"), "formats to run")
    tolerances: tuple[float, ...] = param(
        (1e-1, 1e-2, 1e-3, 1e-4), "relative tolerances of Tucker and TT", gt=0.0, lt=1.0
    )
    cp_ranks: tuple[int, ...] = param((2, 4, 8, 16), "ranks of the CP cases", ge=1)
    cp_max_iter: int = param(200, "largest number of CP-ALS sweeps", ge=1)
    cp_tol: float = param(1e-8, "CP-ALS stops when the error changes by less", ge=0.0)


@dataclass(frozen=True)
class CompressConfig(Params):
    """Configuration of ``python -m drivers.compress``."""

    input: InputParams = param(InputParams(), "the tensor to compress")
    cases: CasesParams = param(CasesParams(), "which compressions to run")
    output: OutputParams = param(OutputParams("runs/compress.nc"), "where results go")


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
    path = Path(params.source)
    if params.variable and path.suffix not in (".h5", ".hdf5", ".nc"):
        raise ValueError(
            f"input.variable: names a dataset of an HDF5/netCDF source, not of {params.source!r}"
        )
    if params.source == "synthetic":
        return smooth_field(params.shape, noise=params.noise, rng=params.seed)
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
    if not np.any(x):
        raise ValueError(f"input.source: {path} is all zero; nothing to compress")
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


class CompressSweep(Sweep):
    """Every case of the configuration, on the tensor of ``input``; one record per case."""

    config = CompressConfig
    length_key = "cases.cp_max_iter"

    def prepare(self, cfg: CompressConfig, executor: Any) -> np.ndarray:
        """The tensor (the same on every rank)."""
        return load_tensor(cfg.input)

    def cases(self, run: SweepRun) -> list[Case]:
        """Tucker and TT by tolerance, then CP by rank."""
        return make_cases(run.cfg.cases)

    def cost(self, run: SweepRun, case: Case) -> float:
        """Flop-count estimate (:func:`estimated_cost`)."""
        return estimated_cost(case, run.data.shape, run.cfg.cases)

    def run_case(self, run: SweepRun, case: Case) -> dict[str, Any]:
        """One compression (:func:`run_case`)."""
        return run_case(run.data, case, run.cfg.cases, run.cfg.input.seed)

    def layout(self, run: SweepRun) -> Layout:
        """One record per case; the ranks zero-padded to the longest."""
        x = run.data
        series = [
            Var("format", dtype=str, long_name="tensor format"),
            Var("label", dtype=str, long_name="case description"),
            Var("tolerance", long_name="relative tolerance (NaN for CP)"),
            Var("ranks", ("rank_index",), "int64",
                long_name="Tucker: rank per mode; TT: rank per bond; CP: rank (0-padded)"),
            Var("stored", dtype="int64", long_name="stored numbers"),
            Var("compression_ratio", long_name="entries of x / stored numbers"),
            Var("relative_error", long_name="||x - approximation|| / ||x||"),
            Var("error_bound", long_name="a priori bound of the relative error (NaN for CP)"),
            Var("iterations", dtype="int64", long_name="CP-ALS sweeps (0 for SVD)"),
            Var("wall_time", units="s", long_name="time to compress"),
        ]  # fmt: skip
        width = max(len(r["ranks"]) for r in run.results)
        attrs = {"input_shape": list(x.shape), "input_norm": float(np.linalg.norm(x))}
        return Layout("case", series, dims={"rank_index": width}, attrs=attrs)

    def records(self, run: SweepRun) -> list[dict[str, Any]]:
        """The results, ranks zero-padded."""
        width = max(len(r["ranks"]) for r in run.results)
        out = []
        for res in run.results:
            ranks = np.zeros(width, dtype=np.int64)
            ranks[: len(res["ranks"])] = res["ranks"]
            out.append({**res, "ranks": ranks})
        return out

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """The results (on every rank), each also logged."""
        for res in run.results:
            logger.info(
                "%-18s ranks %-14s ratio %9.1f  error %.2e  %.3f s",
                *(res["label"], "x".join(map(str, res["ranks"])), res["compression_ratio"]),
                *(res["relative_error"], res["wall_time"]),
            )
        return {"results": run.results}

    def describe(self, cfg: CompressConfig, n_ranks: int) -> str:
        """Input and number of cases."""
        shape = cfg.input.shape if cfg.input.source == "synthetic" else cfg.input.source
        return f"compressing {shape}: {len(make_cases(cfg.cases))} cases on {n_ranks} rank(s)"

    plots = staticmethod(plots)


DRIVER = Driver("compress", __doc__, CompressSweep())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
