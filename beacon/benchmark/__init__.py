"""Benchmarks: the built-in question set, prompt building, response classification and diffs."""
