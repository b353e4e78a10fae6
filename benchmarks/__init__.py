"""Benchmarks: they report numbers, they never pass or fail. See ``python -m benchmarks -h``."""
