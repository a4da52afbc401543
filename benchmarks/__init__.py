"""Benchmarks of tensorsim's kernels against reference implementations."""
