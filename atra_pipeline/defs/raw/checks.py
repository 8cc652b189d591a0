"""Great Expectations suites on the raw tables, as blocking Dagster asset checks."""

import dagster as dg
import pandas as pd

from atra_pipeline.core.expectations import validate_frame
from atra_pipeline.defs.checks import markdown_table
from atra_pipeline.defs.raw.assets import RAW_L2, RAW_TRADES, partition_frame
from atra_pipeline.partitions import partition_window
from atra_pipeline.resources import PARTITION_POOL, AtraDuckDB, RawSourceResource

def _ge_check(asset: dg.AssetKey, table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name="great_expectations_suite", blocking=True, pool=PARTITION_POOL,
                    description=f"Great Expectations suite '{table}_suite' on the stored partition.")
    def _check(context: dg.AssetCheckExecutionContext, duckdb: AtraDuckDB,
               raw_source: RawSourceResource) -> dg.AssetCheckResult:
        window = partition_window(context.op_execution_context)
        frame = partition_frame(duckdb, table, window)
        min_rows, max_rows = raw_source.spec().row_count_bounds() if table == "raw_l2_snapshots" else (1, None)
        summary = validate_frame(table, frame, min_rows, max_rows)
        return dg.AssetCheckResult(
            passed=summary["success"],
            metadata={
                "expectations_evaluated": summary["evaluated"],
                "expectations_failed": len(summary["failed"]),
                "failed": dg.MetadataValue.md(markdown_table(pd.DataFrame(summary["failed"]))),
                "rows_validated": len(frame),
            },
            description=("all expectations met" if summary["success"] else
                         "; ".join(f"{f['expectation']}({f['column']}): {f['unexpected_count']} unexpected, "
                                   f"first rows {f['first_rows']}" for f in summary["failed"])),
        )

    _check.__name__ = f"{table}_great_expectations"
    return _check

raw_l2_expectations = _ge_check(RAW_L2, "raw_l2_snapshots")
raw_trades_expectations = _ge_check(RAW_TRADES, "raw_trades")
