"""TimeEvolution: hook cadences, resume, run_to/at_times, NaN and blow-up stops; grid helpers."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest

from problems.spin_chain import SpinChainParams, build_tree, hamiltonian, initial_vectors
from solvers.bug import BUGParams, LinearTreeRHS, make_stepper
from solvers.evolution import EvolutionParams, TimeEvolution, record_steps, time_grid
from tensorsim.config import ConfigError, load_config
from tensorsim.ttn import TTN
from tensorsim.ttn.operator import to_ttno

H = 0.02


@functools.cache
def problem():
    """4-site long-range Ising chain, parallel BUG, and its initial state."""
    params = SpinChainParams(sites=4)
    tree = build_tree(params)
    rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree), factor=-1j)
    bug = BUGParams()
    y0 = bug.initial_state(tree, initial_vectors(params), dtype=np.complex128)
    return make_stepper(bug, rhs), y0


def norm2(y: TTN) -> float:
    return y.norm() ** 2


@functools.cache
def reference(n: int) -> list[TTN]:
    """States 0..n of the plain loop ``y = step(y, k h, h)``."""
    stepper, y = problem()
    states = [y]
    for k in range(n):
        y, _ = stepper(y, k * H, H)
        states.append(y)
    return states


def same(a: TTN, b: TTN) -> bool:
    return all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
        for x, y in zip(a.tensors, b.tensors, strict=True)
    )


class Hooks:
    """Hooks that log every call (step, and what the evolution shows then)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.saved: dict[int, tuple] = {}

    def record(self, ev: TimeEvolution, info, wall: float) -> None:
        assert (info is None) == (ev.step == 0 and wall == 0.0)
        self.calls.append(("record", ev.step, ev.t))

    def checkpoint(self, ev: TimeEvolution) -> None:
        self.calls.append(("checkpoint", ev.step))
        copies = tuple(np.array(t, copy=True) for t in ev.state.tensors)
        self.saved[ev.step] = (copies, ev.monitor0)

    def finish(self, ev: TimeEvolution) -> None:
        self.calls.append(("finish", ev.step))

    def steps(self, kind: str) -> list[int]:
        return [c[1] for c in self.calls if c[0] == kind]

    def kwargs(self, **extra):
        return dict(
            h=H,
            monitor=norm2,
            monitored="norm^2",
            record=self.record,
            checkpoint=self.checkpoint,
            on_finish=self.finish,
            **extra,
        )


def _logged_steps(caplog) -> list[int]:
    return [
        int(r.getMessage().split()[1].split("/")[0])
        for r in caplog.records
        if r.name == "solvers.evolution"
    ]


def test_hook_cadences_over_two_calls(caplog):
    stepper, y0 = problem()
    hooks = Hooks()
    ev = TimeEvolution(
        stepper,
        y0,
        n_steps=7,
        record_every=3,
        checkpoint_every=2,
        log_every=4,
        **hooks.kwargs(),
    )
    assert (ev.step, ev.t, ev.n_steps, ev.last_checkpoint, hooks.calls) == (0, 0.0, 7, None, [])
    with caplog.at_level(logging.INFO, logger="solvers.evolution"):
        summary = ev.run(max_steps=5)
        assert hooks.steps("record") == [0, 3]
        assert hooks.steps("checkpoint") == [0, 2, 4, 5]  # and where the call stops
        assert _logged_steps(caplog) == [4, 5]
        assert summary["steps"] == 5 and not summary["finished"] and not ev.finished
        assert ev.step == 5 and ev.last_checkpoint == 5
        assert ev.t == 5 * H
        summary = ev.run()
    assert hooks.steps("record") == [0, 3, 6, 7]  # and the last step of the run
    assert hooks.steps("checkpoint") == [0, 2, 4, 5, 6, 7]
    assert hooks.steps("finish") == [7]
    assert hooks.calls[-2:] == [("checkpoint", 7), ("finish", 7)]
    assert _logged_steps(caplog) == [4, 5, 7]
    assert summary["steps"] == 2 and summary["finished"]
    assert summary["max_rank"] == max(reference(7)[7].ranks().values())
    assert summary["wall_time"] > 0
    assert abs(summary["mass_change"]) < 1e-6
    assert summary["mass_change"] == (norm2(ev.state) - ev.monitor0) / ev.monitor0
    assert ev.monitor0 == norm2(y0)
    assert [c[2] for c in hooks.calls if c[0] == "record"] == [k * H for k in (0, 3, 6, 7)]
    assert same(ev.state, reference(7)[7])
    # nothing is left to do: no steps, no second on_finish
    assert ev.run()["steps"] == 0 and hooks.steps("finish") == [7]
    message = next(r.getMessage() for r in caplog.records if r.name == "solvers.evolution")
    assert message.startswith("step 4/7  t=0.08  max rank ") and "norm^2 " in message


def test_resume_from_a_checkpoint_is_bitwise_the_uninterrupted_run():
    stepper, y0 = problem()
    full = Hooks()
    TimeEvolution(stepper, y0, n_steps=9, checkpoint_every=3, **full.kwargs()).run()
    part = Hooks()
    first = TimeEvolution(stepper, y0, n_steps=9, checkpoint_every=3, **part.kwargs())
    assert first.run(max_steps=4)["steps"] == 4
    tensors, monitor0 = part.saved[4]
    resumed_hooks = Hooks()
    resumed = TimeEvolution(
        stepper,
        TTN(y0.tree, tensors),
        n_steps=9,
        checkpoint_every=3,
        step=4,
        monitor0=monitor0,
        **resumed_hooks.kwargs(),
    )
    assert (resumed.step, resumed.last_checkpoint, resumed.monitor0) == (4, 4, norm2(y0))
    summary = resumed.run()
    assert summary["steps"] == 5 and summary["finished"]
    # no step-0 record or checkpoint for a resumed run; the records go on where they stopped
    assert resumed_hooks.steps("record") == [5, 6, 7, 8, 9]
    assert resumed_hooks.steps("checkpoint") == [6, 9]
    assert part.steps("record") + resumed_hooks.steps("record") == full.steps("record")
    assert same(resumed.state, reference(9)[9])
    for step in (6, 9):
        for a, b in zip(resumed_hooks.saved[step][0], full.saved[step][0], strict=True):
            assert a.tobytes() == b.tobytes()


def test_run_to_and_at_times():
    stepper, y0 = problem()
    hooks = Hooks()
    ev = TimeEvolution(stepper, y0, n_steps=8, checkpoint_every=100, **hooks.kwargs())
    summary = ev.run_to(0.06)
    assert summary["steps"] == 3 and ev.step == 3 and same(ev.state, reference(8)[3])
    assert hooks.steps("checkpoint") == [0, 3]
    seen = [(t, y) for t, y in ev.at_times([0.06, 0.1, 0.1, 0.14])]
    assert [t for t, _ in seen] == [3 * H, 5 * H, 5 * H, 7 * H]
    for (_, y), k in zip(seen, (3, 5, 5, 7), strict=True):
        assert same(y, reference(8)[k])
    # at_times checkpoints where it stops (its last time), not at every time
    assert hooks.steps("checkpoint") == [0, 3, 7]
    assert hooks.steps("finish") == []
    assert ev.run_to(0.16)["finished"] and hooks.steps("finish") == [8]


def test_at_times_checks_all_times_before_stepping():
    stepper, y0 = problem()
    ev = TimeEvolution(stepper, y0, h=H, n_steps=8, monitor=norm2)
    ev.run_to(0.04)
    with pytest.raises(ValueError, match=r"ts\[1\]: 0.05 is not a multiple of h = 0.02"):
        ev.at_times([0.06, 0.05])
    with pytest.raises(ValueError, match=r"ts: expected non-decreasing times"):
        ev.at_times([0.1, 0.06])
    with pytest.raises(ValueError, match=r"ts\[0\]: 0.02 is outside the times still to come"):
        ev.at_times([0.02])
    with pytest.raises(ValueError, match=r"t: 0.18 is outside"):
        ev.run_to(0.18)
    with pytest.raises(ValueError, match=r"t: expected a finite time"):
        ev.run_to(float("nan"))
    assert ev.step == 2


def _faulty(stepper, at: int, change):
    calls = {"n": 0}

    def step(y, t, h):
        calls["n"] += 1
        y, info = stepper(y, t, h)
        if calls["n"] == at:
            tensors = list(y.tensors)
            tensors[y.tree.root] = change(tensors[y.tree.root])
            y = TTN(y.tree, tuple(tensors))
        return y, info

    return step


def test_nan_stops_naming_the_step_and_the_last_checkpoint():
    stepper, y0 = problem()
    hooks = Hooks()
    ev = TimeEvolution(
        _faulty(stepper, 5, lambda t: t * np.nan),
        y0,
        n_steps=8,
        checkpoint_every=2,
        **hooks.kwargs(),
    )
    with pytest.raises(
        FloatingPointError,
        match=r"^step 5 \(t = 0.1\) produced NaN/Inf; the last checkpoint is that of step 4$",
    ):
        ev.run()
    assert hooks.steps("checkpoint") == [0, 2, 4] and hooks.steps("record") == [0, 1, 2, 3, 4]
    # the evolution keeps the last good state
    assert ev.step == 4 and same(ev.state, reference(8)[4])


def test_blow_up_stops_naming_the_monitored_quantity():
    stepper, y0 = problem()
    hooks = Hooks()
    ev = TimeEvolution(
        _faulty(stepper, 3, lambda t: t * 1.01),
        y0,
        n_steps=8,
        checkpoint_every=2,
        max_growth=1e-3,
        **hooks.kwargs(),
    )
    with pytest.raises(
        FloatingPointError,
        match=r"^step 3 \(t = 0.06\): the norm\^2 grew by 2.01\de-02 relative to its initial "
        r"value, more than the allowed 0.001 \(blow-up\); the last checkpoint is that of step 2$",
    ):
        ev.run()
    assert ev.step == 2
    # a decrease is no blow-up; without a checkpoint hook the message says so
    shrink = TimeEvolution(
        _faulty(stepper, 1, lambda t: t * 0.5), y0, h=H, n_steps=2, monitor=norm2
    )
    assert shrink.run()["mass_change"] == pytest.approx(-0.75, abs=1e-6)
    grow = TimeEvolution(_faulty(stepper, 2, lambda t: t * 2), y0, h=H, n_steps=3, monitor=norm2)
    with pytest.raises(
        FloatingPointError, match=r"step 2 .*the mass grew.*no checkpoint was taken"
    ):
        grow.run()


def test_resumed_run_names_its_start_as_last_checkpoint():
    stepper, y0 = problem()
    states = reference(3)
    ev = TimeEvolution(
        _faulty(stepper, 1, lambda t: t + np.inf),
        states[3],
        h=H,
        n_steps=8,
        monitor=norm2,
        step=3,
        monitor0=1.0,
    )
    with pytest.raises(FloatingPointError, match="step 4 .*that of step 3$"):
        ev.run()


def test_zero_step_runs_and_an_empty_run():
    stepper, y0 = problem()
    hooks = Hooks()
    ev = TimeEvolution(stepper, y0, n_steps=0, **hooks.kwargs())
    summary = ev.run()
    assert summary == {
        "steps": 0,
        "wall_time": 0.0,
        "max_rank": 0,
        "finished": True,
        "mass_change": 0.0,
    }
    assert hooks.calls == [("record", 0, 0.0), ("checkpoint", 0), ("finish", 0)]
    hooks = Hooks()
    ev = TimeEvolution(stepper, y0, n_steps=5, **hooks.kwargs())
    assert ev.run(max_steps=0)["steps"] == 0 and hooks.steps("checkpoint") == [0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"h": 0.0}, ValueError, "h: expected a finite step size > 0"),
        ({"n_steps": -1}, ValueError, "n_steps: expected an integer >= 0"),
        ({"step": 9}, ValueError, "step: expected at most n_steps = 8"),
        ({"step": 2}, ValueError, "monitor0: a resumed run"),
        ({"step": 2, "monitor0": "1"}, TypeError, "monitor0: expected a real number"),
        ({"max_growth": 0.0}, ValueError, "max_growth: expected a number > 0"),
        ({"record_every": 0}, ValueError, "record_every: expected an integer >= 1"),
        ({"log_every": 1.5}, ValueError, "log_every"),
        ({"record": "x"}, TypeError, "record: expected a callable or None"),
        ({"monitor": None}, TypeError, "monitor: expected a callable"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    stepper, y0 = problem()
    args = {"h": H, "n_steps": 8, "monitor": norm2, **kwargs}
    with pytest.raises(error, match=match):
        TimeEvolution(stepper, y0, **args)


def test_max_steps_must_be_a_count():
    stepper, y0 = problem()
    ev = TimeEvolution(stepper, y0, h=H, n_steps=8, monitor=norm2)
    with pytest.raises(ValueError, match="max_steps: expected an integer >= 0"):
        ev.run(max_steps=-1)


# ---------------------------------------------------------------- grid helpers


def test_time_grid():
    assert time_grid(0.01, 1.0) == 100
    assert time_grid(0.1, 0.3) == 3  # 0.3 / 0.1 = 2.9999999999999996
    assert time_grid(0.5, 0.0) == 0
    with pytest.raises(ConfigError, match="'solver.h': t_end = 1.0 is not a multiple of h = 0.03"):
        time_grid(0.03, 1.0, key="solver.h")
    with pytest.raises(ConfigError, match="expected a finite step size > 0"):
        time_grid(0.0, 1.0)
    with pytest.raises(ConfigError, match="expected a finite t_end >= 0"):
        time_grid(0.1, -1.0)


def test_evolution_params():
    assert EvolutionParams() == EvolutionParams(h=None, t_end=None, max_growth=1e-3)
    assert EvolutionParams().grid(0.2 / 17, 0.2) == (0.2 / 17, 17)
    assert EvolutionParams(h=0.05).grid(0.2 / 17, 0.2) == (0.05, 4)
    assert EvolutionParams(h=0.01, t_end=1.0).grid() == (0.01, 100)
    with pytest.raises(ConfigError, match="'solver.t_end': not set"):
        EvolutionParams(h=0.1).grid(table="solver")
    with pytest.raises(ConfigError, match="'solver.h': t_end = 1.0 is not a multiple"):
        EvolutionParams(h=0.03, t_end=1.0).grid(table="solver")
    with pytest.raises(ConfigError, match="'max_growth'"):
        load_config(EvolutionParams, overrides=["max_growth=0"])
    assert load_config(EvolutionParams, overrides=["h=0.5"]).h == 0.5


def test_record_steps():
    assert record_steps(7, 3) == [0, 3, 6, 7]
    assert record_steps(6, 3) == [0, 3, 6]
    assert record_steps(0, 5) == [0]
