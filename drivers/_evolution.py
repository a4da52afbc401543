"""The driver side of the time evolutions: one restartable experiment over the time loop.

:class:`Evolution` is the base of :mod:`drivers.spin_chain`, :mod:`drivers.radiative_transfer`
and :mod:`drivers.uq` (a state on a tree network stepped by a BUG integrator). Its
:meth:`~Evolution.run` composes the run (:meth:`~Evolution.build`: tree, right-hand side,
initial state, stepper, monitor, time grid), opens a new output file of the driver's
:meth:`~Evolution.layout` or resumes the file of a stopped run (``--restart``; rank 0
reads the checkpoint and broadcasts the state), runs :class:`solvers.evolution.TimeEvolution`
with its hooks and closes the file (``finished = 1`` only when the last step was done):

- rank 0 computes the references of the records to come (:meth:`~Evolution.prepare`) and
  writes one record every ``output.every`` steps: the driver's :meth:`~Evolution.observe`
  plus the ranks, the step information of :attr:`~Evolution.info_series` and the wall time;
- every ``output.checkpoint_every`` steps (and where a run stops) the tensors are
  checkpointed as ``nodes/<i>`` with the attributes ``step``, ``time`` and ``mass0`` (the
  initial value of the monitored quantity);
- :meth:`~Evolution.finish` runs on every rank after the last step (final-time references).

:class:`EvolutionOutput` is the ``output`` table of the three drivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from drivers._base import Experiment, Layout, Var, check_output, new_writer
from drivers._signals import stop_requested
from solvers.bug import BUGParams, LinearTreeRHS, make_stepper
from solvers.evolution import TimeEvolution
from tensorsim._array_api import to_numpy
from tensorsim.config import Params, param
from tensorsim.parallel import Executor
from tensorsim.ttn import TTN, Tree, inner
from tensorsim.ttn.conservation import functional_network
from tensorsim.ttn.operator import to_ttno

if TYPE_CHECKING:
    from solvers.bug import StepInfo, Stepper
    from tensorsim.io import Writer

__all__ = ["STEP_SERIES", "Evolution", "EvolutionOutput", "Setup", "mass_setup"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvolutionOutput(Params):
    """Output file, cadences and reference."""

    path: str = param("runs/run.nc", "output file")
    every: int = param(1, "steps between records (and the last step)", ge=1)
    checkpoint_every: int = param(25, "steps between checkpoints (and where a run stops)", ge=1)
    log_every: int = param(10, "steps between progress lines", ge=1)
    reference: bool = param(True, "compute the reference solution (see the driver)")


#: The series of every record: ranks, the step information and the wall time of the step.
STEP_SERIES = (
    Var("max_rank", dtype="int64", long_name="largest edge rank"),
    Var("ranks", ("edge",), dtype="int64", long_name="rank of every edge"),
    Var("trunc_error", long_name="2-norm of the discarded singular values"),
    Var("eta", long_name="h * norm of the dropped blocks (parallel BUG)"),
    Var("normal", long_name="h * norm of F(Y0) outside the step's Galerkin space"),
    Var("rejected", dtype="int64", long_name="rejected attempts in the step"),
    Var("wall_time", units="s", long_name="wall time of the step"),
)


@dataclass
class Setup:
    """One run as :meth:`Evolution.build` composed it.

    Attributes
    ----------
    tree, rhs
        The tree of the state and the right-hand side.
    state
        The initial state of a new run.
    stepper
        ``step(y, t, h) -> (y, info)`` (:func:`solvers.bug.make_stepper`).
    monitor, monitored
        The blow-up monitor (``state -> float``) and the name of what it computes.
    h, n_steps
        The time grid of the whole run.
    extra
        The driver's own data for its hooks.
    reference
        What :meth:`Evolution.prepare` returned (rank 0; None elsewhere).
    """

    tree: Tree
    rhs: Any
    state: TTN
    stepper: Stepper
    monitor: Callable[[TTN], float]
    h: float
    n_steps: int
    monitored: str = "mass"
    extra: dict[str, Any] = field(default_factory=dict)
    reference: Any = None


def mass_setup(
    solver: BUGParams,
    tree: Tree,
    operator: Any,
    vectors: Sequence[Any],
    weights: Sequence[Any],
    *,
    h: float,
    n_steps: int,
    executor: Executor,
    extra: dict[str, Any],
) -> Setup:
    """A linear problem ``du/dt = A u`` monitored by its mass ``<W, u>``.

    ``operator`` is a sum of products on ``tree``, ``vectors`` the sites of the initial
    product state and ``weights`` those of the mass functional ``W`` (kept in the bases and
    restored by every truncation when ``solver.conserve``).
    """
    rhs = LinearTreeRHS(to_ttno(operator, tree), factor=1.0)
    state = solver.initial_state(tree, vectors, conserve=weights)
    w = functional_network(state, weights)
    return Setup(
        tree=tree,
        rhs=rhs,
        state=state,
        stepper=make_stepper(solver, rhs, executor=executor, conserve=weights),
        monitor=lambda y: float(inner(w, y)),
        h=h,
        n_steps=n_steps,
        extra=extra,
    )


class Evolution(Experiment):
    """A restartable time evolution: the configuration has ``solver``, ``time``, ``output``.

    ``time`` is a :class:`solvers.evolution.EvolutionParams` (its ``max_growth`` bounds the
    monitor) and ``output`` an :class:`EvolutionOutput`.
    """

    restartable = True
    stops_gracefully = True
    #: Fields of the integrator's :class:`~solvers.bug.StepInfo` recorded after every step.
    info_series: ClassVar[tuple[str, ...]] = ("trunc_error", "eta", "normal", "rejected")

    def build(self, cfg: Any, executor: Executor) -> Setup:
        """Compose problem and solver; refuse a bad configuration before any file exists."""
        raise NotImplementedError

    def layout(self, cfg: Any, setup: Setup) -> Layout:
        """What a new output file holds (record dimension ``time``)."""
        raise NotImplementedError

    def prepare(self, cfg: Any, setup: Setup, first: int) -> Any:
        """On rank 0 before the loop: references of the records from step ``first`` on."""
        return None

    def observe(
        self, cfg: Any, setup: Setup, y: TTN, step: int, info: StepInfo | None
    ) -> dict[str, Any]:
        """The driver's values of the record of step ``step`` (rank 0; no info at step 0)."""
        raise NotImplementedError

    def finish(self, cfg: Any, setup: Setup, y: TTN, out: Writer) -> None:
        """On every rank when the last step is done, before the file is closed."""

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """:meth:`report` of the steps and the file, or that there was nothing to do."""
        if summary["steps"] == 0 and summary["finished"]:
            return f"{summary['path']} holds a finished run: nothing to do"
        return f"{self.report(summary)}; wrote {summary['path']}"

    def report(self, summary: Mapping[str, Any]) -> str:
        """Steps, wall time, largest rank, change of the monitored quantity."""
        return (
            f"{summary['steps']} steps in {summary['wall_time']:.1f} s, max rank "
            f"{summary['max_rank']}, mass change {summary['mass_change']:+.1e}"
        )

    def run(
        self, cfg: Any, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
    ) -> dict[str, Any]:
        """Run (or continue) the evolution; return the summary (on every rank).

        The summary has ``path``, ``steps`` (done here), ``wall_time`` (of the steps),
        ``max_rank``, ``finished`` and ``mass_change`` (see
        :meth:`solvers.evolution.TimeEvolution.run`).
        """
        if restart is None:
            check_output(cfg.output.path, comm)
        setup = self.build(cfg, Executor(comm))
        path = Path(cfg.output.path if restart is None else restart)
        if restart is None:
            out = new_writer(path, cfg, comm, self.layout(cfg, setup))
            state, step, monitor0 = setup.state, 0, None
        else:
            out, state, step, monitor0 = _resume(path, comm, setup.tree)

        def record(evolution: TimeEvolution, info: StepInfo | None, wall: float) -> None:
            y = evolution.state
            ranks = y.ranks()
            ranks = np.asarray([ranks[e] for e in setup.tree.edges], dtype=np.int64)
            values = self.observe(cfg, setup, y, evolution.step, info)
            values.update(max_rank=int(ranks.max()), ranks=ranks, wall_time=wall)
            if info is not None:
                values.update({name: getattr(info, name) for name in self.info_series})
            else:  # step 0: no step taken, so none rejected (the counter stays an integer)
                values["rejected"] = 0
            out.append(evolution.t, **values)

        def checkpoint(evolution: TimeEvolution) -> None:
            nodes = {node: to_numpy(t) for node, t in enumerate(evolution.state.tensors)}
            attrs = {"step": evolution.step, "time": evolution.t, "mass0": evolution.monitor0}
            out.checkpoint({"nodes": nodes}, attrs=attrs)

        try:
            if comm.rank == 0:
                setup.reference = self.prepare(cfg, setup, 0 if restart is None else step + 1)
            evolution = TimeEvolution(
                setup.stepper, state, h=setup.h, n_steps=setup.n_steps,
                monitor=setup.monitor, monitored=setup.monitored,
                max_growth=cfg.time.max_growth, step=step, monitor0=monitor0,
                record=record if comm.rank == 0 else None, checkpoint=checkpoint,
                on_finish=lambda evolution: self.finish(cfg, setup, evolution.state, out),
                should_stop=lambda: stop_requested(comm),
                record_every=cfg.output.every, checkpoint_every=cfg.output.checkpoint_every,
                log_every=cfg.output.log_every,
            )  # fmt: skip
            summary = evolution.run(max_steps)
        except KeyboardInterrupt as exc:
            out.close(finished=False)
            exc.add_note(f"checkpointed; continue with --restart {path}")
            raise
        except BaseException:
            out.close(finished=False)
            raise
        out.close(finished=summary["finished"])
        return {"path": str(path), **summary}


def _resume(path: Path, comm: Any, tree: Tree) -> tuple[Writer, TTN, int, float]:
    """The writer, state, step and initial monitor value of the checkpoint in ``path``."""
    from tensorsim.io import Writer

    out, checkpoint = Writer.resume(path, comm=comm)
    payload = None
    if comm.rank == 0:
        if checkpoint is None:
            out.close(finished=False)
            raise ValueError(f"--restart: {path} holds no checkpoint")
        payload = (checkpoint.arrays, dict(checkpoint.attrs))
    arrays, attrs = comm.bcast(payload, root=0)
    tensors = tuple(np.asarray(arrays[f"nodes/{node}"]) for node in range(tree.n_nodes))
    step = int(attrs["step"])
    logger.info("restarting %s at step %d (t = %g)", path, step, float(attrs["time"]))
    return out, TTN(tree, tensors), step, float(attrs["mass0"])
