"""Timing helper shared by the benchmark scripts (run them as scripts: this folder is on sys.path)."""

from __future__ import annotations

import time


def best_of(repeat: int, fn) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn``: the least disturbed by a noisy machine."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
