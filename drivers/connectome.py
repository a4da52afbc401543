r"""Dynamic functional connectome on synthetic calcium traces (arXiv 2402.14102).

Synthetic animals whose neurons form planted, epoch-dependent communities
(:func:`problems.connectome.make_dataset`) are turned into a ``pair x window x animal``
tensor of differential affinities (:func:`problems.connectome.affinity_tensor`), factorized
by nonnegative CP (:func:`tensorsim.decomp.nonneg_cp`); each component's pair pattern is
refolded into a weighted graph whose communities (Louvain by default) are scored against
the planted partition of every epoch by normalized mutual information::

    python -m drivers.connectome                                  # preset "clean"
    mpirun -n 4 python -m drivers.connectome --set preset=noisy --set experiment.sweep.seeds=8
    python -m drivers.connectome --set experiment.analysis.ranks=[3,5] \\
        --set output.path=runs/connectome_ranks.nc
    python -m drivers.connectome plot runs/connectome.nc          # PNG plots next to the file

Presets (driver weight / private-noise weight, as in the project's measured notes):
``clean`` 0.8 / 0.3, ``noisy`` 0.5 / 0.6, ``hard`` 0.35 / 0.8 (ranks 3 and 5); 30 neurons,
4 animals, 900 steps in 3 epochs of 3, 3 and 5 communities, windows of 30 samples.

A run is one (seed, NTF rank) pair. The animals of every seed are simulated and turned into
affinities on the MPI ranks (one task per (seed, animal)), then the runs are spread over
the ranks; the result does not depend on the number of ranks. Per run, the score of an
epoch is the best NMI among the components whose temporal loading peaks in that epoch
(0 if none does); ``static_nmi`` is the same score for the communities of the pooled
(time- and animal-summed) graph, what a static connectome would give. Rank 0 writes one
netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``) with record dimension
``run`` and dimensions ``component``, ``community``, ``window``, ``epoch``, ``neuron``,
``animal``, ``pair``.

References
----------
L. Dyballa, S. Lang, A. Haslund-Gourley, E. Yemini, S. W. Zucker, arXiv:2402.14102.
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
from problems.connectome import (
    ConnectomeParams,
    affinity_tensor,
    dynamic_communities,
    epoch_scores,
    n_windows,
    pair_indices,
    partition_nmi,
    planted_partitions,
    refold,
    simulate_animal,
    static_communities,
    window_epochs,
)
from tensorsim.config import ConfigError, Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = [
    "PRESETS",
    "AffinityParams",
    "AnalysisParams",
    "ConnectomeRun",
    "Experiment",
    "SweepParams",
    "animal_affinities",
    "analyse_run",
    "main",
    "plot",
    "run",
]

logger = logging.getLogger("drivers.connectome")


@dataclass(frozen=True)
class AffinityParams(Params):
    """The differential affinities (:func:`problems.connectome.affinity_tensor`).

    Attributes
    ----------
    window
        Derivative samples per window.
    stride
        Samples between window starts (0: ``window``, non-overlapping).
    smooth
        Gaussian smoothing width (steps) before differentiation (0: none).
    normalize
        z-score the derivatives per ``"window"`` or over the whole ``"trace"``.
    """

    window: int = param(30, "derivative samples per window", ge=2)
    stride: int = param(0, "samples between window starts (0: window)", ge=0)
    smooth: float = param(0.0, "Gaussian smoothing width in steps (0: none)", ge=0.0)
    normalize: Literal["window", "trace"] = param("window", "z-score per window or trace")


@dataclass(frozen=True)
class AnalysisParams(Params):
    """The NTF and the community detection.

    Attributes
    ----------
    ranks
        NTF ranks to run (one run per rank and seed).
    ntf_method
        ``"hals"`` or ``"mu"`` (:func:`tensorsim.decomp.nonneg_cp`).
    tol, max_iter
        Stopping rule of the NTF.
    communities
        ``"louvain"`` (networkx) or ``"sbm"`` (graph-tool, optional).
    resolution
        Louvain resolution.
    """

    ranks: tuple[int, ...] = param((3,), "NTF ranks", ge=1)
    ntf_method: Literal["hals", "mu"] = param("hals", "NTF algorithm")
    tol: float = param(1e-8, "NTF tolerance on the error change", ge=0.0)
    max_iter: int = param(500, "NTF iterations at most", ge=1)
    communities: Literal["louvain", "sbm"] = param("louvain", "community detection")
    resolution: float = param(1.0, "Louvain resolution", gt=0.0)


@dataclass(frozen=True)
class SweepParams(Params):
    """The data sets.

    Attributes
    ----------
    seeds
        Number of data sets, seeds ``seed, seed + 1, ...``.
    seed
        First seed (also the seed of the NTF start and the community search).
    """

    seeds: int = param(1, "number of data sets", ge=1)
    seed: int = param(0, "first seed", ge=0)


@dataclass(frozen=True)
class Experiment(Params):
    """The population, the affinities, the analysis and the seeds.

    Attributes
    ----------
    problem
        The synthetic population.
    affinity
        The differential affinities.
    analysis
        NTF and communities.
    sweep
        Seeds.
    """

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

    @property
    def stride(self) -> int:
        """Samples between window starts."""
        return self.affinity.stride or self.affinity.window

    def runs(self) -> list[tuple[int, int]]:
        """The ``(seed, rank)`` pairs, seeds outermost."""
        seeds = range(self.sweep.seed, self.sweep.seed + self.sweep.seeds)
        return [(s, r) for s in seeds for r in self.analysis.ranks]


def _clean() -> Experiment:
    return Experiment()


def _noisy() -> Experiment:
    return Experiment(problem=ConnectomeParams(driver=0.5, noise=0.6))


def _hard() -> Experiment:
    return Experiment(
        problem=ConnectomeParams(driver=0.35, noise=0.8), analysis=AnalysisParams(ranks=(3, 5))
    )


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"clean": _clean, "noisy": _noisy, "hard": _hard}


@dataclass(frozen=True)
class ConnectomeOutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output netCDF4/HDF5 file (its directory is created).
    """

    path: str = param("runs/connectome.nc", "output file")


@dataclass(frozen=True)
class ConnectomeRun(Params):
    """Configuration of ``python -m drivers.connectome``.

    Attributes
    ----------
    preset
        Defaults of ``experiment``: ``"clean"``, ``"noisy"`` or ``"hard"``.
    experiment
        Population, affinities, analysis and seeds.
    output
        The output file.
    """

    preset: Literal["clean", "noisy", "hard"] = param("clean", "defaults of the experiment")
    experiment: Experiment = param(Experiment(), "population, affinities, analysis, seeds")
    output: ConnectomeOutputParams = param(ConnectomeOutputParams(), "output file")


def animal_affinities(experiment: Experiment, seed: int, animal: int) -> dict[str, Any]:
    """Simulate one animal of one data set and return its ``pair x window`` affinities.

    The same numbers as :func:`problems.connectome.make_dataset` (seed ``seed``) followed by
    :func:`problems.connectome.affinity_tensor` of all animals, sliced at ``animal``.
    """
    p, a = experiment.problem, experiment.affinity
    partitions = planted_partitions(p, [seed, 0])
    trace, gain = simulate_animal(p, partitions, [seed, 1, animal])
    x = affinity_tensor(
        trace, a.window, stride=experiment.stride, smooth=a.smooth, normalize=a.normalize
    )
    return {"affinity": x, "gain": gain}


def analyse_run(
    experiment: Experiment, tensor: np.ndarray, seed: int, rank: int
) -> dict[str, Any]:
    """NTF, communities and scores of one (seed, rank) run on its affinity tensor.

    Returns
    -------
    dict
        The :class:`problems.connectome.DynamicCommunities` fields, ``nmi`` (component x
        epoch), ``peak_epoch``, ``epoch_nmi`` and ``epoch_component`` (see
        :func:`problems.connectome.epoch_scores`), ``static_labels`` and ``static_nmi``,
        ``planted``, ``epoch_affinity`` (mean affinity of each pair over the windows of
        each epoch and the animals) and ``wall_time``.
    """
    start = time.perf_counter()
    p, an = experiment.problem, experiment.analysis
    planted = planted_partitions(p, [seed, 0])
    res = dynamic_communities(
        tensor,
        rank,
        method=an.communities,
        resolution=an.resolution,
        ntf_method=an.ntf_method,
        tol=an.tol,
        max_iter=an.max_iter,
        seed=seed,
    )
    epochs = window_epochs(p, experiment.affinity.window, experiment.stride)
    nmi = partition_nmi(res.labels, planted)
    peak_epoch = epochs[res.peak_windows]
    best, component = epoch_scores(nmi, peak_epoch)
    static = static_communities(tensor, method=an.communities, resolution=an.resolution, seed=seed)
    pooled = tensor.mean(axis=2)
    epoch_affinity = np.stack(
        [
            pooled[:, epochs == e].mean(axis=1) if np.any(epochs == e) else np.nan * pooled[:, 0]
            for e in range(p.n_epochs)
        ]
    )
    out = {
        "weights": res.weights,
        "pairs": res.pairs,
        "time": res.time,
        "animals": res.animals,
        "labels": res.labels,
        "courses": res.courses,
        "ntf_error": res.errors[-1],
        "ntf_iterations": len(res.errors),
        "nmi": nmi,
        "peak_window": res.peak_windows,
        "peak_epoch": peak_epoch,
        "epoch_nmi": best,
        "epoch_component": component,
        "static_labels": static,
        "static_nmi": partition_nmi(static, planted)[0],
        "planted": planted,
        "epoch_affinity": epoch_affinity,
        "wall_time": time.perf_counter() - start,
    }
    logger.info(
        "seed %d rank %d: epoch NMI %s (static %s), %d NTF iterations, error %.3f, %.2f s",
        seed,
        rank,
        np.array2string(best, precision=2),
        np.array2string(out["static_nmi"], precision=2),
        out["ntf_iterations"],
        out["ntf_error"],
        out["wall_time"],
    )
    return out


def _pad(values: np.ndarray, shape: tuple[int, ...], fill: Any) -> np.ndarray:
    out = np.full(shape, fill, dtype=np.asarray(values).dtype)
    out[tuple(slice(0, s) for s in np.shape(values))] = values
    return out


def _write(
    path: Path,
    cfg: ConnectomeRun,
    comm: Any,
    results: list[dict[str, Any]],
    gains: dict[int, np.ndarray],
) -> None:
    from tensorsim.io import Writer

    e = cfg.experiment
    p = e.problem
    runs = e.runs()
    r_max = max(e.analysis.ranks)
    c_max = max(1, max(int(r["courses"].shape[1]) for r in results))
    k = n_windows(p.n_steps, e.affinity.window, e.stride)
    centres = np.arange(k) * e.stride + e.affinity.window / 2.0
    rows, cols = pair_indices(p.n_neurons)
    attrs = {"preset": cfg.preset, "epoch_bounds": p.epoch_bounds()}
    config = config_to_toml(cfg)
    with Writer(path, record_dim="run", comm=comm, config=config, attrs=attrs) as out:
        out.set_coordinate("component", np.arange(r_max), long_name="NTF component (by weight)")
        out.set_coordinate("community", np.arange(c_max), long_name="community label")
        out.set_coordinate(
            "window", centres, units="steps", long_name="centre of the window in time steps"
        )
        out.set_coordinate("epoch", np.arange(p.n_epochs), long_name="planted epoch")
        out.set_coordinate("neuron", np.arange(p.n_neurons))
        out.set_coordinate("animal", np.arange(p.n_animals))
        out.set_dimension("pair", int(rows.size))
        out.set_variable("pair_i", ("pair",), rows, long_name="first neuron of the pair")
        out.set_variable("pair_j", ("pair",), cols, long_name="second neuron of the pair")
        out.set_variable(
            "window_epoch",
            ("window",),
            window_epochs(p, e.affinity.window, e.stride),
            long_name="epoch holding the window centre",
        )
        series: list[tuple[str, tuple[str, ...], str, str]] = [
            ("seed", (), "int64", "seed of the data set"),
            ("ntf_rank", (), "int64", "NTF rank"),
            ("ntf_error", (), "float64", "relative error ||X - X_hat|| / ||X|| of the NTF"),
            ("ntf_iterations", (), "int64", "NTF iterations"),
            ("wall_time", (), "float64", "time of the analysis (s)"),
            ("planted", ("epoch", "neuron"), "int64", "planted community per epoch"),
            ("gain", ("animal",), "float64", "driver gain of the animal"),
            ("weight", ("component",), "float64", "component weight (NaN: no component)"),
            ("pair_factor", ("pair", "component"), "float64", "unit-norm pair pattern"),
            ("time_factor", ("window", "component"), "float64", "unit-norm temporal loading"),
            ("animal_factor", ("animal", "component"), "float64", "unit-norm animal loading"),
            ("labels", ("component", "neuron"), "int64", "community (-1: no component)"),
            ("n_communities", ("component",), "int64", "communities of the component"),
            ("nmi", ("component", "epoch"), "float64", "NMI with the planted partition"),
            ("peak_window", ("component",), "int64", "window of the largest time loading"),
            ("peak_epoch", ("component",), "int64", "epoch of that window (-1: none)"),
            ("epoch_nmi", ("epoch",), "float64", "best NMI of components peaking there"),
            ("epoch_component", ("epoch",), "int64", "component reaching it (-1: none)"),
            ("static_labels", ("neuron",), "int64", "communities of the pooled graph"),
            ("static_nmi", ("epoch",), "float64", "NMI of the pooled graph's communities"),
            (
                "courses",
                ("component", "community", "window"),
                "float64",
                "mean within-community affinity per window",
            ),
            ("epoch_affinity", ("epoch", "pair"), "float64", "mean affinity over the epoch"),
        ]
        for name, dims, dtype, long_name in series:
            units = "s" if name == "wall_time" else None
            out.define_series(name, dims, dtype=dtype, units=units, long_name=long_name)
        for i, ((seed, rank), r) in enumerate(zip(runs, results, strict=True)):
            p_pad, t_pad = (int(rows.size), r_max), (k, r_max)
            out.append(
                i,
                seed=seed,
                ntf_rank=rank,
                ntf_error=r["ntf_error"],
                ntf_iterations=r["ntf_iterations"],
                wall_time=r["wall_time"],
                planted=r["planted"],
                gain=gains[seed],
                weight=_pad(r["weights"], (r_max,), np.nan),
                pair_factor=_pad(r["pairs"], p_pad, np.nan),
                time_factor=_pad(r["time"], t_pad, np.nan),
                animal_factor=_pad(r["animals"], (p.n_animals, r_max), np.nan),
                labels=_pad(r["labels"], (r_max, p.n_neurons), -1),
                n_communities=_pad(r["labels"].max(axis=1) + 1, (r_max,), 0),
                nmi=_pad(r["nmi"], (r_max, p.n_epochs), np.nan),
                peak_window=_pad(r["peak_window"], (r_max,), -1),
                peak_epoch=_pad(r["peak_epoch"], (r_max,), -1),
                epoch_nmi=r["epoch_nmi"],
                epoch_component=r["epoch_component"],
                static_labels=r["static_labels"],
                static_nmi=r["static_nmi"],
                courses=_pad(r["courses"], (r_max, c_max, k), np.nan),
                epoch_affinity=r["epoch_affinity"],
            )


def run(
    cfg: ConnectomeRun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Simulate, build the affinities, analyse every (seed, rank) run and write the file."""
    refuse_restart("drivers.connectome", restart, max_steps, "experiment.analysis.max_iter")
    e = cfg.experiment
    p = e.problem
    start = time.perf_counter()
    executor = Executor(comm)
    seeds = list(range(e.sweep.seed, e.sweep.seed + e.sweep.seeds))
    animal_tasks = [(s, a) for s in seeds for a in range(p.n_animals)]
    slabs = executor.map(lambda task: animal_affinities(e, *task), animal_tasks)
    busy = list(executor.last_timings)
    tensors, gains = {}, {}
    for s in seeds:
        mine = [r for (seed, _), r in zip(animal_tasks, slabs, strict=True) if seed == s]
        tensors[s] = np.stack([r["affinity"] for r in mine], axis=-1)
        gains[s] = np.asarray([r["gain"] for r in mine])
    runs = e.runs()
    results = executor.map(
        lambda task: analyse_run(e, tensors[task[0]], *task),
        runs,
        costs=[float(rank) for _, rank in runs],
    )
    busy = [a + b for a, b in zip(busy, executor.last_timings, strict=True)]
    path = Path(cfg.output.path)
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, cfg, comm, results, gains)
    epoch_nmi = np.stack([r["epoch_nmi"] for r in results])
    static_nmi = np.stack([r["static_nmi"] for r in results])
    return {
        "path": str(path),
        "runs": runs,
        "epoch_nmi": epoch_nmi,
        "static_nmi": static_nmi,
        "wall_time": time.perf_counter() - start,
        "busy_time": busy,
    }


def _ordered(matrix: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The matrix with rows and columns sorted by community; community boundaries."""
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels[labels >= 0])
    return matrix[np.ix_(order, order)], list(np.cumsum(sizes)[:-1])


def _show(ax: Any, matrix: np.ndarray, labels: np.ndarray, title: str) -> None:
    m, cuts = _ordered(matrix, labels)
    ax.imshow(m, cmap="magma", interpolation="nearest")
    for c in cuts:
        ax.axhline(c - 0.5, color="cyan", lw=0.6)
        ax.axvline(c - 0.5, color="cyan", lw=0.6)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_graphs(ds: Any, i: int, base: Path, plt: Any) -> Path:
    n_epochs = ds.sizes["epoch"]
    rank = int(ds["ntf_rank"][i])
    cols = max(n_epochs, rank)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 5.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for e in range(n_epochs):
        ax = axes[0, e]
        ax.set_axis_on()
        planted = ds["planted"][i, e].values
        _show(ax, refold(ds["epoch_affinity"][i, e].values), planted, f"epoch {e}: mean affinity")
    for r in range(rank):
        ax = axes[1, r]
        ax.set_axis_on()
        w = float(ds["weight"][i, r]) * refold(ds["pair_factor"][i, :, r].values)
        e = int(ds["peak_epoch"][i, r])
        title = f"component {r} (peak epoch {e})\nNMI {float(ds['nmi'][i, r, e]):.2f}"
        _show(ax, w, ds["labels"][i, r].values, title)
    fig.suptitle(
        f"run {i} (seed {int(ds['seed'][i])}, rank {rank}): top ordered by planted, "
        "bottom by found communities",
        fontsize=9,
    )
    fig.tight_layout()
    out = base.with_name(f"{base.name}_run{i}_graphs.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_loadings(ds: Any, i: int, base: Path, plt: Any) -> Path:
    rank = int(ds["ntf_rank"][i])
    steps = ds["window"].values
    bounds = np.asarray(ds.attrs["epoch_bounds"])
    fig, axes = plt.subplots(1, rank + 1, figsize=(3.4 * (rank + 1), 3.2), squeeze=False)
    axes = axes[0]
    for r in range(rank):
        axes[0].plot(steps, ds["time_factor"][i, :, r].values, label=f"component {r}")
        for c in range(int(ds["n_communities"][i, r])):
            course = ds["courses"][i, r, c].values
            if np.any(np.isfinite(course)):
                axes[r + 1].plot(steps, course, lw=1, label=f"community {c}")
        axes[r + 1].set(title=f"component {r}: communities", xlabel="time step")
        axes[r + 1].set_ylabel("mean within-community affinity", fontsize=8)
    axes[0].set(title="temporal loadings", xlabel="time step", ylabel="loading")
    for ax in axes:
        for b in bounds[1:-1]:
            ax.axvline(b, color="grey", ls=":", lw=1)
        ax.legend(fontsize=6)
    fig.tight_layout()
    out = base.with_name(f"{base.name}_run{i}_loadings.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_nmi(ds: Any, base: Path, plt: Any) -> Path:
    n_runs, n_epochs = ds.sizes["run"], ds.sizes["epoch"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * n_runs * n_epochs / 2), 3.5))
    x = np.arange(n_runs)
    width = 0.8 / (2 * n_epochs)
    for e in range(n_epochs):
        ax.bar(x + (2 * e) * width, ds["epoch_nmi"][:, e], width, label=f"NTF, epoch {e}")
        ax.bar(
            x + (2 * e + 1) * width,
            ds["static_nmi"][:, e],
            width,
            hatch="//",
            alpha=0.5,
            label=f"static, epoch {e}",
        )
    ax.set_xticks(
        x + 0.4 - width / 2,
        [f"seed {int(s)}\nrank {int(r)}" for s, r in zip(ds["seed"], ds["ntf_rank"], strict=True)],
        fontsize=7,
    )
    ax.axhline(0.9, color="k", ls=":", lw=1)
    ax.set(ylabel="NMI with the planted partition", ylim=(0, 1.05))
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    out = base.with_name(base.name + "_nmi.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot(path: str) -> list[Path]:
    """Write the affinity matrices and loadings of the first run and the NMI of all runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    return [
        _plot_graphs(ds, 0, base, plt),
        _plot_loadings(ds, 0, base, plt),
        _plot_nmi(ds, base, plt),
    ]


def _describe(cfg: ConnectomeRun, n_ranks: int) -> str:
    e = cfg.experiment
    p = e.problem
    return (
        f"{cfg.preset}: {p.n_neurons} neurons, {p.n_animals} animals, {p.n_steps} steps in "
        f"epochs of {list(p.blocks)} communities (driver {p.driver}, noise {p.noise}); "
        f"windows of {e.affinity.window}; NTF ranks {list(e.analysis.ranks)}, "
        f"{e.analysis.communities}; {e.sweep.seeds} seed(s) on {n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    runs = summary["runs"]
    lines = [f"wrote {summary['path']} in {summary['wall_time']:.1f} s"]
    for rank in sorted({r for _, r in runs}):
        sel = [i for i, (_, r) in enumerate(runs) if r == rank]
        nmi, static = summary["epoch_nmi"][sel], summary["static_nmi"][sel]
        lines.append(
            f"  rank {rank}: epoch NMI min over {len(sel)} seed(s) "
            f"{np.array2string(nmi.min(axis=0), precision=3)}, mean "
            f"{np.array2string(nmi.mean(axis=0), precision=3)}; static graph mean "
            f"{np.array2string(static.mean(axis=0), precision=3)}"
        )
    busy = ", ".join(f"{t:.1f}" for t in summary["busy_time"])
    lines.append(f"  busy time per rank {busy} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=ConnectomeRun,
        prog="python -m drivers.connectome",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            ConnectomeRun, args.config, args.set, PRESETS, table="experiment"
        ),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=_summarize,
        logger=logger,
    )


if __name__ == "__main__":
    main()
