"""Runs launched as a user (or a run launcher) launches them: ``dagster asset materialize`` in a
process of its own, for the tests and benchmarks that need runs in separate processes."""

from __future__ import annotations

import json
import subprocess
import sys

from atra_pipeline.core.storage.paths import PROJECT_ROOT


def start_materialize(select: str, partition: str, env: dict, config: dict | None = None) -> subprocess.Popen:
    """``dagster asset materialize`` of ``select`` for ``partition`` (``date|symbol``), output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "atra_pipeline.definitions", "--select", select,
         "--partition", partition, *(["--config-json", json.dumps(config)] if config else [])],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def materialize_all(select: str, partitions: list[str], env: dict, config: dict | None = None,
                    timeout_s: float = 600) -> list[str]:
    """Start one process per partition at once, wait for all; raise with the output of a failed one."""
    procs = [start_materialize(select, p, env, config) for p in partitions]
    outputs = [p.communicate(timeout=timeout_s)[0] for p in procs]
    for partition, proc, out in zip(partitions, procs, outputs):
        if proc.returncode:
            raise AssertionError(f"{select} {partition} exited with {proc.returncode}:\n{out[-3000:]}")
    return outputs
