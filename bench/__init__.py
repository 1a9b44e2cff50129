"""Benchmarks: `make bench` (= `python -m bench`) runs every `bench/<name>.py` that defines `run()`."""
