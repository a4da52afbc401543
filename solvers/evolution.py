"""The time loop of the fixed-step evolutions (tree-network BUG runs, and any other stepper).

:class:`TimeEvolution` owns the state, the step count and the time ``t = step * h``, and
steps through a :data:`~solvers.bug.Stepper` (``step(y, t, h) -> (y, info)``) towards the
``n_steps`` of the whole run. After every step it stops with :class:`FloatingPointError` on
NaN/Inf in the state or when a monitored quantity (a cheap ``state -> float``: the mass,
the squared norm of a unitary flow) grows beyond its initial value by more than
``max_growth``, relative (a blow-up). The caller gives the side effects as hooks, called at
cadences in steps:

- ``record(evolution, info, wall)`` at step 0 (new runs only; ``info`` is None, ``wall``
  0.0), every ``record_every`` steps and at the last step of the run. Give it on the ranks
  that write (rank 0) and None on the others;
- ``checkpoint(evolution)`` at step 0 (new runs), every ``checkpoint_every`` steps and where
  a call stops (``run(max_steps)``, ``run_to(t)``, the last time of ``at_times``);
- ``on_finish(evolution)`` once, when the last step of the run is done (e.g. a final-time
  reference);
- a progress line on the logger every ``log_every`` steps and where a call stops.

A stopped run resumes from its checkpoint: ``TimeEvolution(stepper, state, step=k,
monitor0=m0, ...)`` with the checkpointed state, step and initial monitor value continues
bitwise as the uninterrupted run would have. The loop never writes files and never calls
MPI: with an MPI executor every rank runs it on the same state (the monitor is computed
on every rank), and the hooks decide who writes. Closing an output file (finished or not)
is the caller's::

    evolution = TimeEvolution(stepper, y0, h=h, n_steps=n, monitor=mass, record=record, ...)
    try:
        summary = evolution.run(max_steps)
    except BaseException:
        out.close(finished=False)
        raise
    out.close(finished=summary["finished"])

:class:`EvolutionParams` is the configuration table of the loop (``h``, ``t_end``,
``max_growth``), :func:`time_grid` the number of steps of ``t_end`` and
:func:`record_steps` the steps that get a record.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError, Params, param

if TYPE_CHECKING:
    from solvers.bug import StepInfo, Stepper
    from tensorsim.ttn import TTN

__all__ = ["EvolutionParams", "TimeEvolution", "record_steps", "time_grid"]

logger = logging.getLogger(__name__)

#: Relative tolerance of "``t`` is a multiple of ``h``" (times ``max(1, |t|)``).
_GRID_TOL = 1e-9


@dataclass(frozen=True)
class EvolutionParams(Params):
    """The time grid and the blow-up bound of a fixed-step evolution.

    Attributes
    ----------
    h
        Step size; ``None``: the problem's step (e.g. ``cfl * dx`` of a transport problem).
    t_end
        Final time, a multiple of ``h``; ``None``: the problem's.
    max_growth
        Stop (blow-up) when the monitored quantity grows beyond its initial value by this
        much, relative. An instability grows exponentially and passes any such bound
        within a few steps; the bound only has to leave room for the honest changes of
        the quantity. The squared norm of a unitary flow changes only by truncation
        (1e-3 is far above it). The mass of a transport problem with outflow
        (``boundary = "zero"``) wanders by the small spurious values of the low-rank
        solution at the boundary (measured maximum growth: 1.3e-4 for the default line
        source, 1.6e-4 for the plane source with the parallel BUG at rtol 1e-4), which
        1e-2 leaves room for; with periodic boundaries, no absorption and the
        mass-conservative truncation the mass is constant to round-off, and a bound such
        as 1e-6 is safe.
    """

    h: float | None = param(None, "step size (none: the problem's)", gt=0.0)
    t_end: float | None = param(None, "final time (none: the problem's)", ge=0.0)
    max_growth: float = param(
        1e-3,
        "stop (blow-up) when the monitored quantity grows beyond this, relative to its "
        "initial value",
        gt=0.0,
    )

    def grid(
        self, h: float | None = None, t_end: float | None = None, *, table: str = ""
    ) -> tuple[float, int]:
        """``(h, n_steps)``: this table's ``h`` and ``t_end`` where set, else the given ones.

        Parameters
        ----------
        h, t_end
            The problem's step and final time (used where this table says ``None``).
        table
            Key of this table in the run configuration, for the error messages (e.g.
            ``"solver"``).

        Raises
        ------
        ConfigError
            If a value is missing on both sides, or ``t_end`` is not a multiple of ``h``.
        """
        prefix = f"{table}." if table else ""
        step = self.h if self.h is not None else h
        end = self.t_end if self.t_end is not None else t_end
        for name, value in (("h", step), ("t_end", end)):
            if value is None:
                raise ConfigError(
                    f"config key '{prefix}{name}': not set, and the problem gives none"
                )
        return step, time_grid(step, end, key=f"{prefix}h")


def time_grid(h: float, t_end: float, *, key: str = "h") -> int:
    """Number of steps of size ``h`` to ``t_end`` (which must be a multiple of ``h``).

    ``n = round(t_end / h)``, accepted when ``|n h - t_end| <= 1e-9 max(1, t_end)``.

    Parameters
    ----------
    h
        Step size, > 0.
    t_end
        Final time, >= 0.
    key
        Config key named by the error (``"solver.h"``).

    Raises
    ------
    ConfigError
        If ``h`` or ``t_end`` is out of range or ``t_end`` is not a multiple of ``h``
        (a :class:`ValueError`).
    """
    if isinstance(h, bool) or not isinstance(h, numbers.Real) or not (h > 0 and math.isfinite(h)):
        raise ConfigError(f"config key {key!r}: expected a finite step size > 0, got {h!r}")
    if (
        isinstance(t_end, bool)
        or not isinstance(t_end, numbers.Real)
        or not (t_end >= 0 and math.isfinite(t_end))
    ):
        raise ConfigError(f"config key {key!r}: expected a finite t_end >= 0, got {t_end!r}")
    n_steps = round(t_end / h)
    if abs(n_steps * h - t_end) > _GRID_TOL * max(1.0, t_end):
        raise ConfigError(f"config key {key!r}: t_end = {t_end} is not a multiple of h = {h}")
    return n_steps


def record_steps(n_steps: int, every: int) -> list[int]:
    """Steps that get a record: ``0, every, 2 every, ...`` and the last one."""
    return [k for k in range(n_steps + 1) if k % every == 0 or k == n_steps]


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _optional_callable(value: Any, name: str) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name}: expected a callable or None, got {type(value).__name__}")
    return value


class TimeEvolution:
    """The fixed-step time loop of a run: state, time, monitor, hooks, resume.

    Parameters
    ----------
    stepper
        ``step(y, t, h) -> (y, info)``; ``info`` has ``ranks`` (edge -> rank),
        ``trunc_error``, ``eta`` and ``rejected`` (a :class:`solvers.bug.StepInfo`).
    state
        The state at ``step`` (the initial state of a new run, or a checkpointed one).
    h
        Step size; the time of step ``k`` is ``k * h``.
    n_steps
        Number of steps of the whole run.
    monitor
        A cheap ``state -> float`` (mass, squared norm), called after every step on every
        rank; the run stops when it grows beyond its initial value by more than
        ``max_growth``, relative.
    monitored
        Name of what ``monitor`` computes, for the progress lines and errors.
    max_growth
        The blow-up bound (see :class:`EvolutionParams`).
    step
        Steps already done (0 for a new run; the checkpoint's step to resume).
    monitor0
        The initial monitor value of a resumed run (from its checkpoint); None for a new
        run, whose value is ``monitor(state)``. A new run (``monitor0=None``) records and
        checkpoints step 0 on its first call; a resumed one does not.
    record
        ``record(evolution, info, wall)``, at step 0 (new runs), every ``record_every``
        steps and at step ``n_steps``; ``wall`` is the seconds of the step. None: no records
        (e.g. on the ranks that do not write).
    checkpoint
        ``checkpoint(evolution)``, at step 0 (new runs), every ``checkpoint_every`` steps
        and where a call stops.
    on_finish
        ``on_finish(evolution)``, once, at the end of the call that reached ``n_steps``.
    should_stop
        ``should_stop() -> bool``, after the hooks of every step (a signal handler's flag):
        true checkpoints that step and raises ``KeyboardInterrupt``.
    record_every, checkpoint_every, log_every
        Cadences in steps.

    Raises
    ------
    TypeError
        If ``stepper``, ``monitor`` or a hook is not callable, or ``monitor0`` is not a real
        number.
    ValueError
        If a number is out of range (``h > 0``, ``0 <= step <= n_steps``, cadences
        ``>= 1``, ``max_growth > 0``) or a resumed run (``step > 0``) has no ``monitor0``.
    """

    def __init__(
        self,
        stepper: Stepper,
        state: TTN,
        *,
        h: float,
        n_steps: int,
        monitor: Callable[[TTN], float],
        monitored: str = "mass",
        max_growth: float = 1e-3,
        step: int = 0,
        monitor0: float | None = None,
        record: Callable[[TimeEvolution, StepInfo | None, float], None] | None = None,
        checkpoint: Callable[[TimeEvolution], None] | None = None,
        on_finish: Callable[[TimeEvolution], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        record_every: int = 1,
        checkpoint_every: int = 25,
        log_every: int = 10,
    ) -> None:
        if not callable(stepper):
            raise TypeError(f"stepper: expected a callable, got {type(stepper).__name__}")
        if not callable(monitor):
            raise TypeError(f"monitor: expected a callable, got {type(monitor).__name__}")
        if (
            isinstance(h, bool)
            or not isinstance(h, numbers.Real)
            or not (h > 0 and math.isfinite(h))
        ):
            raise ValueError(f"h: expected a finite step size > 0, got {h!r}")
        n_steps = _positive_int(n_steps, "n_steps", 0)
        step = _positive_int(step, "step", 0)
        if step > n_steps:
            raise ValueError(f"step: expected at most n_steps = {n_steps}, got {step}")
        if isinstance(max_growth, bool) or not (
            isinstance(max_growth, numbers.Real) and max_growth > 0
        ):
            raise ValueError(f"max_growth: expected a number > 0, got {max_growth!r}")
        if monitor0 is None and step > 0:
            raise ValueError(
                f"monitor0: a resumed run (step = {step}) needs the initial monitor value "
                "of its checkpoint"
            )
        if monitor0 is not None and (
            isinstance(monitor0, bool) or not isinstance(monitor0, numbers.Real)
        ):
            raise TypeError(f"monitor0: expected a real number, got {monitor0!r}")
        self._stepper = stepper
        self._state = state
        self._h = h
        self._n_steps = n_steps
        self._monitor = monitor
        self._monitored = str(monitored)
        self._max_growth = max_growth
        self._step = step
        self._record = _optional_callable(record, "record")
        self._checkpoint = _optional_callable(checkpoint, "checkpoint")
        self._on_finish = _optional_callable(on_finish, "on_finish")
        self._should_stop = _optional_callable(should_stop, "should_stop")
        self._record_every = _positive_int(record_every, "record_every")
        self._checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every")
        self._log_every = _positive_int(log_every, "log_every")
        # a new run records and checkpoints step 0 on its first call; a resumed one starts
        # from its checkpoint
        self._new = monitor0 is None
        self._started = False
        self._finish_called = False
        self._last_checkpoint: int | None = None if self._new else step
        value = monitor(state)
        self._monitor0 = value if monitor0 is None else monitor0
        self._scale = abs(self._monitor0) if self._monitor0 != 0 else 1.0
        self._change = (value - self._monitor0) / self._scale

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> TTN:
        """The current state (the last accepted one after a failed step)."""
        return self._state

    @property
    def step(self) -> int:
        """Steps done since the start of the run."""
        return self._step

    @property
    def t(self) -> float:
        """The current time, ``step * h``."""
        return self._step * self._h

    @property
    def h(self) -> float:
        """The step size."""
        return self._h

    @property
    def n_steps(self) -> int:
        """Number of steps of the whole run."""
        return self._n_steps

    @property
    def finished(self) -> bool:
        """Whether the last step of the run is done."""
        return self._step == self._n_steps

    @property
    def monitor0(self) -> float:
        """The initial value of the monitored quantity (to store in a checkpoint)."""
        return self._monitor0

    @property
    def last_checkpoint(self) -> int | None:
        """Step of the last checkpoint (the start of a resumed run; None before any)."""
        return self._last_checkpoint

    # ------------------------------------------------------------------ running

    def run(self, max_steps: int | None = None) -> dict[str, Any]:
        """Step to the end of the run, or ``max_steps`` more; checkpoint where it stops.

        Returns
        -------
        dict
            ``steps`` (done in this call), ``wall_time`` (seconds in the stepper),
            ``max_rank`` (largest edge rank after a step of this call, 0 without steps),
            ``finished`` (the last step of the run is done) and ``mass_change`` (relative
            change of the monitored quantity from its initial value, now).

        Raises
        ------
        FloatingPointError
            On NaN/Inf in the state or a blow-up of the monitored quantity; the message
            names the step, its time and the last checkpoint. The evolution keeps the
            state before the failed step.
        KeyboardInterrupt
            Ctrl-C (or what the caller maps to it) during a step: the last completed step
            is checkpointed first, so a restart loses only the interrupted step.
        """
        if max_steps is None:
            stop = self._n_steps
        else:
            stop = min(self._n_steps, self._step + _positive_int(max_steps, "max_steps", 0))
        return self._advance(stop, final=True)

    def run_to(self, t: float) -> dict[str, Any]:
        """Step until time ``t`` (a multiple of ``h``, from now to the end of the run).

        Returns the summary of :meth:`run`.
        """
        return self._advance(self._step_of(t, "t"), final=True)

    def at_times(self, ts: Iterable[float]) -> Iterator[tuple[float, TTN]]:
        """Yield ``(t, state)`` at each of the times ``ts``, stepping between them.

        ``ts`` are multiples of ``h``, non-decreasing, from now to the end of the run
        (checked before the first step); the yielded ``t`` is ``step * h``. The hooks run
        at their cadences; the stop's progress line and checkpoint come at the last of
        ``ts`` (not where a consumer leaves the loop early).
        """
        steps = [self._step_of(t, f"ts[{i}]") for i, t in enumerate(ts)]
        for i in range(1, len(steps)):
            if steps[i] < steps[i - 1]:
                raise ValueError(f"ts: expected non-decreasing times, got ts[{i}] < ts[{i - 1}]")
        return self._yield_at(steps)

    def _yield_at(self, steps: list[int]) -> Iterator[tuple[float, TTN]]:
        for i, stop in enumerate(steps):
            self._advance(stop, final=i == len(steps) - 1)
            yield self.t, self._state

    def _step_of(self, t: float, name: str) -> int:
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t):
            raise ValueError(f"{name}: expected a finite time, got {t!r}")
        k = round(t / self._h)
        if abs(k * self._h - t) > _GRID_TOL * max(1.0, abs(t)):
            raise ValueError(f"{name}: {t} is not a multiple of h = {self._h}")
        if not self._step <= k <= self._n_steps:
            raise ValueError(
                f"{name}: {t} is outside the times still to come, {self.t:g} to "
                f"{self._n_steps * self._h:g}"
            )
        return k

    def _begin(self) -> None:
        """Record and checkpoint step 0 of a new run (once, on its first call)."""
        if self._started:
            return
        self._started = True
        if not self._new:
            return
        if self._record is not None:
            self._record(self, None, 0.0)
        if self._checkpoint is not None:
            self._checkpoint(self)
            self._last_checkpoint = self._step

    def _advance(self, stop: int, *, final: bool) -> dict[str, Any]:
        """Step to ``stop``; ``final``: the call stops there (its log line and checkpoint)."""
        self._begin()
        first, h, n_steps = self._step, self._h, self._n_steps
        wall_total, max_rank = 0.0, 0
        for k in range(first, stop):
            t0 = time.perf_counter()
            try:
                y, info = self._stepper(self._state, k * h, h)
            except KeyboardInterrupt:
                self._checkpoint_interrupted(k + 1)
                raise
            wall = time.perf_counter() - t0
            wall_total += wall
            done = k + 1
            if not all(np.all(np.isfinite(to_numpy(t))) for t in y.tensors):
                raise FloatingPointError(
                    f"step {done} (t = {done * h:g}) produced NaN/Inf; {self._kept()}"
                )
            change = (self._monitor(y) - self._monitor0) / self._scale
            if not change <= self._max_growth:
                raise FloatingPointError(
                    f"step {done} (t = {done * h:g}): the {self._monitored} grew by "
                    f"{change:.3e} relative to its initial value, more than the allowed "
                    f"{self._max_growth:g} (blow-up); {self._kept()}"
                )
            self._state, self._step, self._change = y, done, change
            ranks = max(info.ranks.values())
            max_rank = max(max_rank, ranks)
            if self._record is not None and (done % self._record_every == 0 or done == n_steps):
                self._record(self, info, wall)
            if done % self._log_every == 0 or (final and done == stop):
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
                    self._monitored,
                    change,
                    wall,
                )
            if self._checkpoint is not None and (
                done % self._checkpoint_every == 0 or (final and done == stop)
            ):
                self._checkpoint(self)
                self._last_checkpoint = done
            if self._should_stop is not None and done < n_steps and self._should_stop():
                self._checkpoint_interrupted(done)
                raise KeyboardInterrupt(f"stopped after step {done} on request")
        finished = self._step == n_steps
        if final and finished and self._on_finish is not None and not self._finish_called:
            self._finish_called = True
            self._on_finish(self)
        return {
            "steps": self._step - first,
            "wall_time": wall_total,
            "max_rank": max_rank,
            "finished": finished,
            "mass_change": float(self._change),
        }

    def _checkpoint_interrupted(self, step: int) -> None:
        """Stopped in or after ``step``: checkpoint the last completed step unless it has one.

        The hooks of that step are done, so a restart from it continues exactly.
        """
        if self._checkpoint is not None and self._last_checkpoint != self._step:
            self._checkpoint(self)
            self._last_checkpoint = self._step
        logger.warning("interrupted at step %d; %s", step, self._kept())

    def _kept(self) -> str:
        if self._last_checkpoint is None:
            return "no checkpoint was taken"
        return f"the last checkpoint is that of step {self._last_checkpoint}"
