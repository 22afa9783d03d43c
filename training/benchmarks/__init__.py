"""Benchmark scripts (not tests): they print tables of measured figures and write JSON. See docs/performance.md."""
