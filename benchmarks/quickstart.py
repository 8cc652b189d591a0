"""Wall time of the quickstart's `atra run` (the embedded defaults: synthetic data, one date, the
configured symbols, a 10-trial candidate, its backtest, report and gate) before and after the
orchestration moved from nested in-process runs written stage by stage in the command line to
the asset graph's own order (issue 16), with the number of Dagster runs each launched.

The ``--before`` tree (``git archive`` of that commit) and this checkout each run as a process
of their own on a fresh database and Dagster instance, taken in turn (before, after, before,
after, ...) so a burst of load on this shared machine touches both; the best of ``--repeat``.

    .venv/bin/python benchmarks/quickstart.py [--before 73f6c94] [--repeat 2] [--stages raw,features,labels]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def export(commit: str, into: Path) -> Path:
    """The tree of ``commit`` under ``into``."""
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def atra_run(tree: Path, work: Path, stages: str) -> tuple[float, int, int]:
    """Seconds of one `atra run` of ``tree`` on a fresh database and instance under ``work``, the
    runs it left on the instance and its exit code."""
    home = work / "home"
    shutil.rmtree(work, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "PYTHONPATH": str(tree), "DAGSTER_HOME": str(home),
           "ATRA_DUCKDB_PATH": str(work / "atra.duckdb")}
    command = [sys.executable, "-m", "atra_pipeline.cli", "run", *(["--stages", stages] if stages else [])]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = len(instance.get_run_records())
    return seconds, runs, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="73f6c94", help="the commit before the orchestration change")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--stages", default="", help="e.g. raw,features,labels (default: the whole main job)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="atra-quickstart-") as tmp:
        trees = {"before": export(args.before, Path(tmp) / "before"), "after": ROOT}
        results: dict[str, list[tuple[float, int, int]]] = {name: [] for name in trees}
        for _ in range(args.repeat):
            for name, tree in trees.items():
                results[name].append(atra_run(tree, Path(tmp) / f"work-{name}", args.stages))
    best = {name: min(r[0] for r in found) for name, found in results.items()}
    print(f"atra run ({args.stages or 'every stage'}), best of {args.repeat}, before = {args.before}")
    for name, found in results.items():
        print(f"  {name:6s} {best[name]:7.1f} s  runs launched {found[0][1]}  exit codes {[r[2] for r in found]}")
    print(f"  after / before: {best['after'] / best['before']:.2f}x")


if __name__ == "__main__":
    main()
