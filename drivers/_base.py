"""The experiment base of every driver: a declaration that the one generic ``main`` runs.

A driver module says what its experiment is (see ``drivers/tubal.py``)::

    class TubalSweep(Sweep):
        config = TubalRun                      # the top-level configuration (frozen Params)
        presets = PRESETS                      # preset name -> defaults of ``preset_table``

        def cases(self, run): ...              # the independent cases
        def run_case(self, run, case): ...     # one case, on whichever rank gets it
        def layout(self, run): ...             # what the file holds (Layout)
        plots = staticmethod(analysis.tubal.plots)

    DRIVER = Driver("tubal", __doc__, TubalSweep())
    main, cli = DRIVER.main, DRIVER.cli  # main(argv) raises; cli() is the shell's

:class:`Experiment` loads the configuration (with its presets) and declares the log line
before the run, the run, the summary line and the plots of an output file. :class:`Sweep`
spreads independent cases over the MPI ranks (:class:`tensorsim.parallel.Executor`) and
writes one record per case. Restartable experiments (a state in time, a model in training)
derive from :class:`Experiment` and run the loops of :mod:`solvers.evolution` and
:mod:`solvers.training` (``drivers/_evolution.py``). :class:`drivers._cli.Driver` is the
command line. A file is declared by a :class:`Layout` of :class:`Var`; :func:`new_writer`
opens a :class:`tensorsim.io.Writer` with it and :func:`write_records` writes a sweep.
"""

from __future__ import annotations

import functools
import logging
import operator
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from drivers._journal import CaseJournal
from drivers._layout import Layout, Var, check_output, new_writer, write_records
from tensorsim.config import (
    ConfigError,
    Params,
    config_to_toml,
    load_config,
    load_with_preset,
    param,
)
from tensorsim.parallel import Executor

__all__ = [
    "Experiment",
    "Layout",
    "OutputParams",
    "Sweep",
    "SweepRun",
    "Var",
    "check_output",
    "new_writer",
    "write_records",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output netCDF4/HDF5 file (its directory is created).
    """

    path: str = param("runs/run.nc", "output file")


# ----------------------------------------------------------------------------- experiments


class Experiment:
    """One experiment of a driver (a driver with subcommands has one per command).

    Subclasses set the class attributes and implement :meth:`run`; the other methods have
    defaults.

    Attributes
    ----------
    config
        The top-level configuration class.
    presets
        Preset name -> function returning the defaults of the ``preset_table`` table; the
        configuration then has a top-level ``preset`` field.
    preset_table
        The table a preset sets.
    restartable
        Whether the experiment takes ``--restart FILE`` and ``--max-steps N``.
    stops_gracefully
        Whether its loop polls :func:`drivers._signals.stop_requested` after every step, so
        that a shell's Ctrl-C or ``SIGTERM`` stops it after a step with a checkpoint.
    help
        One line, shown by ``--help`` of a driver with subcommands.
    """

    config: ClassVar[type[Params]]
    presets: ClassVar[Mapping[str, Callable[[], Params]]] = {}
    preset_table: ClassVar[str] = "experiment"
    restartable: ClassVar[bool] = False
    stops_gracefully: ClassVar[bool] = False
    help: ClassVar[str] = ""

    def load(self, path: str | Path | None = None, overrides: Sequence[str] = ()) -> Params:
        """The configuration from the defaults, the preset, a TOML file and ``KEY=VALUE``.

        Raises
        ------
        ConfigError
            Also for an option of :meth:`unused` that differs from its default (the preset's
            value): an option without effect is refused, never ignored.
        """
        if self.presets:
            cfg = load_with_preset(
                self.config, path, list(overrides), self.presets, table=self.preset_table
            )
            default = self.presets[cfg.preset]()
        else:
            cfg = load_config(self.config, path, list(overrides))
            default = getattr(self.config(), self.preset_table, None)
        table = getattr(cfg, self.preset_table, None)
        for key, why in self.unused(cfg).items():
            given, preset = operator.attrgetter(key)(table), operator.attrgetter(key)(default)
            if given != preset:
                raise ConfigError(f"config key '{self.preset_table}.{key}': {why}")
        return cfg

    def unused(self, cfg: Any) -> Mapping[str, str]:
        """Options of the ``preset_table`` table (key -> why) that this run does not read."""
        return {}

    def describe(self, cfg: Any, n_ranks: int) -> str:
        """The log line before the run."""
        preset = f"{cfg.preset}, " if hasattr(cfg, "preset") else ""
        return f"{preset}on {n_ranks} rank(s)"

    def run(
        self, cfg: Any, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
    ) -> dict[str, Any]:
        """Run (or, if :attr:`restartable`, continue) the experiment; return a summary."""
        raise NotImplementedError

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """The log line after the run."""
        return f"{summary.get('wall_time', 0.0):.1f} s; wrote {summary['path']}"

    def plots(self, ds: Any, base: Path) -> list[Path]:
        """Write the PNG plots of the output file ``ds`` (opened) as ``<base>_*.png``."""
        return []

    def stored_config(self, path: Path) -> str:
        """The configuration text a ``--restart path`` continues with (rank 0).

        Default: the attribute ``config`` of the output file.
        """
        from tensorsim.io import open_run

        ds, _ = open_run(path)
        return str(ds.attrs["config"])


@dataclass
class SweepRun:
    """What the hooks of a :class:`Sweep` see of the run in progress.

    Attributes
    ----------
    cfg
        The configuration.
    comm
        The communicator.
    data
        What :meth:`Sweep.prepare` returned (shared input of every case, e.g. a tensor or a
        data set; the same on every rank).
    cases
        The cases, once :meth:`Sweep.cases` returned them.
    results
        The results of :meth:`Sweep.run_case`, in case order (on every rank), once computed.
    path
        The output file.
    """

    cfg: Any
    comm: Any
    data: Any = None
    cases: list[Any] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    path: Path | None = None


class Sweep(Experiment):
    """Independent cases over the MPI ranks, one record per case, written at the end.

    :meth:`run` builds the shared input (:meth:`prepare`), computes ``run_case(run, case)``
    for every case of :meth:`cases`, each whole on one rank (LPT by :meth:`cost`; the
    results are the same for any number of ranks), writes :meth:`records` with
    :meth:`layout`, and adds :meth:`finish` to the summary (``path``, ``wall_time``,
    ``busy_time`` per rank). Every hook gets the :class:`SweepRun` in progress.

    The cases run in rounds of one per rank; after every round rank 0 stores the finished
    results in the case journal (:mod:`drivers._journal`), so a crash loses at most the
    cases in flight, and ``--restart <output>`` computes only the missing ones.
    ``--max-steps N`` stops after ``N`` more cases (the journal keeps them).

    Attributes
    ----------
    length_key
        The configuration key that sets the length of a case, named when ``--restart`` or
        ``--max-steps`` is refused.
    """

    length_key: ClassVar[str] = "the configuration"
    restartable = True

    def prepare(self, cfg: Any, executor: Executor) -> Any:
        """The input shared by every case (default None), the same on every rank.

        ``executor`` spreads independent parts of it over the ranks (collective).
        """
        return None

    def cases(self, run: SweepRun) -> Sequence[Any]:
        """The independent cases (picklable labels)."""
        raise NotImplementedError

    def cost(self, run: SweepRun, case: Any) -> float:
        """Estimated cost of a case, for the load balance."""
        return 1.0

    def run_case(self, run: SweepRun, case: Any) -> dict[str, Any]:
        """Compute one case (on whichever rank it was given to)."""
        raise NotImplementedError

    def layout(self, run: SweepRun) -> Layout:
        """What the file holds (the series are taken from :meth:`records` by name)."""
        raise NotImplementedError

    def records(self, run: SweepRun) -> Iterable[Mapping[str, Any]]:
        """The records of the file, in order (default: one per case, its result)."""
        return run.results

    def output_path(self, cfg: Any) -> Path:
        """The output file (default ``cfg.output.path``)."""
        return Path(cfg.output.path)

    def state(self, run: SweepRun) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Arrays and attributes stored as the file's ``/state`` (default none)."""
        return None

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """Entries added to the summary once the file is written (default none)."""
        return {}

    def report(self, summary: Mapping[str, Any]) -> str:
        """The results part of the summary line (default none)."""
        return ""

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """:meth:`report`, the wall time and busy time per rank, the file."""
        busy = ", ".join(f"{t:.1f}" for t in summary["busy_time"])
        times = f"{summary['wall_time']:.1f} s (busy time per rank {busy} s)"
        if not summary["finished"]:
            return (
                f"{times}; stopped before the last case: continue with --restart {summary['path']}"
            )
        return "; ".join(p for p in (self.report(summary), times, f"wrote {summary['path']}") if p)

    def run(
        self, cfg: Any, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
    ) -> dict[str, Any]:
        """Run the cases over the ranks (the missing ones on a restart), write the file.

        Returns the summary; a run stopped by ``max_steps`` before its last case has
        ``finished`` false and no file yet (its cases are in the journal).
        """
        start = time.perf_counter()
        path = check_output(self.output_path(cfg) if restart is None else restart, comm)
        executor = Executor(comm)
        run = SweepRun(cfg, comm, self.prepare(cfg, executor), path=path)
        run.cases = list(self.cases(run))
        journal = CaseJournal(path, config_to_toml(cfg), [repr(c) for c in run.cases])
        if restart is not None and comm.rank == 0:
            journal.load()
        done: dict[int, Any] = comm.bcast(journal.results, root=0)
        todo = [i for i in range(len(run.cases)) if i not in done]
        if done:
            logger.info(
                "%d of %d cases done before; %d to go", len(done), len(run.cases), len(todo)
            )
        todo = todo[:max_steps] if max_steps is not None else todo
        busy = [0.0] * comm.size
        costs = {i: self.cost(run, run.cases[i]) for i in todo}
        for first in range(0, len(todo), comm.size):
            round_ = todo[first : first + comm.size]
            results = executor.map(
                functools.partial(self.run_case, run),
                [run.cases[i] for i in round_],
                costs=[costs[i] for i in round_],
            )
            busy = [b + t for b, t in zip(busy, executor.last_timings, strict=True)]
            done.update(zip(round_, results, strict=True))
            if comm.rank == 0:
                journal.record(dict(zip(round_, results, strict=True)))
        summary: dict[str, Any] = {
            "path": str(run.path),
            "wall_time": time.perf_counter() - start,
            "busy_time": busy,
            "finished": len(done) == len(run.cases),
        }
        if not summary["finished"]:
            logger.info(
                "stopped after %d of %d cases: --restart %s", len(done), len(run.cases), path
            )
            return summary
        run.results = [done[i] for i in range(len(run.cases))]
        layout, state = self.layout(run), self.state(run)
        write_records(run.path, cfg, comm, layout, self.records(run), state=state)
        if comm.rank == 0:
            journal.remove()
        summary.update(self.finish(run))
        return summary

    def stored_config(self, path: Path) -> str:
        """The configuration in the case journal of the unfinished sweep ``path``."""
        return CaseJournal.stored_config(path)
