"""Wall time of one partition's runs under the in-process executor (the default with the DuckDB
file) against Dagster's multiprocess executor (the baseline: a process per step), launched as a
user or the run launcher would (``dagster asset materialize`` in a new process, on an instance
with the ``duckdb`` pool at one slot). The two executors alternate, best of ``--repeat`` each (so
not ``timing.best_of``, which repeats one call), in one process of this script.

    .venv/bin/python benchmarks/executor.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from atra_pipeline.core.storage.paths import PROJECT_ROOT
from atra_pipeline.defs.common.partitions import DEFAULT_SYMBOLS
from atra_pipeline_tests.support.dagster_cli import materialize_all

DATE = "2024-08-08"
STAGES = {  # what one run materialises, and how many steps (assets + separate check steps) it has
    "raw (2 assets, 2 GE check steps)": "raw_l2_snapshots,raw_trades",
    "features + labels (2 assets)": "features,labels",
}


def materialize(select: str, symbol: str, env: dict) -> float:
    start = time.perf_counter()
    materialize_all(select, [f"{DATE}|{symbol}"], env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atra-executor-"))
    try:
        home = work / "home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
        base = {**os.environ, "DAGSTER_HOME": str(home), "ATRA_DUCKDB_PATH": str(work / "atra.duckdb")}
        base.pop("ATRA_STORAGE_ROOT", None)
        for symbol in DEFAULT_SYMBOLS[1:]:  # the peers' raw data, once: features read them
            materialize(STAGES["raw (2 assets, 2 GE check steps)"], symbol, base)
        times = {(stage, name): [] for stage in STAGES for name in ("in_process", "multiprocess")}
        for _ in range(args.repeat):
            for name in ("in_process", "multiprocess"):
                env = {**base, "ATRA_EXECUTOR": name}
                for stage, select in STAGES.items():  # raw first: features read it
                    times[(stage, name)].append(materialize(select, DEFAULT_SYMBOLS[0], env))
        rows = []
        for stage in STAGES:
            fast, slow = min(times[(stage, "in_process")]), min(times[(stage, "multiprocess")])
            rows.append({"run": stage, "in_process_s": round(fast, 2), "multiprocess_s (baseline)": round(slow, 2),
                         "baseline / in_process": round(slow / fast, 2)})
        print(f"one partition ({DATE}|{DEFAULT_SYMBOLS[0]}), wall seconds of `dagster asset materialize`, "
              f"best of {args.repeat}, 1-second synthetic books")
        width = max(len(r["run"]) for r in rows)
        for row in rows:
            print(f"  {row['run']:<{width}}  in_process {row['in_process_s']:6.2f} s   multiprocess "
                  f"{row['multiprocess_s (baseline)']:6.2f} s   ratio {row['baseline / in_process']:.2f}x")
        print(json.dumps(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
