"""A month of the main job: ``atra run`` over 30 days x 3 symbols of synthetic data, one stage at a
time, each in its own process under ``/usr/bin/time -v``: wall time and peak memory per stage,
and every blocking check's outcome on every partition (issue 15: a 30-day synthetic run passes
every blocking check).

Run: ``.venv/bin/python benchmarks/month_run.py [--start 2024-08-01] [--days 30] [--trials 10]``.
Uses a fresh database and Dagster instance in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from atra_pipeline.core.features.checks import FEATURE_CHECKS
from atra_pipeline.core.quality.rules import SQL_CHECKS

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("raw", "features", "labels", "research")


def _measure(stage: str, start: str, end: str, trials: int, env: dict) -> dict:
    command = ["/usr/bin/time", "-v", str(ROOT / ".venv" / "bin" / "atra"), "run", "--start", start, "--end", end,
               "--stages", stage, "--trials", str(trials)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return {"stage": stage, "exit": done.returncode, "wall_s": round(seconds, 1), "peak_mib": round(peak_kb / 1024),
            "output": done.stdout}


def _failed_blocking(db: Path) -> pd.DataFrame:
    blocking = {(c.asset, c.name) for c in SQL_CHECKS if c.blocking} | {("features", n) for n in FEATURE_CHECKS}
    with duckdb.connect(str(db), read_only=True) as conn:
        log = conn.execute("SELECT asset, check_name, symbol, day, passed FROM asset_check_log").fetchdf()
    log["blocking"] = [(a, c) in blocking for a, c in zip(log["asset"], log["check_name"])]
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2024-08-01")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    end = str((pd.Timestamp(args.start) + pd.Timedelta(days=args.days - 1)).date())
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
        db = Path(tmp) / "atra.duckdb"
        env = {**os.environ, "DAGSTER_HOME": str(home), "ATRA_DUCKDB_PATH": str(db)}
        rows = []
        for stage in STAGES:
            rows.append(_measure(stage, args.start, end, args.trials, env))
            print(f"{stage}: {rows[-1]['wall_s']} s, peak {rows[-1]['peak_mib']} MiB, exit {rows[-1]['exit']}",
                  file=sys.stderr, flush=True)
        log = _failed_blocking(db)
        db_mib = db.stat().st_size / 2**20
    frame = pd.DataFrame(rows)
    print(f"atra run {args.start} .. {end} ({args.days} days x 3 symbols, synthetic, {args.trials} trials), "
          "one process per stage")
    print(frame[["stage", "exit", "wall_s", "peak_mib"]].to_string(index=False))
    print(f"total {frame['wall_s'].sum():.0f} s; database {db_mib:.0f} MiB")
    blocking = log[log["blocking"]]
    failed = blocking[~blocking["passed"]]
    print(f"blocking check outcomes recorded: {len(blocking)} over "
          f"{blocking[['symbol', 'day']].drop_duplicates().shape[0]} partitions; failed: {len(failed)}")
    if len(failed):
        print(failed.to_string(index=False))
    warnings = log[~log["blocking"] & ~log["passed"]]
    print(f"warnings failed: {len(warnings)}"
          + (": " + ", ".join(f"{a}.{c} x{n}" for (a, c), n in warnings.groupby(['asset', 'check_name']).size().items())
             if len(warnings) else ""))
    research = frame.loc[frame["stage"] == "research", "output"].iloc[0]
    print("research stage summary:\n" + "\n".join(research.strip().splitlines()[-12:]))


if __name__ == "__main__":
    main()
