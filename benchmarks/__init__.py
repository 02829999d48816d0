"""Benchmarks: scripts that print tables of side-by-side ratios (not part of the tests)."""
