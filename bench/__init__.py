"""Benchmarks run by `make bench`; they measure, they do not assert."""
