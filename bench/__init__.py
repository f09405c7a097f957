"""Benchmarks: ``bench/run NAME`` runs ``python -m bench.NAME`` in the project venv.

Each benchmark prints progress, a table, and as its last line one JSON object with
its figures, the targets from DESIGN.md ("Performance targets") and whether they
were met. A missed target is a result, not an error: the exit status is 0 unless
something failed.
"""
