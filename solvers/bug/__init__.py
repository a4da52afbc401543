"""Basis-Update & Galerkin (BUG) integrators for tree tensor networks.

Registered by name in :data:`INTEGRATORS`: ``"bug"`` (fixed rank), ``"augmented_bug"``
(rank-adaptive), ``"parallel_bug"``, ``"midpoint_bug"`` (second order), ``"tdvp"``
(one-site TDVP, symmetric sweep, second order) and ``"tdvp2"`` (two-site TDVP).
:func:`dmrg` finds ground states with the two-site sweep.
:class:`BUGParams` configures one of them and :func:`make_stepper` turns the configuration
into a step function ``step(y, t, h)``.
"""

from solvers.bug.common import (
    INTEGRATOR_OPTIONS,
    INTEGRATORS,
    LinearTreeRHS,
    StepInfo,
    register_integrator,
)
from solvers.bug.dmrg import GroundState, dmrg, imaginary_time
from solvers.bug.integrators import augmented_bug_step, bug_step, parallel_bug_step
from solvers.bug.midpoint import midpoint_bug_step
from solvers.bug.params import BUGParams, Stepper, make_stepper
from solvers.bug.tdvp import tdvp_step
from solvers.bug.tdvp2 import tdvp2_step

__all__ = [
    "INTEGRATORS",
    "INTEGRATOR_OPTIONS",
    "BUGParams",
    "GroundState",
    "LinearTreeRHS",
    "StepInfo",
    "Stepper",
    "augmented_bug_step",
    "bug_step",
    "dmrg",
    "imaginary_time",
    "make_stepper",
    "midpoint_bug_step",
    "parallel_bug_step",
    "register_integrator",
    "tdvp2_step",
    "tdvp_step",
]
