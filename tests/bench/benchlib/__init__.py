"""Modules of the side-by-side benchmark pgwarden vs Patroni (entry point: tests/bench/run)."""
