r"""PANTHER: pathway-augmented nonnegative tensor factorization and a softmax classifier.

The pipeline of arXiv 2012.08580 (Luo & Mao, AAAI 2021) on a patient x pathway x gene
tensor (:mod:`problems.genomics`), one run per (fill, orthogonality weight, seed)::

    mpirun -n 2 python -m drivers.panther                          # synthetic cohort
    mpirun -n 2 python -m drivers.panther --set preset=serology    # TensorLy's serology data
    python -m drivers.panther --set preset=files    # the sample cohort of data/panther/
    python -m drivers.panther --set preset=files --set experiment.files.counts=counts.csv \
        --set experiment.files.membership=m.csv --set experiment.files.samples=s.csv
    python -m drivers.panther plot runs/panther_synthetic.nc

Each run:

1. builds the data (:func:`problems.genomics_files.patient_data`): a synthetic cohort with
   planted pathway groups (new per seed), a cohort read from three tables, or the serology
   tensor (438 samples x 6 antigens x 11 receptors, 5 classes); cohorts go through the
   pathway sub-isomorphism, gene and patient filters and become the tensor with the
   knowledge-based (``"knowledge"``) or generalized by-patient (``"co2"``) fill;
2. draws a stratified train / validation / test split (60/20/20 by default);
3. factorizes the whole tensor (transductive: labels unused) with nonnegative CP of rank
   ``R``: HALS from a random start, then, for ``w_ortho > 0``, projected gradient with the
   scale-invariant penalty ``w_ortho ||Abar^T Abar - I||_F^2`` on the patient mode (the
   tensor is scaled to unit norm: the weight is relative to ``0.5 rel_error^2``);
4. fits a multinomial logistic regression on [confounders, patient factor rows] for every
   ``C`` of ``classifier.cs``, keeps the best on validation; the same classifier on the raw
   features (patient x gene counts, or the flattened tensor) is the baseline;
5. reports, per class, the pathway group: the component with the largest classifier weight
   for the class, its leading pathways and genes; for planted groups, their overlap.

Steps 3 to 5 are :func:`solvers.panther.fit_and_classify`. The runs are spread over the MPI
ranks (results do not depend on their number); rank 0 writes one netCDF4/HDF5 file, record
dimension ``run`` (:mod:`analysis.panther` reads it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from analysis.panther import analyse, group_lines, plots, table_lines
from drivers._base import Layout, OutputParams, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems.genomics import FILLS, FilterParams, SyntheticCohortParams, stratified_split
from problems.genomics_files import FilesParams, patient_data
from problems.shipped_data import panther_tables
from solvers.panther import SPLITS, ClassifierParams, FactorParams, fit_and_classify
from tensorsim.config import ConfigError, Params, param

__all__ = [
    "PRESETS",
    "Experiment",
    "PantherRun",
    "PantherSweep",
    "ReportParams",
    "SweepParams",
    "main",
    "run_case",
]

logger = logging.getLogger("drivers.panther")


@dataclass(frozen=True)
class SweepParams(Params):
    """The runs: fills x orthogonality weights x seeds (each seed: cohort, split, start)."""

    fills: tuple[str, ...] = param(("knowledge", "co2"), "tensor fills", choices=FILLS)
    w_orthos: tuple[float, ...] = param((0.0, 0.01), "orthogonality weights", ge=0.0)
    seeds: int = param(4, "seeds per setting", ge=1)
    seed: int = param(0, "base seed", ge=0)


@dataclass(frozen=True)
class ReportParams(Params):
    """What is reported per class."""

    top_pathways: int = param(0, "pathways per group (0: planted size, else 5)", ge=0)
    top_genes: int = param(10, "genes per group", ge=1)


@dataclass(frozen=True)
class Experiment(Params):
    """Data, filters, factorization, classifier and sweep."""

    source: Literal["synthetic", "serology", "files"] = param("synthetic", "data source")
    cohort: SyntheticCohortParams = param(SyntheticCohortParams(), "synthetic cohort")
    files: FilesParams = param(FilesParams(), "cohort tables (source = files)")
    filters: FilterParams = param(FilterParams(), "cohort filters")
    factor: FactorParams = param(FactorParams(), "nonnegative CP")
    classifier: ClassifierParams = param(ClassifierParams(), "softmax classifier")
    sweep: SweepParams = param(SweepParams(), "fills, weights and seeds")
    report: ReportParams = param(ReportParams(), "pathway groups")

    def __post_init__(self) -> None:
        super().__post_init__()
        missing = [k for k in ("counts", "membership", "samples") if not getattr(self.files, k)]
        if self.source == "files" and missing:
            raise ConfigError(
                f"config key 'files.{missing[0]}': source = 'files' needs the path of the "
                f"{missing[0]} table"
            )
        for table, source in (("files", "files"), ("cohort", "synthetic")):
            if self.source != source and getattr(self, table) != type(getattr(self, table))():
                raise ConfigError(
                    f"config key {table!r}: applies to source = {source!r} only, not to "
                    f"source = {self.source!r}"
                )
        if not self.sweep.fills or not self.sweep.w_orthos:
            raise ConfigError("config key 'sweep': fills and w_orthos need at least one value")

    def settings(self) -> list[tuple[str, float]]:
        """The ``(fill, w_ortho)`` pairs (fill ``"none"`` for the serology tensor)."""
        fills = ("none",) if self.source == "serology" else self.sweep.fills
        return [(f, w) for f in fills for w in self.sweep.w_orthos]


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {
    "synthetic": Experiment,
    "serology": lambda: Experiment(
        source="serology",
        factor=FactorParams(rank=4),
        sweep=SweepParams(w_orthos=(0.0, 0.01), seeds=3),
        report=ReportParams(top_pathways=2, top_genes=3),
    ),
    "files": lambda: Experiment(source="files", files=FilesParams(*panther_tables())),
}


@dataclass(frozen=True)
class PantherOutput(OutputParams):
    """The output file."""

    path: str = param("", "output file (empty: runs/panther_{preset}.nc)")


@dataclass(frozen=True)
class PantherRun(Params):
    """Configuration of ``python -m drivers.panther``."""

    preset: Literal["synthetic", "serology", "files"] = param(
        "synthetic", "defaults of the experiment table"
    )
    experiment: Experiment = param(Experiment(), "data, factorization, classifier, sweep")
    output: PantherOutput = param(PantherOutput(), "output file")


def _on(names: Sequence[str], full: Sequence[str], values: np.ndarray) -> np.ndarray:
    """``values`` (rows over ``names``) placed on the rows of ``full``, NaN elsewhere."""
    index = {n: i for i, n in enumerate(full)}
    out = np.full((len(full), *values.shape[1:]), np.nan)
    out[[index[n] for n in names]] = values
    return out


def run_case(e: Experiment, fill: str, w_ortho: float, seed: int) -> dict[str, Any]:
    """One run: data, split, factorization, classifier, groups. NumPy results only."""
    start = time.perf_counter()
    data, raw, full = patient_data(
        e.source, fill=fill, cohort=e.cohort, files=e.files, filters=e.filters,
        rng=[e.sweep.seed, seed],
    )  # fmt: skip
    split = stratified_split(data.labels, e.classifier.fractions, rng=[e.sweep.seed, seed, 1])
    out = fit_and_classify(
        data.tensor, data.labels, split, data.confounders, w_ortho=w_ortho, seed=seed,
        factor=e.factor, classifier=e.classifier, raw=raw, planted=data.planted,
        top_mode1=e.report.top_pathways, top_mode2=e.report.top_genes,
    )  # fmt: skip
    modes = {"in_group": 0, "planted": 0, "gene_rank": 1, "loading1": 0, "loading2": 1}
    for name, mode in modes.items():  # on the unfiltered names (NaN: filtered out)
        out[name] = _on(data.ticks[mode], full[mode], out[name].T).T
    out["meta"] = {
        "class_names": data.class_names,
        "confounder_names": tuple(data.confounder_names) if out["n_confounders"] else (),
        "mode_names": data.mode_names,
        "ticks": full,
        "group_names": [[data.ticks[0][i] for i in g] for g in out.pop("groups")],
        "gene_names": [[data.ticks[1][i] for i in g] for g in out.pop("genes")],
    }
    out["seconds"] = time.perf_counter() - start
    logger.info(
        "%s w_ortho=%g seed %d: test accuracy %.3f (baseline %.3f), C=%g, error %.4f, "
        "overlap %s, %.1f s",
        *(fill, w_ortho, seed, out["accuracy"][2], out["baseline_accuracy"][2], out["C"]),
        *(out["rel_error"], np.round(out["overlap"], 2).tolist(), out["seconds"]),
    )
    return out


class PantherSweep(Sweep):
    """Every (fill, w_ortho, seed) run of the experiment; one record per run."""

    config = PantherRun
    presets = PRESETS
    length_key = "experiment.factor.max_iter"

    def cases(self, run: SweepRun) -> list[tuple[str, float, int]]:
        """Every (fill, w_ortho, seed index)."""
        e = run.cfg.experiment
        return [(f, w, s) for f, w in e.settings() for s in range(e.sweep.seeds)]

    def cost(self, run: SweepRun, case: tuple[str, float, int]) -> float:
        """The penalized phase dominates; the co2 fill is a little denser."""
        return 1.0 + 10.0 * (case[1] > 0) + (case[0] == "co2")

    def run_case(self, run: SweepRun, case: tuple[str, float, int]) -> dict[str, Any]:
        """One run (:func:`run_case`)."""
        return run_case(run.cfg.experiment, *case)

    def output_path(self, cfg: PantherRun) -> Path:
        """``output.path``, or ``runs/panther_{preset}.nc`` when it is empty."""
        return Path(cfg.output.path or f"runs/panther_{cfg.preset}.nc")

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``run``; splits, classes, features, components, modes 1 and 2."""
        cfg, meta = run.cfg, run.results[0]["meta"]
        (m0, m1, m2), (t1, t2) = meta["mode_names"], meta["ticks"]
        rank = cfg.experiment.factor.rank
        series = [
            Var("fill", (), str, None, "tensor fill (none: a given tensor)"),
            Var("w_ortho", (), "float64", None, "orthogonality weight on the patient mode"),
            Var("seed", (), "int64", None, "seed of the data, split and start"),
            Var("accuracy", ("split",), "float64", None, "softmax classifier accuracy"),
            Var("baseline_accuracy", ("split",), "float64", None, "accuracy on raw features"),
            Var("C", (), "float64", None, "inverse regularization chosen on validation"),
            Var("rec_error", ("split",), "float64", None, "relative reconstruction error"),
            Var("rel_error", (), "float64", None, "relative reconstruction error, all samples"),
            Var("hals_iterations", (), "int64", None, "HALS iterations"),
            Var("ortho_iterations", (), "int64", None, "projected-gradient iterations"),
            Var("fit_seconds", (), "float64", "s", "time of the factorization"),
            Var("seconds", (), "float64", "s", "time of the run"),
            Var("min_factor", (), "float64", None, "smallest factor entry"),
            Var("ortho_offdiag", (), "float64", None, "max |off-diagonal| of Abar^T Abar"),
            Var("n_samples", (), "int64", None, "samples after filtering"),
            Var("n_mode1", (), "int64", None, f"{m1}s after filtering"),
            Var("n_mode2", (), "int64", None, f"{m2}s after filtering"),
            Var("coef", ("class", "feature"), "float64", None, "classifier weights"),
            Var("intercept", ("class",), "float64", None, "classifier intercepts"),
            Var("group_component", ("class",), "int64", None, "component of the class"),
            Var("overlap", ("class",), "float64", None, "reported group vs planted group"),
            Var("overlap_best", ("class",), "float64", None, "best-matched component vs planted"),
            Var("in_group", ("class", m1), "float64", None, f"1: {m1} in the class's group"),
            Var("planted", ("class", m1), "float64", None, f"1: {m1} in the planted group"),
            Var("gene_rank", ("class", m2), "float64", None, f"rank of the {m2} in the group"),
            Var("loading1", ("component", m1), "float64", None, f"{m1} factor (NaN: filtered)"),
            Var("loading2", ("component", m2), "float64", None, f"{m2} factor (NaN: filtered)"),
        ]
        features = [*meta["confounder_names"], *(f"component{r}" for r in range(rank))]
        coords = {"split": list(SPLITS), "class": list(meta["class_names"]), "feature": features}
        coords |= {"component": np.arange(rank), m1: list(t1), m2: list(t2)}
        attrs = {"preset": cfg.preset, "source": cfg.experiment.source, "mode0": m0}
        return Layout("run", series, coords=coords, attrs=attrs | {"mode1": m1, "mode2": m2})

    def records(self, run: SweepRun) -> list[dict]:
        """The run's result with its fill, weight and seed."""
        return [
            {"fill": fill, "w_ortho": w, "seed": seed, **result}
            for (fill, w, seed), result in zip(run.cases, run.results, strict=True)
        ]

    def finish(self, run: SweepRun) -> dict:
        """The groups of seed 0 per setting; on rank 0 the table of :func:`analyse`."""
        pairs = zip(run.cases, run.results, strict=True)
        groups = {(f, w): r["meta"] for (f, w, s), r in pairs if s == 0}
        if run.comm.rank != 0:
            return {"groups": groups}
        from tensorsim.io import open_run

        return {"groups": groups, "table": analyse(open_run(run.path)[0])}

    def describe(self, cfg: PantherRun, n_ranks: int) -> str:
        """Data, rank, settings and seeds."""
        e = cfg.experiment
        n = len(e.settings()) * e.sweep.seeds
        return (
            f"{cfg.preset}: {e.source} data, rank {e.factor.rank}, settings {e.settings()} x "
            f"{e.sweep.seeds} seeds = {n} runs on {n_ranks} rank(s)"
        )

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """Times and file, then the table per setting and the groups of seed 0."""
        table, groups = summary.get("table", {}), summary.get("groups", {})
        return "\n".join([super().summarize(summary), *table_lines(table), *group_lines(groups)])

    plots = staticmethod(plots)


DRIVER = Driver("panther", __doc__, PantherSweep())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
