"""Solvers: algorithms that advance or fit a state (BUG integrators, ...)."""
