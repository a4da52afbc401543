"""Time-dependent Hamiltonians ``H(t) = sum_k f_k(t) H_k`` for every registered integrator.

Each step ``t -> t + h`` is taken with the Hamiltonian frozen at the midpoint,
``H(t + h/2)``: the exponential midpoint rule, the second-order Magnus integrator, so the
second-order integrators (midpoint BUG, the enriched parallel BUG, one- and two-site TDVP)
stay second order for a smooth ``H(t)`` and the first-order ones stay first order. The
operator at the midpoint is the exact linear combination of the pieces' TTNOs
(:func:`tensorsim.ttn.apply.linear_combination`, bond dimensions add, no rounding).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from solvers.bug.common import LinearTreeRHS, StepInfo
from tensorsim.ttn.apply import linear_combination
from tensorsim.ttn.network import TTN
from tensorsim.ttn.operator import TTNO

__all__ = ["TimeDependentHamiltonian", "midpoint_stepper"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimeDependentHamiltonian:
    """``H(t) = sum_k f_k(t) H_k`` with real functions ``f_k`` and Hermitian TTNOs ``H_k``.

    Attributes
    ----------
    terms
        ``(f_k, H_k)`` pairs, every ``H_k`` on the same tree.
    """

    terms: tuple[tuple[Callable[[float], float], TTNO], ...]

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("terms: expected at least one (function, TTNO) pair")
        for f, op in self.terms:
            if not callable(f):
                raise TypeError(f"terms: expected a function of t, got {type(f).__name__}")
            if not isinstance(op, TTNO):
                raise TypeError(f"terms: expected a TTNO, got {type(op).__name__}")

    def at(self, t: float) -> TTNO:
        """The operator ``H(t)``."""
        return linear_combination([(float(f(t)), op) for f, op in self.terms])


def midpoint_stepper(
    stepper: functools.partial, hamiltonian: TimeDependentHamiltonian
) -> Callable[[TTN, float, float], tuple[TTN, StepInfo]]:
    """``step(y, t, h)`` of ``stepper``'s integrator with ``H`` frozen at ``t + h/2``.

    Parameters
    ----------
    stepper
        A step function from :func:`solvers.bug.make_stepper` (its ``rhs`` gives the
        factor, ``-1j`` for the Schrödinger equation; its operator is replaced every step).
    hamiltonian
        ``H(t)``.
    """
    rhs = stepper.keywords.get("rhs")
    if not isinstance(rhs, LinearTreeRHS):
        raise TypeError("stepper: expected a make_stepper partial with an rhs keyword")
    factor = rhs.factor

    def step(y: TTN, t: float, h: float) -> tuple[TTN, StepInfo]:
        return stepper(y, t, h, rhs=LinearTreeRHS(hamiltonian.at(t + h / 2), factor=factor))

    return step
