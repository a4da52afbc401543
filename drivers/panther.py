r"""PANTHER: pathway-augmented nonnegative tensor factorization and a softmax classifier.

The pipeline of arXiv 2012.08580 (Luo & Mao, AAAI 2021) on a patient x pathway x gene
tensor (:mod:`problems.genomics`), one run per (fill, orthogonality weight, seed)::

    mpirun -n 2 python -m drivers.panther                          # synthetic cohort
    mpirun -n 2 python -m drivers.panther --set preset=serology    # TensorLy's serology data
    python -m drivers.panther --set preset=files \
        --set experiment.files.counts=counts.csv \
        --set experiment.files.membership=membership.csv \
        --set experiment.files.samples=samples.csv
    python -m drivers.panther plot runs/panther_synthetic.nc

Each run:

1. builds the data: a synthetic cohort with planted pathway groups (a new cohort per seed),
   a cohort read from the three tables of :func:`problems.genomics_files.read_cohort`, or the
   serology tensor (438 samples x 6 antigens x 11 receptors, 5 severity classes); cohorts
   go through the pathway sub-isomorphism, gene and patient filters and become the tensor
   with the knowledge-based (``"knowledge"``) or generalized by-patient (``"co2"``) fill;
2. draws a stratified train / validation / test split (60/20/20 by default);
3. factorizes the whole tensor (transductive, as PANTHER: labels unused) with nonnegative CP
   of rank ``R``: HALS from a random start, then, for a weight ``w_ortho > 0``, projected
   gradient with the scale-invariant orthogonality penalty on the patient mode,
   ``w_ortho ||Abar^T Abar - I||_F^2``, from the HALS factors (the tensor is scaled to unit
   norm, so the weight is relative to the data term ``0.5 rel_error^2``);
4. fits a multinomial logistic regression on [confounders, patient factor rows] (features
   standardized on train) for every ``C`` of ``classifier.cs``, keeps the best on validation
   and reports train / validation / test accuracy; the same classifier on the raw features
   (patient x gene counts, or the flattened tensor) is the baseline;
5. reports, per class, the pathway group: the component with the largest classifier weight
   for the class, its leading pathways and genes; for planted groups, their overlap.

The runs are spread over the MPI ranks (:class:`tensorsim.parallel.Executor`); results do not
depend on the number of ranks. Rank 0 writes one netCDF4/HDF5 file
(``xarray.open_dataset(path, engine="h5netcdf")``) with record dimension ``run`` and
dimensions ``split``, ``class``, ``feature``, ``component`` and the two non-patient modes.

References
----------
Y. Luo, C. Mao, arXiv:2012.08580 (PANTHER).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drivers._cli import refuse_restart, run_command_line
from problems.genomics import (
    FILLS,
    SyntheticCohortParams,
    cohort_tensor,
    filter_cohort,
    serology_data,
    stratified_split,
    synthetic_cohort,
)
from problems.genomics_files import read_cohort
from tensorsim.config import ConfigError, Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = [
    "PRESETS",
    "Experiment",
    "PantherRun",
    "analyse",
    "main",
    "plot",
    "run",
    "run_case",
]

logger = logging.getLogger("drivers.panther")


@dataclass(frozen=True)
class FilesParams(Params):
    """A cohort on disk (format: :func:`problems.genomics_files.read_cohort`).

    Attributes
    ----------
    counts, membership, samples
        Paths of the three tables.
    unknown_genes
        Membership rows with genes absent from the counts table: ``"error"`` or ``"drop"``.
    """

    counts: str = param("", "counts table: patient,gene,count")
    membership: str = param("", "membership table: pathway,gene")
    samples: str = param("", "samples table: patient,label[,confounders...]")
    unknown_genes: Literal["error", "drop"] = param("error", "membership genes without counts")


@dataclass(frozen=True)
class FilterParams(Params):
    """PANTHER's cohort filters (:func:`problems.genomics.filter_cohort`).

    Attributes
    ----------
    min_gene_fraction
        Keep genes mutated in at least this fraction of the patients.
    min_patient_genes
        Keep patients with at least this many kept genes mutated.
    subisomorphism
        Drop pathways nested in (or equal to) others.
    """

    min_gene_fraction: float = param(0.05, "genes: fraction of patients mutated", ge=0.0, le=1.0)
    min_patient_genes: int = param(10, "patients: mutated kept genes", ge=0)
    subisomorphism: bool = param(True, "drop nested and duplicate pathways")


@dataclass(frozen=True)
class FactorParams(Params):
    """The nonnegative CP factorization.

    Attributes
    ----------
    rank
        Number of components ``R``.
    max_iter
        HALS iterations at most.
    ortho_iter
        Projected-gradient iterations at most (runs with ``w_ortho > 0``).
    tol
        Stop when the relative error changes by less than this.
    """

    rank: int = param(8, "number of components R", ge=1)
    max_iter: int = param(500, "HALS iterations at most", ge=1)
    ortho_iter: int = param(200, "projected-gradient iterations at most", ge=1)
    tol: float = param(1e-7, "stop at this change of the relative error", gt=0.0)


@dataclass(frozen=True)
class ClassifierParams(Params):
    """The softmax classifier and the split.

    Attributes
    ----------
    cs
        Inverse regularization strengths tried; the best on validation is kept.
    fractions
        Train, validation and test fractions (per class).
    confounders
        Put the confounders in front of the patient factor.
    """

    cs: tuple[float, ...] = param((0.01, 0.1, 1.0, 10.0, 100.0), "C values tried", gt=0.0)
    fractions: tuple[float, ...] = param((0.6, 0.2, 0.2), "train/validation/test", gt=0.0)
    confounders: bool = param(True, "use the confounders as features")

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.fractions) != 3 or abs(sum(self.fractions) - 1.0) > 1e-9:
            raise ConfigError(
                "config key 'fractions': expected three fractions summing to 1, got "
                f"{list(self.fractions)}"
            )
        if not self.cs:
            raise ConfigError("config key 'cs': expected at least one value")


@dataclass(frozen=True)
class SweepParams(Params):
    """The runs: fills x orthogonality weights x seeds.

    Attributes
    ----------
    fills
        Tensor fills (cohorts; ignored for the serology tensor).
    w_orthos
        Orthogonality weights on the patient mode (0: HALS only).
    seeds
        Seeds per setting: the synthetic cohort, the split and the start.
    seed
        Base seed.
    """

    fills: tuple[str, ...] = param(("knowledge", "co2"), "tensor fills", choices=FILLS)
    w_orthos: tuple[float, ...] = param((0.0, 0.01), "orthogonality weights", ge=0.0)
    seeds: int = param(4, "seeds per setting", ge=1)
    seed: int = param(0, "base seed", ge=0)


@dataclass(frozen=True)
class ReportParams(Params):
    """What is reported per class.

    Attributes
    ----------
    top_pathways
        Pathways per reported group (0: the planted group's size, else 5).
    top_genes
        Genes per reported group.
    """

    top_pathways: int = param(0, "pathways per group (0: planted size, else 5)", ge=0)
    top_genes: int = param(10, "genes per group", ge=1)


@dataclass(frozen=True)
class Experiment(Params):
    """Data, filters, factorization, classifier and sweep.

    Attributes
    ----------
    source
        ``"synthetic"``, ``"serology"`` or ``"files"``.
    """

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
        if self.source == "files":
            for key in ("counts", "membership", "samples"):
                if not getattr(self.files, key):
                    raise ConfigError(
                        f"config key 'files.{key}': source = 'files' needs the path of the "
                        f"{key} table"
                    )
        if not self.sweep.fills or not self.sweep.w_orthos:
            raise ConfigError("config key 'sweep': fills and w_orthos need at least one value")

    def settings(self) -> list[tuple[str, float]]:
        """The ``(fill, w_ortho)`` pairs (fill ``"none"`` for the serology tensor)."""
        fills = ("none",) if self.source == "serology" else self.sweep.fills
        return [(f, w) for f in fills for w in self.sweep.w_orthos]


def _synthetic() -> Experiment:
    return Experiment()


def _serology() -> Experiment:
    return Experiment(
        source="serology",
        factor=FactorParams(rank=4),
        sweep=SweepParams(w_orthos=(0.0, 0.01), seeds=3),
        report=ReportParams(top_pathways=2, top_genes=3),
    )


def _files() -> Experiment:
    files = FilesParams(counts="counts.csv", membership="membership.csv", samples="samples.csv")
    return Experiment(source="files", files=files)


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"synthetic": _synthetic, "serology": _serology, "files": _files}


@dataclass(frozen=True)
class OutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output file; empty: ``runs/panther_{preset}.nc``.
    """

    path: str = param("", "output file (empty: runs/panther_{preset}.nc)")


@dataclass(frozen=True)
class PantherRun(Params):
    """Configuration of ``python -m drivers.panther``.

    Attributes
    ----------
    preset
        ``"synthetic"``, ``"serology"`` or ``"files"``: defaults of ``experiment``.
    experiment
        Data, factorization, classifier, sweep.
    output
        The output file.
    """

    preset: Literal["synthetic", "serology", "files"] = param(
        "synthetic", "defaults of the experiment table"
    )
    experiment: Experiment = param(Experiment(), "data, factorization, classifier, sweep")
    output: OutputParams = param(OutputParams(), "output file")

    def path(self) -> Path:
        """The output file."""
        return Path(self.output.path or f"runs/panther_{self.preset}.nc")


def _data(e: Experiment, fill: str, seed: int) -> tuple[Any, np.ndarray | None, tuple]:
    """The patient tensor, the raw baseline features and the unfiltered mode-1/2 names."""
    if e.source == "serology":
        data = serology_data()
        return data, None, data.ticks
    if e.source == "synthetic":
        cohort = synthetic_cohort(e.cohort, rng=[e.sweep.seed, seed])
    else:
        f = e.files
        cohort = read_cohort(f.counts, f.membership, f.samples, unknown_genes=f.unknown_genes)
    full = (cohort.pathway_names, cohort.gene_names)
    p = e.filters
    cohort = filter_cohort(
        cohort,
        min_gene_fraction=p.min_gene_fraction,
        min_patient_genes=p.min_patient_genes,
        subisomorphism=p.subisomorphism,
    )
    return cohort_tensor(cohort, fill=fill), cohort.counts, full  # type: ignore[arg-type]


def _on(names: Sequence[str], full: Sequence[str], values: np.ndarray) -> np.ndarray:
    """``values`` (rows over ``names``) placed on the rows of ``full``, NaN elsewhere."""
    index = {n: i for i, n in enumerate(full)}
    out = np.full((len(full), *values.shape[1:]), np.nan)
    out[[index[n] for n in names]] = values
    return out


def run_case(e: Experiment, fill: str, w_ortho: float, seed: int) -> dict[str, Any]:
    """One run: data, split, factorization, classifier, groups. NumPy results only."""
    from drivers._panther_runs import (
        baseline_features,
        classify,
        factorize,
        group_overlaps,
        pathway_groups,
        split_errors,
    )

    start = time.perf_counter()
    data, raw, full = _data(e, fill, seed)
    split = stratified_split(data.labels, e.classifier.fractions, rng=[e.sweep.seed, seed, 1])
    cp, info = factorize(
        data.tensor,
        e.factor.rank,
        w_ortho=w_ortho,
        max_iter=e.factor.max_iter,
        ortho_iter=e.factor.ortho_iter,
        tol=e.factor.tol,
        seed=seed,
    )
    conf = data.confounders if e.classifier.confounders else data.confounders[:, :0]
    features = np.hstack([conf, cp.factors[0] * cp.weights])
    clf = classify(features, data.labels, split, e.classifier.cs)
    baseline = classify(
        baseline_features(data.tensor, conf, raw),
        data.labels,
        split,
        e.classifier.cs,
    )
    n_classes = len(data.class_names)
    top = e.report.top_pathways
    sizes = [
        top or (len(data.planted[k]) if data.planted else min(5, data.tensor.shape[1]))
        for k in range(n_classes)
    ]
    components, groups, genes = pathway_groups(
        cp, clf["coef"], conf.shape[1], sizes, min(e.report.top_genes, data.tensor.shape[2])
    )
    if data.planted:
        overlap, best = group_overlaps(cp, data.planted, groups)
    else:
        overlap = best = np.full(n_classes, np.nan)
    a = cp.factors[0]
    gram = a.T @ a
    in_group = np.zeros((n_classes, data.tensor.shape[1]))
    gene_rank = np.zeros((n_classes, data.tensor.shape[2]))
    planted = np.zeros((n_classes, data.tensor.shape[1]))
    for k in range(n_classes):
        in_group[k, groups[k]] = 1.0
        if data.planted:
            planted[k, list(data.planted[k])] = 1.0
        gene_rank[k, genes[k]] = np.arange(1, genes[k].size + 1)
    out = {
        "accuracy": clf["accuracy"],
        "baseline_accuracy": baseline["accuracy"],
        "C": clf["C"],
        "rec_error": split_errors(data.tensor, cp, split),
        "rel_error": info["rel_error"],
        "hals_iterations": info["hals_iterations"],
        "ortho_iterations": info["ortho_iterations"],
        "fit_seconds": info["seconds"],
        "min_factor": float(min(f.min() for f in cp.factors)),
        "ortho_offdiag": float(np.abs(gram - np.diag(np.diag(gram))).max()),
        "n_samples": data.tensor.shape[0],
        "n_mode1": data.tensor.shape[1],
        "n_mode2": data.tensor.shape[2],
        "coef": clf["coef"],
        "intercept": clf["intercept"],
        "group_component": components,
        "overlap": overlap,
        "overlap_best": best,
        "in_group": _on(data.ticks[0], full[0], in_group.T).T,
        "planted": _on(data.ticks[0], full[0], planted.T).T,
        "gene_rank": _on(data.ticks[1], full[1], gene_rank.T).T,
        "loading1": _on(data.ticks[0], full[0], cp.factors[1]).T,
        "loading2": _on(data.ticks[1], full[1], cp.factors[2]).T,
        "meta": {
            "class_names": data.class_names,
            "confounder_names": tuple(data.confounder_names) if conf.shape[1] else (),
            "mode_names": data.mode_names,
            "ticks": full,
            "group_names": [[data.ticks[0][i] for i in g] for g in groups],
            "gene_names": [[data.ticks[1][i] for i in g] for g in genes],
        },
        "seconds": time.perf_counter() - start,
    }
    logger.info(
        "%s w_ortho=%g seed %d: test accuracy %.3f (baseline %.3f), C=%g, error %.4f, "
        "overlap %s, %.1f s",
        fill,
        w_ortho,
        seed,
        out["accuracy"][2],
        out["baseline_accuracy"][2],
        out["C"],
        out["rel_error"],
        np.round(overlap, 2).tolist(),
        out["seconds"],
    )
    return out


def _write(path: Path, cfg: PantherRun, comm: Any, labels: list, results: list) -> None:
    from drivers._panther_runs import SPLITS
    from tensorsim.io import Writer

    meta = results[0]["meta"]
    m0, m1, m2 = meta["mode_names"]
    rank = cfg.experiment.factor.rank
    features = [*meta["confounder_names"], *(f"component{r}" for r in range(rank))]
    attrs = {"preset": cfg.preset, "source": cfg.experiment.source, "mode0": m0}
    attrs |= {"mode1": m1, "mode2": m2}
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    with Writer(path, record_dim="run", comm=comm, config=config_to_toml(cfg), attrs=attrs) as out:
        out.set_coordinate("split", list(SPLITS))
        out.set_coordinate("class", list(meta["class_names"]))
        out.set_coordinate("feature", features)
        out.set_coordinate("component", np.arange(rank))
        out.set_coordinate(m1, list(meta["ticks"][0]))
        out.set_coordinate(m2, list(meta["ticks"][1]))
        series = [
            ("fill", (), str, None, "tensor fill (none: a given tensor)"),
            ("w_ortho", (), "float64", None, "orthogonality weight on the patient mode"),
            ("seed", (), "int64", None, "seed of the data, split and start"),
            ("accuracy", ("split",), "float64", None, "softmax classifier accuracy"),
            ("baseline_accuracy", ("split",), "float64", None, "accuracy on raw features"),
            ("C", (), "float64", None, "inverse regularization chosen on validation"),
            ("rec_error", ("split",), "float64", None, "relative reconstruction error"),
            ("rel_error", (), "float64", None, "relative reconstruction error, all samples"),
            ("hals_iterations", (), "int64", None, "HALS iterations"),
            ("ortho_iterations", (), "int64", None, "projected-gradient iterations"),
            ("fit_seconds", (), "float64", "s", "time of the factorization"),
            ("seconds", (), "float64", "s", "time of the run"),
            ("min_factor", (), "float64", None, "smallest factor entry"),
            ("ortho_offdiag", (), "float64", None, "max |off-diagonal| of Abar^T Abar"),
            ("n_samples", (), "int64", None, "samples after filtering"),
            ("n_mode1", (), "int64", None, f"{m1}s after filtering"),
            ("n_mode2", (), "int64", None, f"{m2}s after filtering"),
            ("coef", ("class", "feature"), "float64", None, "classifier weights"),
            ("intercept", ("class",), "float64", None, "classifier intercepts"),
            ("group_component", ("class",), "int64", None, "component of the class"),
            ("overlap", ("class",), "float64", None, "reported group vs planted group"),
            ("overlap_best", ("class",), "float64", None, "best-matched component vs planted"),
            ("in_group", ("class", m1), "float64", None, f"1: {m1} in the class's group"),
            ("planted", ("class", m1), "float64", None, f"1: {m1} in the planted group"),
            ("gene_rank", ("class", m2), "float64", None, f"rank of the {m2} in the group"),
            ("loading1", ("component", m1), "float64", None, f"{m1} factor (NaN: filtered)"),
            ("loading2", ("component", m2), "float64", None, f"{m2} factor (NaN: filtered)"),
        ]
        for name, dims, dtype, units, long_name in series:
            out.define_series(name, dims, dtype=dtype, units=units, long_name=long_name)
        names = [s[0] for s in series[3:]]
        for i, ((fill, w, seed), r) in enumerate(zip(labels, results, strict=True)):
            out.append(i, fill=fill, w_ortho=w, seed=seed, **{k: r[k] for k in names})


def run(
    cfg: PantherRun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Run every (fill, w_ortho, seed) over the ranks, write the file; return a summary."""
    refuse_restart("drivers.panther", restart, max_steps, "experiment.factor.max_iter")
    e = cfg.experiment
    start = time.perf_counter()
    labels = [(f, w, s) for f, w in e.settings() for s in range(e.sweep.seeds)]
    costs = [1.0 + 10.0 * (w > 0) + (f == "co2") for f, w, _ in labels]
    executor = Executor(comm)
    results = executor.map(lambda lab: run_case(e, *lab), labels, costs=costs)
    path = cfg.path()
    _write(path, cfg, comm, labels, results)
    summary: dict[str, Any] = {
        "path": str(path),
        "wall_time": time.perf_counter() - start,
        "busy_time": executor.last_timings,
        "groups": {(f, w): results[i]["meta"] for i, (f, w, s) in enumerate(labels) if s == 0},
    }
    if comm.rank == 0:
        from tensorsim.io import open_run

        summary["table"] = analyse(open_run(path)[0])
    return summary


def analyse(ds: Any) -> dict[tuple[str, float], dict[str, float]]:
    """Per (fill, w_ortho): means and deviations over seeds of the reported numbers."""
    out: dict[tuple[str, float], dict[str, float]] = {}
    fills = [str(v) for v in ds["fill"].values]
    ws = ds["w_ortho"].values
    for key in dict.fromkeys(zip(fills, ws.tolist(), strict=True)):
        runs = [i for i in range(len(fills)) if (fills[i], float(ws[i])) == key]
        acc = ds["accuracy"].values[runs]
        out[key] = {
            "runs": len(runs),
            "train": float(acc[:, 0].mean()),
            "val": float(acc[:, 1].mean()),
            "test": float(acc[:, 2].mean()),
            "test_std": float(acc[:, 2].std()),
            "baseline_test": float(ds["baseline_accuracy"].values[runs, 2].mean()),
            "rel_error": float(ds["rel_error"].values[runs].mean()),
            "rec_error_test": float(ds["rec_error"].values[runs, 2].mean()),
            "overlap": float(np.mean(ds["overlap"].values[runs])),
            "overlap_best": float(np.mean(ds["overlap_best"].values[runs])),
            "min_factor": float(ds["min_factor"].values[runs].min()),
            "ortho_offdiag": float(ds["ortho_offdiag"].values[runs].mean()),
            "fit_seconds": float(ds["fit_seconds"].values[runs].mean()),
            "chance": 1.0 / ds.sizes["class"],
        }
    return out


def _plot_accuracy(ds: Any, base: Path, plt: Any) -> Path:
    table = analyse(ds)
    keys = list(table)
    fig, ax = plt.subplots(figsize=(1.6 * len(keys) + 3, 4.2), constrained_layout=True)
    x = np.arange(len(keys))
    fills = [str(v) for v in ds["fill"].values]
    for j, split in enumerate(ds["split"].values):
        vals = []
        for key in keys:
            runs = [i for i in range(len(fills)) if (fills[i], float(ds["w_ortho"][i])) == key]
            vals.append(ds["accuracy"].values[runs, j])
        ax.bar(x + 0.25 * (j - 1), [v.mean() for v in vals], 0.25, yerr=[v.std() for v in vals],
               capsize=3, label=str(split))  # fmt: skip
    ax.plot(x, [table[k]["baseline_test"] for k in keys], "k^", label="raw features (test)")
    ax.axhline(1.0 / ds.sizes["class"], color="gray", ls=":", label="chance")
    ax.set_xticks(x, [f"{f}\nw_ortho={w:g}" for f, w in keys])
    ax.set(ylabel="accuracy (mean over seeds)", ylim=(0, 1.05))
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(f"PANTHER softmax classifier ({ds.attrs['preset']})")
    out = base.with_name(base.name + "_accuracy.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _plot_groups(ds: Any, base: Path, plt: Any) -> Path:
    m1 = str(ds.attrs["mode1"])
    n_classes = ds.sizes["class"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.35 * n_classes + 3.5), constrained_layout=True)
    run = int(np.nanargmax(ds["accuracy"].values[:, 1]))
    load = ds["loading1"].values[run]  # component x mode1
    comp = ds["group_component"].values[run]
    axes[0].imshow(np.ma.masked_invalid(load[comp]), aspect="auto", cmap="viridis")
    marks = np.argwhere(ds["in_group"].values[run] == 1)
    axes[0].plot(marks[:, 1], marks[:, 0], "r.", ms=5, label="reported group")
    planted = np.argwhere(ds["planted"].values[run] == 1)
    if planted.size:
        axes[0].plot(planted[:, 1], planted[:, 0], "wo", mfc="none", ms=9, label="planted group")
    axes[0].set_yticks(range(n_classes), [str(c) for c in ds["class"].values])
    axes[0].set_xlabel(f"{m1} index")
    axes[0].set_title(f"{m1} loading of each class's component (run {run})")
    axes[0].legend(fontsize="small")
    coef = ds["coef"].values[run]
    lim = np.abs(coef).max()
    im = axes[1].imshow(coef, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[1].set_xticks(range(ds.sizes["feature"]), [str(f) for f in ds["feature"].values],
                       rotation=60, fontsize=7)  # fmt: skip
    axes[1].set_yticks(range(n_classes), [str(c) for c in ds["class"].values])
    axes[1].set_title("classifier weights (standardized features)")
    fig.colorbar(im, ax=axes[1])
    out = base.with_name(base.name + "_groups.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot(path: str) -> list[Path]:
    """Write the accuracy bars and the groups / weights heat maps next to the file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    return [_plot_accuracy(ds, base, plt), _plot_groups(ds, base, plt)]


def _describe(cfg: PantherRun, n_ranks: int) -> str:
    e = cfg.experiment
    n = len(e.settings()) * e.sweep.seeds
    return (
        f"{cfg.preset}: {e.source} data, rank {e.factor.rank}, settings {e.settings()} x "
        f"{e.sweep.seeds} seeds = {n} runs on {n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    lines = [f"wrote {summary['path']} in {summary['wall_time']:.1f} s"]
    for (fill, w), v in summary.get("table", {}).items():
        lines.append(
            f"  {fill:<9} w_ortho={w:<6g} test accuracy {v['test']:.3f} +- {v['test_std']:.3f} "
            f"(train {v['train']:.3f}, val {v['val']:.3f}; raw features {v['baseline_test']:.3f}; "
            f"chance {v['chance']:.3f}), error {v['rel_error']:.4f}, overlap {v['overlap']:.2f} "
            f"(best match {v['overlap_best']:.2f}), min factor {v['min_factor']:.1e}, "
            f"fit {v['fit_seconds']:.1f} s"
        )
    for (fill, w), meta in summary.get("groups", {}).items():
        lines.append(f"  groups of seed 0, {fill} w_ortho={w:g}:")
        for k, name in enumerate(meta["class_names"]):
            lines.append(
                f"    {name}: {', '.join(meta['group_names'][k])} | {meta['mode_names'][2]}s "
                f"{', '.join(meta['gene_names'][k][:5])}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=PantherRun,
        prog="python -m drivers.panther",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            PantherRun, args.config, args.set, PRESETS, table="experiment"
        ),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=_summarize,
        logger=logger,
    )


if __name__ == "__main__":
    main()
