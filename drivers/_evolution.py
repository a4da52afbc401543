"""Shared machinery of the tree-tensor-network drivers: configuration and one time loop.

Used by :mod:`drivers.radiative_transfer`, :mod:`drivers.uq` and :mod:`drivers.spin_chain`
(linear problems ``du/dt = L u`` stepped by a BUG integrator):

- :class:`SolverParams` and :class:`OutputParams`, the ``solver`` and ``output`` tables of
  both drivers (a driver subclasses them to change defaults);
- :func:`start`: a new output file and the initial state, or the file of a stopped run and
  the state of its checkpoint (``--restart``);
- :func:`evolve`: the time loop. It steps through the integrator (whose executor spreads the
  local problems over the MPI ranks), stops with :class:`FloatingPointError` on NaN/Inf or
  when the monitored mass grows by more than ``max_mass_growth`` relative to its initial
  value (a blow-up), records every ``every`` steps, checkpoints the tensors every
  ``checkpoint_every`` steps, logs every ``log_every`` steps and closes the file with
  ``finished = 1`` only when the last step was done;
- :func:`plot_ranks`: the ranks-over-time figure of every driver's ``plot``.

Every rank runs the loop on the same state; only rank 0 computes and writes the records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError, Params, param
from tensorsim.ttn import TTN, Tree

if TYPE_CHECKING:
    from solvers.bug import StepInfo
    from tensorsim.io import Writer

__all__ = [
    "OutputParams",
    "SolverParams",
    "Start",
    "evolve",
    "plot_ranks",
    "record_steps",
    "start",
]

logger = logging.getLogger("drivers.evolution")

#: ``step(y, t) -> (y, info)``: one integrator step of the driver's fixed size.
Stepper = Callable[[TTN, float], "tuple[TTN, StepInfo]"]


@dataclass(frozen=True)
class SolverParams(Params):
    """Time integration (the step size is the problem's: ``h = cfl * dx``).

    Attributes
    ----------
    integrator
        ``"augmented_bug"`` (rank-adaptive BUG) or ``"parallel_bug"`` (arXiv 2412.00858).
        The parallel BUG drops the blocks with two new directions, a first-order error that
        ``rtol`` must keep small: it needs about 10x smaller ``rtol`` than the augmented
        BUG for the same accuracy.
    rtol
        Truncation tolerance relative to the norm of the state.
    max_rank, min_rank
        Rank bounds of every edge.
    initial_rank
        Rank of the zero-padded initial product state.
    conserve
        Mass-conservative truncation: the mass functional's directions stay in the bases
        and every truncation restores the mass, so the mass changes only as the discrete
        operator changes it (exactly constant with periodic boundaries and no absorption).
    max_mass_growth
        Stop (blow-up) when the mass exceeds its initial value by this much, relative. An
        instability grows exponentially and passes any such bound within a few steps; the
        default 1e-2 leaves room for honest truncation-level changes: with outflow
        (``boundary = "zero"``) the small spurious values of the low-rank solution at the
        boundary make the mass wander (measured maximum growth: 1.3e-4 for the default line
        source, 1.6e-4 for the plane source with the parallel BUG at rtol 1e-4). With
        periodic boundaries, no absorption and ``conserve`` the mass is constant to
        round-off, and a bound such as 1e-6 is safe.
    """

    integrator: Literal["augmented_bug", "parallel_bug"] = param(
        "augmented_bug", "BUG integrator (parallel_bug needs ~10x smaller rtol)"
    )
    rtol: float = param(1e-3, "truncation tolerance relative to the norm", gt=0.0)
    max_rank: int = param(50, "largest rank of an edge", ge=1)
    min_rank: int = param(2, "smallest rank of an edge", ge=1)
    initial_rank: int = param(10, "rank of the zero-padded initial state", ge=1)
    conserve: bool = param(True, "mass-conservative truncation")
    max_mass_growth: float = param(
        1e-2,
        "stop (blow-up) when the mass grows beyond this, relative to its initial value",
        gt=0.0,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_rank < self.min_rank:
            raise ConfigError(
                f"config key 'solver.max_rank': {self.max_rank} is smaller than "
                f"solver.min_rank = {self.min_rank}"
            )
        if self.initial_rank > self.max_rank:
            raise ConfigError(
                f"config key 'solver.initial_rank': {self.initial_rank} is larger than "
                f"solver.max_rank = {self.max_rank}"
            )


@dataclass(frozen=True)
class OutputParams(Params):
    """Output file, cadences and reference.

    Attributes
    ----------
    path
        Output netCDF4/HDF5 file (its directory is created).
    every
        Write one record every this many steps (and at the last step).
    checkpoint_every
        Checkpoint the state every this many steps (and where the run stops).
    log_every
        One progress line every this many steps.
    reference
        Compute the full-rank reference (see the driver).
    """

    path: str = param("runs/run.nc", "output file")
    every: int = param(1, "steps between records", ge=1)
    checkpoint_every: int = param(25, "steps between checkpoints", ge=1)
    log_every: int = param(10, "steps between progress lines", ge=1)
    reference: bool = param(True, "compute the full-rank reference")


# ----------------------------------------------------------------------------- the loop


def record_steps(n_steps: int, every: int) -> list[int]:
    """Steps that get a record: ``0, every, 2 every, ...`` and the last one."""
    return [k for k in range(n_steps + 1) if k % every == 0 or k == n_steps]


@dataclass
class Start:
    """Where a run begins.

    Attributes
    ----------
    out
        The output writer (new, or resumed at the checkpoint).
    y
        The state at ``step``.
    step
        Number of steps done (0 for a new run).
    mass0
        Initial mass of a restarted run (from its checkpoint); None for a new run.
    path
        The output file.
    """

    out: Writer
    y: TTN
    step: int
    mass0: float | None
    path: Path


def start(
    path: str | Path,
    comm: Any,
    *,
    tree: Tree,
    restart: bool,
    initial: Callable[[], TTN],
    new_writer: Callable[[Path], Writer],
) -> Start:
    """Open a new run (``initial()``, ``new_writer(path)``) or resume the run in ``path``.

    Collective: every rank gets the state (rank 0 reads the checkpoint and broadcasts it).

    Raises
    ------
    ValueError
        If the file of a restart holds no checkpoint.
    """
    path = Path(path)
    if not restart:
        if comm.rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        return Start(new_writer(path), initial(), 0, None, path)
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
    return Start(out, TTN(tree, tensors), step, float(attrs["mass0"]), path)


def _state_dict(y: TTN) -> dict[str, Any]:
    return {"nodes": {node: to_numpy(t) for node, t in enumerate(y.tensors)}}


def evolve(
    begin: Start,
    comm: Any,
    *,
    step: Stepper,
    h: float,
    n_steps: int,
    mass: Callable[[TTN], float],
    record: Callable[[int, TTN, StepInfo | None, float], None],
    every: int = 1,
    checkpoint_every: int = 25,
    log_every: int = 10,
    max_steps: int | None = None,
    max_mass_growth: float = 1e-6,
    on_finish: Callable[[TTN], None] | None = None,
    monitored: str = "mass",
) -> dict[str, Any]:
    """Step from ``begin`` to ``n_steps`` (or ``max_steps`` more); close the file.

    Parameters
    ----------
    begin
        From :func:`start`.
    comm
        The communicator (``rank`` decides who records).
    step
        ``step(y, t) -> (y, info)``, one step of size ``h`` from time ``t``.
    h, n_steps
        Step size and number of steps of the whole run.
    mass
        The monitored mass of a state (cheap; called on every rank after every step).
    record
        ``record(k, y, info, wall)`` appends the record of step ``k`` (``info`` is None at
        step 0); called on rank 0 only, at steps ``0, every, 2 every, ...`` and the last.
    every, checkpoint_every, log_every
        Cadences in steps.
    max_steps
        Stop after this many steps (checkpointed; the file stays ``finished = 0``).
    max_mass_growth
        Relative growth of the mass above its initial value that stops the run.
    on_finish
        Called with the final state on every rank when the last step is done, before the
        file is closed with ``finished = 1`` (e.g. a final-time reference).
    monitored
        Name of the quantity ``mass`` computes, for the progress lines and errors (e.g.
        ``"norm^2"`` for a unitary flow).

    Returns
    -------
    dict
        ``path``, ``steps`` (done here), ``wall_time`` (of the steps), ``max_rank``,
        ``finished``, ``mass_change`` (final relative change of the mass).

    Raises
    ------
    FloatingPointError
        On NaN/Inf in the state or a mass growth above ``max_mass_growth``; the message
        names the last checkpoint, which the file keeps (``finished = 0``).
    """
    out, y, first = begin.out, begin.y, begin.step
    if begin.mass0 is None:
        mass0 = mass(y)
        if comm.rank == 0:
            record(0, y, None, 0.0)
        out.checkpoint(_state_dict(y), attrs={"step": 0, "time": 0.0, "mass0": mass0})
    else:
        mass0 = begin.mass0
    scale = abs(mass0) if mass0 != 0 else 1.0
    stop = n_steps if max_steps is None else min(n_steps, first + max_steps)
    last_checkpoint = first
    wall_total, max_rank, change = 0.0, 0, (mass(y) - mass0) / scale
    try:
        for k in range(first, stop):
            t0 = time.perf_counter()
            y, info = step(y, k * h)
            wall = time.perf_counter() - t0
            wall_total += wall
            done = k + 1
            if not all(np.all(np.isfinite(to_numpy(t))) for t in y.tensors):
                raise FloatingPointError(
                    f"step {done} (t = {done * h:g}) produced NaN/Inf; the file keeps the "
                    f"checkpoint of step {last_checkpoint}"
                )
            change = (mass(y) - mass0) / scale
            if not change <= max_mass_growth:
                raise FloatingPointError(
                    f"step {done} (t = {done * h:g}): the {monitored} grew by {change:.3e} "
                    f"relative to its initial value, more than the allowed "
                    f"{max_mass_growth:g} (blow-up); the file keeps the checkpoint of step "
                    f"{last_checkpoint}"
                )
            ranks = max(info.ranks.values())
            max_rank = max(max_rank, ranks)
            if comm.rank == 0 and (done % every == 0 or done == n_steps):
                record(done, y, info, wall)
            if done % log_every == 0 or done == stop:
                logger.info(
                    "step %d/%d  t=%.4g  max rank %d  trunc %.1e  eta %.1e  rejected %d  "
                    "%s %+.1e  %.2f s",
                    done,
                    n_steps,
                    done * h,
                    ranks,
                    info.trunc_error,
                    info.eta,
                    info.rejected,
                    monitored,
                    change,
                    wall,
                )
            if done % checkpoint_every == 0 or done == stop:
                out.checkpoint(
                    _state_dict(y), attrs={"step": done, "time": done * h, "mass0": mass0}
                )
                last_checkpoint = done
        finished = stop == n_steps
        if finished and on_finish is not None:
            on_finish(y)
    except BaseException:
        out.close(finished=False)
        raise
    out.close(finished=finished)
    return {
        "path": str(begin.path),
        "steps": stop - first,
        "wall_time": wall_total,
        "max_rank": max_rank,
        "finished": finished,
        "mass_change": float(change),
    }


def plot_ranks(ds: Any, base: Path, plt: Any) -> Path:
    """Plot every edge rank and the largest one over time to ``<base>_ranks.png``.

    ``ds`` is an output file of a tree-network driver (``time``, ``ranks``, ``max_rank``)
    and ``plt`` the ``matplotlib.pyplot`` module the caller set up (Agg backend).
    """
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.plot(ds["time"], ds["ranks"].values, color="0.7", lw=0.8)
    ax.plot(ds["time"], ds["max_rank"], "k", lw=2, label="max rank")
    ax.set_xlabel("time")
    ax.set_ylabel("edge ranks")
    ax.legend()
    out = base.with_name(base.name + "_ranks.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
