"""Runs whose `atra` process is gone (SIGKILL, a lost machine) are marked failed and their pool
slots freed, so a killed run never holds the ``duckdb`` pool for the runs after it.

`atra run` executes its runs in its own process and tags each with that process (:func:`process_tags`).
A run still STARTED whose process no longer exists on this host cannot finish: nothing else
would ever release the slot it claimed (Dagster's run monitoring does this only for runs a
daemon launched, which the instance configs also enable).
"""

from __future__ import annotations

import os
import socket

import dagster as dg

PID_TAG, HOST_TAG = "atra/pid", "atra/host"
LIVE_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def process_tags() -> dict[str, str]:
    """The tags that tie a run to this process."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def free_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every unfinished run of this host whose `atra` process is gone, and free the
    pool slots it holds; one line per run saying what was done."""
    done = []
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=LIVE_STATUSES, tags={HOST_TAG: socket.gethostname()}))
    for run in runs:
        pid = int(run.tags.get(PID_TAG, "0"))
        if not pid or pid == os.getpid() or _alive(pid):
            continue
        instance.report_run_failed(run, message=f"its atra process {pid} is gone (killed): marked failed by a later "
                                                "atra run, which freed its pool slots")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        done.append(f"run {run.run_id}: its process {pid} is gone; marked failed and its pool slots freed")
    return done
