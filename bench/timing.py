"""Timing helper shared by the benchmarks (run as `python bench/<name>.py`, so this folder is on
the import path)."""

from __future__ import annotations

import time


def best_time(fn, repeats: int):
    """(best wall time of `repeats` calls after one warm-up call, the last call's result)."""
    out = fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
