"""How many threads LightGBM may use.

LightGBM defaults to one thread here. On a quiet 16-core machine one trial took 9.29 s with one
thread against 1.40 s with 16 (129,600 events, 93 features, 5-fold purged CV). On a busy 2-core
machine (CI, with two test workers) two threads spin-wait on each other and were ~40x slower on
small folds, so a machine with two cores or fewer, or without cores to spare, keeps one.
"""

from __future__ import annotations

import os

from atra_pipeline.core.settings import get

THREADS_ENV = "ATRA_LIGHTGBM_THREADS"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def lightgbm_threads(requested: int = 0) -> int:
    """``requested`` if positive; else ``$ATRA_LIGHTGBM_THREADS`` if set; else the usable cores
    minus the load already running on them (the 1-minute load average), and 1 on a machine with
    two cores or fewer."""
    if requested > 0:
        return int(requested)
    if configured := get(THREADS_ENV):
        return configured
    cores = usable_cores()
    if cores <= 2:
        return 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))
