"""Timing helper shared by the benchmarks (run as `python bench/<name>.py`, so this folder is on
the import path)."""

from __future__ import annotations

import time


def best_time(fn, repeats: int, warmup: bool = True):
    """(best wall time of `repeats` calls, after one untimed warm-up call unless `warmup` is
    false; the last call's result)."""
    out = fn() if warmup else None
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
