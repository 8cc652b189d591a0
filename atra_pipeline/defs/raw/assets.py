"""Raw stage: order-book snapshots and trades per UTC date x symbol, from the configured source."""

import dagster as dg
import pandas as pd

from atra_pipeline.core.quality import record_check_outcomes, run_asset_checks
from atra_pipeline.core.raw_sources import stage_partition
from atra_pipeline.core.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage import partition_time_range, read_partition, replace_partition
from atra_pipeline.defs.checks import (
    check_result, checks_summary_markdown, markdown_table, refuse_failed_upstream, sql_check_specs,
)
from atra_pipeline.partitions import market_partitions, partition_window
from atra_pipeline.resources import PARTITION_POOL, AtraDuckDB, RawSourceResource

def _materialize(context: dg.AssetExecutionContext, duckdb: AtraDuckDB, raw_source: RawSourceResource,
                 table: str, columns: list[str]) -> dg.MaterializeResult:
    window = partition_window(context)
    # the collector's rows are in the database file; every other source needs the partition only
    connect = duckdb.get_connection if raw_source.kind == "ccxt" else duckdb.partition_connection
    with connect() as conn:
        if table == "raw_trades":  # its checks read the book
            refuse_failed_upstream(context, conn, ["raw_l2_snapshots"])
        rows, report = stage_partition(conn, raw_source.spec(), table, window)
        written = replace_partition(conn, table, rows, columns, window)
        outcomes = run_asset_checks(conn, table, window, raw_source.check_params())
        record_check_outcomes(conn, table, window, {o.check.name: o.passed for o in outcomes})
        first, last = partition_time_range(conn, table, window)
        preview = read_partition(conn, table, window, limit=5)
    context.log.info(f"{table} {window.symbol} {window.start.date()}: {written}; source {report.get('source')}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(written["inserted"]),
            "rows_replaced": dg.MetadataValue.int(written["deleted"]),
            "first_ts": str(first),
            "last_ts": str(last),
            "source": dg.MetadataValue.json(_jsonable(report)),
            "checks": dg.MetadataValue.md(checks_summary_markdown(outcomes)),
            "preview": dg.MetadataValue.md(markdown_table(preview[columns[:7]] if table == "raw_l2_snapshots" else preview)),
        },
        check_results=[check_result(o) for o in outcomes],
    )

def _jsonable(report: dict) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool, list, dict, type(None))) else str(v))
            for k, v in report.items()}

@dg.asset(
    partitions_def=market_partitions,
    pool=PARTITION_POOL,
    group_name="raw",
    kinds={"duckdb"},
    check_specs=sql_check_specs("raw_l2_snapshots"),
    metadata={"table": "raw_l2_snapshots", "columns": ", ".join(L2_COLUMNS)},
)
def raw_l2_snapshots(context: dg.AssetExecutionContext, duckdb: AtraDuckDB,
                     raw_source: RawSourceResource) -> dg.MaterializeResult:
    """Top-10 L2 order-book snapshots of one symbol for one UTC day (table ``raw_l2_snapshots``)."""
    return _materialize(context, duckdb, raw_source, "raw_l2_snapshots", L2_COLUMNS)

@dg.asset(
    partitions_def=market_partitions,
    pool=PARTITION_POOL,
    group_name="raw",
    kinds={"duckdb"},
    deps=[raw_l2_snapshots],  # trades are checked against the book's mid
    check_specs=sql_check_specs("raw_trades"),
    metadata={"table": "raw_trades", "columns": ", ".join(TRADE_COLUMNS)},
)
def raw_trades(context: dg.AssetExecutionContext, duckdb: AtraDuckDB,
               raw_source: RawSourceResource) -> dg.MaterializeResult:
    """Trades (aggressor side) of one symbol for one UTC day (table ``raw_trades``)."""
    return _materialize(context, duckdb, raw_source, "raw_trades", TRADE_COLUMNS)

def partition_frame(duckdb: AtraDuckDB, table: str, window) -> pd.DataFrame:
    with duckdb.partition_connection() as conn:
        return read_partition(conn, table, window)
