"""``atra``: run the pipeline from a shell, on the same Dagster instance the UI shows.

``atra run`` materialises the ``main`` job for a date (or a date range) x the configured
symbols, stage by stage (every partition's raw data before any features: the cross-asset
features of one symbol read the others' books), one in-process run per partition and stage
(DuckDB steps one at a time), prints each run's check results and where the data is, and exits
non-zero when a run or a check fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from atra_pipeline.core.paths import PROJECT_ROOT, duckdb_path

DEFAULT_DATE = "2024-08-08"  # the day of the real Binance capture in ../shared/data, for comparison


def _instance():
    import dagster as dg

    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def run_partitions(dates: list[str], symbols: list[str], run_config: dict | None = None) -> list[dict]:
    """Execute the ``main`` job's stages in order, each once per (date, symbol); one summary per run."""
    import dagster as dg

    from atra_pipeline.definitions import MAIN_STAGES, defs
    from atra_pipeline.partitions import partition_key

    job = defs.resolve_job_def("main")
    graph = defs.resolve_asset_graph()
    instance = _instance()
    summaries = []
    for stage in MAIN_STAGES:
        selection = sorted(k for k in graph.get_all_asset_keys() if graph.get(k).group_name == stage)
        config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}, **(run_config or {})}
        for date, symbol in ((d, s) for d in dates for s in symbols):
            result = job.execute_in_process(partition_key=partition_key(date, symbol), instance=instance,
                                            run_config=config, asset_selection=selection, raise_on_error=False)
            checks = [e.event_specific_data for e in result.all_events
                      if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
            summaries.append({
                "stage": stage,
                "partition": f"{date}|{symbol}",
                "run_id": result.run_id,
                "success": result.success,
                "checks_passed": sum(c.passed for c in checks),
                "checks_failed": [f"{c.asset_key.to_user_string()}.{c.check_name}" for c in checks if not c.passed],
            })
    return summaries


def _dates(args) -> list[str]:
    if args.start:
        end = args.end or args.start
        return [d.strftime("%Y-%m-%d") for d in pd.date_range(args.start, end, freq="D")]
    return [args.date]


def main(argv: list[str] | None = None) -> int:
    from atra_pipeline.partitions import configured_symbols

    parser = argparse.ArgumentParser(prog="atra", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialise the main job (synthetic data by default)")
    run.add_argument("--date", default=DEFAULT_DATE, help=f"UTC date (default {DEFAULT_DATE})")
    run.add_argument("--start", help="first date of a range (backfill in this process)")
    run.add_argument("--end", help="last date of the range, inclusive")
    run.add_argument("--symbols", default=",".join(configured_symbols()), help="comma-separated")
    args = parser.parse_args(argv)

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    summaries = run_partitions(_dates(args), symbols)
    print(pd.DataFrame(summaries).drop(columns="run_id").to_string(index=False))
    ok = all(s["success"] and not s["checks_failed"] for s in summaries)
    print(f"\nDuckDB database: {duckdb_path()}  (tables raw_l2_snapshots, raw_trades, features, labels)")
    print(f"Dagster instance: {os.environ['DAGSTER_HOME']}")
    print("Open the Dagster UI with `make ui`, then http://127.0.0.1:3000 (runs, assets, check results).")
    print("All runs succeeded and every check passed." if ok else "Some runs or checks FAILED (see above).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
