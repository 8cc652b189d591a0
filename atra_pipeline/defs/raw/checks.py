"""The raw book's Great Expectations suite (distributions against the symbol's history) as a
Dagster asset check: a warning, run on the stored partition in DuckDB."""

import dagster as dg

from atra_pipeline.core.quality.expectations import BOOK_HISTORY, judge_book_history
from atra_pipeline.defs.common.checks import distribution_result
from atra_pipeline.defs.common.partitions import partition_window
from atra_pipeline.defs.common.resources import PARTITION_POOL, AtraDuckDB
from atra_pipeline.defs.raw.assets import RAW_L2


@dg.asset_check(asset=RAW_L2, name=BOOK_HISTORY.check, blocking=False, pool=PARTITION_POOL,
                description=BOOK_HISTORY.description)
def raw_l2_distributions(context: dg.AssetCheckExecutionContext, duckdb: AtraDuckDB) -> dg.AssetCheckResult:
    with duckdb.partition_connection() as conn:
        return distribution_result(judge_book_history(conn, partition_window(context.op_execution_context)))
