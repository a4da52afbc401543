"""Basis-Update & Galerkin (BUG) integrators for tree tensor networks.

Registered by name in :data:`INTEGRATORS`: ``"bug"`` (fixed rank), ``"augmented_bug"``
(rank-adaptive) and ``"parallel_bug"``.
"""

from solvers.bug.common import INTEGRATORS, LinearTreeRHS, StepInfo, register_integrator
from solvers.bug.integrators import augmented_bug_step, bug_step, parallel_bug_step

__all__ = [
    "INTEGRATORS",
    "LinearTreeRHS",
    "StepInfo",
    "augmented_bug_step",
    "bug_step",
    "parallel_bug_step",
    "register_integrator",
]
