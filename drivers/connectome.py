r"""Dynamic functional connectome on synthetic calcium traces (arXiv 2402.14102).

Synthetic animals with planted, epoch-dependent communities (:mod:`problems.connectome`)
give a ``pair x window x animal`` tensor of differential affinities; its nonnegative CP
components are refolded into graphs whose communities (Louvain by default) are scored
against the planted partition of every epoch by normalized mutual information
(:mod:`solvers.connectome`, L. Dyballa, S. Lang, A. Haslund-Gourley, E. Yemini,
S. W. Zucker, arXiv:2402.14102)::

    python -m drivers.connectome                                  # preset "clean"
    mpirun -n 4 python -m drivers.connectome --set preset=noisy --set experiment.sweep.seeds=8
    python -m drivers.connectome --set experiment.analysis.ranks=[3,5] \\
        --set output.path=runs/connectome_ranks.nc
    python -m drivers.connectome plot runs/connectome.nc          # PNG plots next to the file

Presets (driver weight / private-noise weight): ``clean`` 0.8 / 0.3, ``noisy`` 0.5 / 0.6,
``hard`` 0.35 / 0.8 (ranks 3 and 5); 30 neurons, 4 animals, 900 steps in 3 epochs of 3, 3
and 5 communities, windows of 30 samples.

A run is one (seed, NTF rank) pair. Every rank simulates the animals of every seed and
builds their affinities, then the runs are spread over the MPI ranks; the result does not
depend on the number of ranks. The score of an epoch is the best NMI among the components
whose temporal loading peaks in it (0 if none does); ``static_nmi`` scores the pooled
(time- and animal-summed) graph, a static connectome. Rank 0 writes one netCDF4/HDF5 file
with record dimension ``run`` and dimensions ``component``, ``community``, ``window``,
``epoch``, ``neuron``, ``animal``, ``pair``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from analysis.connectome import plots
from drivers._base import Layout, OutputParams, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems.connectome import ConnectomeParams, make_dataset
from solvers.connectome import (
    AffinityParams,
    AnalysisParams,
    analyse_run,
    pair_indices,
    window_centres,
    window_epochs,
)
from tensorsim.config import ConfigError, Params, param

__all__ = ["PRESETS", "ConnectomeRun", "ConnectomeSweep", "Experiment", "SweepParams", "main"]

logger = logging.getLogger("drivers.connectome")


@dataclass(frozen=True)
class SweepParams(Params):
    """The data sets (``seed`` also seeds the NTF start and the community search)."""

    seeds: int = param(1, "number of data sets", ge=1)
    seed: int = param(0, "first seed", ge=0)


@dataclass(frozen=True)
class Experiment(Params):
    """The population, the affinities, the analysis and the seeds."""

    problem: ConnectomeParams = param(ConnectomeParams(), "synthetic population")
    affinity: AffinityParams = param(AffinityParams(), "differential affinities")
    analysis: AnalysisParams = param(AnalysisParams(), "NTF and communities")
    sweep: SweepParams = param(SweepParams(), "data sets")

    def __post_init__(self) -> None:
        super().__post_init__()
        limit = self.problem.n_steps - 1
        if self.affinity.window > limit:
            raise ConfigError(
                f"config key 'affinity.window': expected at most the {limit} derivative "
                f"samples of a trace (problem.n_steps - 1), got {self.affinity.window}"
            )

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre (in steps) and planted epoch of every window."""
        p, a = self.problem, self.affinity
        centres = window_centres(p.n_steps, a.window, a.step)
        return centres, window_epochs(p.epoch_bounds(), a.window, a.step)

    def seeds(self) -> list[int]:
        """The seeds of the data sets."""
        return list(range(self.sweep.seed, self.sweep.seed + self.sweep.seeds))

    def runs(self) -> list[tuple[int, int]]:
        """The ``(seed, rank)`` pairs, seeds outermost."""
        return [(s, r) for s in self.seeds() for r in self.analysis.ranks]


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {
    "clean": Experiment,
    "noisy": lambda: Experiment(problem=ConnectomeParams(driver=0.5, noise=0.6)),
    "hard": lambda: Experiment(
        problem=ConnectomeParams(driver=0.35, noise=0.8), analysis=AnalysisParams(ranks=(3, 5))
    ),
}


@dataclass(frozen=True)
class ConnectomeRun(Params):
    """Configuration of ``python -m drivers.connectome``."""

    preset: Literal["clean", "noisy", "hard"] = param("clean", "defaults of the experiment")
    experiment: Experiment = param(Experiment(), "population, affinities, analysis, seeds")
    output: OutputParams = param(OutputParams("runs/connectome.nc"), "output file")


#: The series of a run: name -> (dims, dtype, long name).
SERIES = {
    "seed": ((), "int64", "seed of the data set"),
    "ntf_rank": ((), "int64", "NTF rank"),
    "ntf_error": ((), "float64", "relative error ||X - X_hat|| / ||X|| of the NTF"),
    "ntf_iterations": ((), "int64", "NTF iterations"),
    "wall_time": ((), "float64", "time of the analysis (s)"),
    "planted": (("epoch", "neuron"), "int64", "planted community per epoch"),
    "gain": (("animal",), "float64", "driver gain of the animal"),
    "weight": (("component",), "float64", "component weight (NaN: no component)"),
    "pair_factor": (("pair", "component"), "float64", "unit-norm pair pattern"),
    "time_factor": (("window", "component"), "float64", "unit-norm temporal loading"),
    "animal_factor": (("animal", "component"), "float64", "unit-norm animal loading"),
    "labels": (("component", "neuron"), "int64", "community (-1: no component)"),
    "n_communities": (("component",), "int64", "communities of the component"),
    "nmi": (("component", "epoch"), "float64", "NMI with the planted partition"),
    "peak_window": (("component",), "int64", "window of the largest time loading"),
    "peak_epoch": (("component",), "int64", "epoch of that window (-1: none)"),
    "epoch_nmi": (("epoch",), "float64", "best NMI of components peaking there"),
    "epoch_component": (("epoch",), "int64", "component reaching it (-1: none)"),
    "static_labels": (("neuron",), "int64", "communities of the pooled graph"),
    "static_nmi": (("epoch",), "float64", "NMI of the pooled graph's communities"),
    "courses": (("component", "community", "window"), "float64",
                "mean within-community affinity per window"),
    "epoch_affinity": (("epoch", "pair"), "float64", "mean affinity over the epoch"),
}  # fmt: skip


def _pad(values: Any, shape: tuple[int, ...], fill: Any) -> np.ndarray:
    out = np.full(shape, fill, dtype=np.asarray(values).dtype)
    out[tuple(slice(0, s) for s in np.shape(values))] = values
    return out


def _communities(run: SweepRun) -> int:
    """The largest number of communities of a component (at least 1)."""
    return max(1, max(int(r["courses"].shape[1]) for r in run.results))


class ConnectomeSweep(Sweep):
    """The (seed, NTF rank) runs on the affinities of every seed; one record per run."""

    config = ConnectomeRun
    presets = PRESETS
    length_key = "experiment.analysis.max_iter"

    def prepare(self, cfg: ConnectomeRun, executor: Any) -> dict[int, dict[str, np.ndarray]]:
        """Per seed: the data set and the affinities of every animal (pair x window x animal).

        The seeds are spread over the ranks.
        """
        e = cfg.experiment

        def one(seed: int) -> dict[str, np.ndarray]:
            data = make_dataset(e.problem, seed)
            tensor = np.stack([e.affinity.affinities(t) for t in data.traces], -1)
            return {"tensor": tensor, "gain": data.gains, "planted": data.partitions}

        seeds = list(e.seeds())
        return dict(zip(seeds, executor.map(one, seeds), strict=True))

    def cases(self, run: SweepRun) -> list[tuple[int, int]]:
        """The ``(seed, rank)`` pairs, seeds outermost."""
        return run.cfg.experiment.runs()

    def cost(self, run: SweepRun, case: tuple[int, int]) -> float:
        """The NTF rank."""
        return float(case[1])

    def run_case(self, run: SweepRun, case: tuple[int, int]) -> dict[str, Any]:
        """One run (:func:`solvers.connectome.analyse_run`), padded to the largest rank."""
        (seed, rank), e, start = case, run.cfg.experiment, time.perf_counter()
        data, r_max, n_epochs = run.data[seed], max(e.analysis.ranks), e.problem.n_epochs
        epochs = e.windows()[1]
        r = analyse_run(
            data["tensor"],
            rank,
            e.analysis,
            partitions=data["planted"],
            window_epoch=epochs,
            seed=seed,
        )
        out = {
            **r, "seed": seed, "ntf_rank": rank, "planted": data["planted"], "gain": data["gain"],
            "weight": _pad(r["weights"], (r_max,), np.nan),
            "pair_factor": _pad(r["pairs"], (r["pairs"].shape[0], r_max), np.nan),
            "time_factor": _pad(r["time"], (epochs.size, r_max), np.nan),
            "animal_factor": _pad(r["animals"], (e.problem.n_animals, r_max), np.nan),
            "labels": _pad(r["labels"], (r_max, e.problem.n_neurons), -1),
            "n_communities": _pad(r["labels"].max(axis=1) + 1, (r_max,), 0),
            "nmi": _pad(r["nmi"], (r_max, n_epochs), np.nan),
            "peak_window": _pad(r["peak_window"], (r_max,), -1),
            "peak_epoch": _pad(r["peak_epoch"], (r_max,), -1),
            "wall_time": time.perf_counter() - start,
        }  # fmt: skip
        logger.info(
            "seed %d rank %d: epoch NMI %s (static %s), %d NTF iterations, error %.3f, %.2f s",
            *(seed, rank, np.array2string(r["epoch_nmi"], precision=2)),
            *(np.array2string(r["static_nmi"], precision=2), r["ntf_iterations"]),
            *(r["ntf_error"], out["wall_time"]),
        )
        return out

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``run``; factors padded to the largest rank and community."""
        e, p = run.cfg.experiment, run.cfg.experiment.problem
        rows, cols = pair_indices(p.n_neurons)
        centres, epochs = e.windows()
        where = "epoch holding the window centre"
        series = [
            Var(name, dims, dtype, "s" if name == "wall_time" else None, long_name)
            for name, (dims, dtype, long_name) in SERIES.items()
        ]
        return Layout(
            "run",
            series,
            coords={
                "component": (np.arange(max(e.analysis.ranks)), "NTF component (by weight)"),
                "community": (np.arange(_communities(run)), "community label"),
                "window": (centres, "centre of the window in time steps", "steps"),
                "epoch": (np.arange(p.n_epochs), "planted epoch"),
                "neuron": np.arange(p.n_neurons),
                "animal": np.arange(p.n_animals),
            },
            dims={"pair": int(rows.size)},
            variables=[
                (Var("pair_i", ("pair",), long_name="first neuron of the pair"), rows),
                (Var("pair_j", ("pair",), long_name="second neuron of the pair"), cols),
                (Var("window_epoch", ("window",), long_name=where), epochs),
            ],
            attrs={"preset": run.cfg.preset, "epoch_bounds": p.epoch_bounds()},
        )

    def records(self, run: SweepRun) -> list[dict[str, Any]]:
        """The results, ``courses`` padded to the largest number of communities."""
        shape = (max(run.cfg.experiment.analysis.ranks), _communities(run))
        return [
            {**r, "courses": _pad(r["courses"], (*shape, r["courses"].shape[2]), np.nan)}
            for r in run.results
        ]

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """The runs and their epoch NMI (run x epoch) of the NTF and of the pooled graph."""
        nmi = {k: np.stack([r[k] for r in run.results]) for k in ("epoch_nmi", "static_nmi")}
        return {"runs": run.cases, **nmi}

    def describe(self, cfg: ConnectomeRun, n_ranks: int) -> str:
        """Population, windows, analysis and seeds."""
        e, p = cfg.experiment, cfg.experiment.problem
        return (
            f"{cfg.preset}: {p.n_neurons} neurons, {p.n_animals} animals, {p.n_steps} steps in "
            f"epochs of {list(p.blocks)} communities (driver {p.driver}, noise {p.noise}); "
            f"windows of {e.affinity.window}; NTF ranks {list(e.analysis.ranks)}, "
            f"{e.analysis.communities}; {e.sweep.seeds} seed(s) on {n_ranks} rank(s)"
        )

    def report(self, summary: Mapping[str, Any]) -> str:
        """Per NTF rank: the epoch NMI (min and mean over seeds) and the static graph's."""
        runs, lines = summary["runs"], []
        for rank in sorted({r for _, r in runs}):
            sel = [i for i, (_, r) in enumerate(runs) if r == rank]
            nmi, static = summary["epoch_nmi"][sel], summary["static_nmi"][sel]
            show = [
                np.array2string(a, precision=3) for a in (nmi.min(0), nmi.mean(0), static.mean(0))
            ]
            lines.append(
                f"rank {rank}: epoch NMI min over {len(sel)} seed(s) {show[0]}, mean {show[1]}; "
                f"static graph mean {show[2]}"
            )
        return "\n  ".join(lines)

    plots = staticmethod(plots)


DRIVER = Driver("connectome", __doc__, ConnectomeSweep())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
