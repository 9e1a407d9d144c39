"""Benchmarks of the sidecar on the synthetic model: `make bench` (python -m bench) runs them all.

Each item is a module with `TITLE`, `async measure(model) -> dict` (the raw figures, written to
bench/results/latest.json under TITLE) and `rows(figures) -> list[Row]` (its lines in the table).
Nothing here is a test: nothing asserts a time. Where two ways are compared, they run
interleaved in one process, and the figure that counts is their ratio.
"""
