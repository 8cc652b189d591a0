"""Seconds of the Great Expectations check steps of one synthetic raw partition: before (the commit
``--before``, whose two blocking suites validated a pandas copy of the stored partition) and after
(this working tree: the distributions against the symbol's history, validated in DuckDB), with
their ratio and the book step's time beside them.

Each tree runs in a process of its own, importing that tree (``git archive`` of ``--before``;
this checkout for after), on a fresh database holding the 7 previous days (the history the new
suite reads, so it does its whole work). A step's time is STEP_START to its end in Dagster's
event log; best of ``--repeat`` runs of the partition in one process, and the first of them, which
also imports Great Expectations.

    .venv/bin/python benchmarks/expectations_cost.py [--before 1814594] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATE, SYMBOL, HISTORY_DAYS = "2024-08-08", "BTCUSDT", 7


def worker(db: str, repeat: int) -> dict:
    """In the tree on ``sys.path``: store the history, then time the partition's steps."""
    import dagster as dg
    import pandas as pd

    from atra_pipeline.defs import raw
    from atra_pipeline.defs.common.partitions import partition_key
    from atra_pipeline.defs.common.resources import AtraDuckDB, RawSourceResource

    resources = {"duckdb": AtraDuckDB(database=db), "raw_source": RawSourceResource()}
    for day in pd.date_range(end=pd.Timestamp(DATE) - pd.Timedelta(days=1), periods=HISTORY_DAYS):
        dg.materialize(raw.assets, partition_key=partition_key(f"{day.date()}", SYMBOL), resources=resources)
    runs, instance = [], dg.DagsterInstance.ephemeral()
    for _ in range(repeat):
        result = dg.materialize([*raw.assets, *raw.asset_checks], partition_key=partition_key(DATE, SYMBOL),
                                resources=resources, instance=instance)
        started, seconds = {}, {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[event.step_key] = entry.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                seconds[event.step_key] = entry.timestamp - started[event.step_key]
        runs.append({"check_steps": {k: v for k, v in seconds.items() if k != "raw_partition"},
                     "book_step": seconds["raw_partition"]})
    best = min(runs, key=lambda r: sum(r["check_steps"].values()))
    return {"ge_s": sum(best["check_steps"].values()), "steps": best["check_steps"], "book_step_s": best["book_step"],
            "first_run_ge_s": sum(runs[0]["check_steps"].values())}


def run_tree(tree: Path, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="atra-ge-cost-") as work:
        env = {**os.environ, "PYTHONPATH": str(tree), "ATRA_DUCKDB_PATH": str(Path(work) / "atra.duckdb"),
               "DAGSTER_HOME": work}
        env.pop("ATRA_STORAGE_ROOT", None)
        out = subprocess.run([sys.executable, __file__, "--worker", str(Path(work) / "atra.duckdb"), str(repeat)],
                             env=env, cwd=work, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"{tree}: {out.stderr[-3000:]}")
        out = out.stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="1814594", help="the commit whose GE steps are the baseline")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="atra-ge-before-") as old:
        archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, check=True, capture_output=True).stdout
        tarfile.open(fileobj=BytesIO(archive)).extractall(old, filter="data")
        before = run_tree(Path(old), args.repeat)
    after = run_tree(ROOT, args.repeat)
    for name, found in ((f"before ({args.before}: pandas copy)", before), ("after (DuckDB, vs history)", after)):
        steps = ", ".join(f"{k} {v:.2f} s" for k, v in found["steps"].items())
        print(f"{name}: GE check steps {found['ge_s']:.2f} s ({steps}); book step {found['book_step_s']:.2f} s; "
              f"first run of the process (Great Expectations imported in it) {found['first_run_ge_s']:.2f} s")
    print(f"before / after: {before['ge_s'] / after['ge_s']:.1f}x "
          f"(first runs: {before['first_run_ge_s'] / after['first_run_ge_s']:.1f}x)")


if __name__ == "__main__":
    main()
