"""Raw stage: order-book snapshots and trades per UTC date x symbol, from the configured source,
staged and judged together and written in one transaction (:mod:`atra_pipeline.core.raw.partition`)."""

import dagster as dg

from atra_pipeline.core.raw.partition import PartitionRefused, refuse_other_source, stage_raw, write_raw
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage.database import partition_time_range, read_partition
from atra_pipeline.defs.common.checks import check_result, checks_summary_markdown, markdown_table, sql_check_specs
from atra_pipeline.defs.common.partitions import market_partitions, partition_window
from atra_pipeline.defs.common.resources import PARTITION_POOL, AtraDuckDB, RawSourceResource

RAW_L2 = dg.AssetKey("raw_l2_snapshots")
RAW_TRADES = dg.AssetKey("raw_trades")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(RAW_L2, group_name="raw", kinds={"duckdb"},
                     description="Top-10 L2 order-book snapshots of one symbol for one UTC day "
                                 "(table ``raw_l2_snapshots``).",
                     metadata={"table": "raw_l2_snapshots", "columns": ", ".join(L2_COLUMNS)}),
        dg.AssetSpec(RAW_TRADES, group_name="raw", kinds={"duckdb"},
                     description="Trades (aggressor side) of one symbol for one UTC day (table ``raw_trades``).",
                     metadata={"table": "raw_trades", "columns": ", ".join(TRADE_COLUMNS)}),
    ],
    partitions_def=market_partitions,
    pool=PARTITION_POOL,
    check_specs=[*sql_check_specs("raw_l2_snapshots"), *sql_check_specs("raw_trades")],
    name="raw_partition",
)
def raw_partition(context: dg.AssetExecutionContext, duckdb: AtraDuckDB, raw_source: RawSourceResource):
    """Book and trades of one partition: every raw rule judged on the staged rows, then both
    tables written in one transaction; a failed blocking rule refuses the partition and keeps
    the stored rows of both tables."""
    window = partition_window(context)
    # the collector's rows are in the database file; every other source needs the partition only
    connect = duckdb.get_connection if raw_source.kind == "ccxt" else duckdb.partition_connection
    with connect() as conn:
        staged = stage_raw(conn, raw_source.spec(), window)
        previous = refuse_other_source(conn, staged, raw_source.replace_source)
        outcomes = staged.outcomes(conn, raw_source.check_params(window.symbol))
        try:
            written = write_raw(conn, staged, outcomes)
        except PartitionRefused as refused:
            raise dg.Failure(str(refused), metadata={
                "checks": dg.MetadataValue.md(checks_summary_markdown([o for t in outcomes.values() for o in t])),
                **{f"first_offending_rows_{o.check.name}": dg.MetadataValue.md(markdown_table(o.sample))
                   for o in refused.failed}}) from refused
        described = {table: _described(conn, table, window, written[table]) for table in outcomes}
    context.log.info(f"raw {window.symbol} {window.start.date()}: {written}; source {staged.source}")
    for table, found in outcomes.items():
        yield dg.MaterializeResult(
            asset_key=table,
            metadata={
                **described[table],
                "source": dg.MetadataValue.json(_jsonable(staged.reports[table])),
                "source_replaced": dg.MetadataValue.json(previous) if previous and previous != staged.source else "no",
                "checks": dg.MetadataValue.md(checks_summary_markdown(found)),
            },
            check_results=[check_result(o) for o in found],
        )


def _described(conn, table: str, window, written: dict) -> dict:
    first, last = partition_time_range(conn, table, window)
    preview = read_partition(conn, table, window, limit=5)
    return {
        "dagster/row_count": dg.MetadataValue.int(written["inserted"]),
        "rows_replaced": dg.MetadataValue.int(written["deleted"]),
        "first_ts": str(first),
        "last_ts": str(last),
        "preview": dg.MetadataValue.md(markdown_table(preview[L2_COLUMNS[:7]] if table == "raw_l2_snapshots"
                                                      else preview)),
    }


def _jsonable(report: dict) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool, list, dict, type(None))) else str(v))
            for k, v in report.items()}
