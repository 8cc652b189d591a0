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


def best_of_interleaved(repeat: int, fns: dict) -> dict:
    """``{name: seconds}``, the fastest of ``repeat`` calls of each function, the calls taken in
    turn (a, b, c, a, b, c, ...) so a burst of load on the machine touches all of them alike."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(found) for name, found in times.items()}
