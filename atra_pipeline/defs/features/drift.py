"""Feature drift as a Dagster asset check: a partition's feature distributions against the
training partitions of the model that scores them (Great Expectations in DuckDB, a warning)."""

from pathlib import Path

import dagster as dg

from atra_pipeline.core.quality.expectations import FEATURE_DRIFT, DistributionOutcome, judge_feature_drift
from atra_pipeline.defs.common.checks import distribution_result
from atra_pipeline.defs.common.partitions import partition_window
from atra_pipeline.defs.common.resources import DUCKDB_POOL, AtraDuckDB


# The model registry is in the database file, also on the scale-out path (get_connection
# attaches the partition files there), hence the file's pool rather than the partitions'.
@dg.asset_check(asset="features", name=FEATURE_DRIFT.check, blocking=False, pool=DUCKDB_POOL,
                description=FEATURE_DRIFT.description)
def features_drift(context: dg.AssetCheckExecutionContext, duckdb: AtraDuckDB) -> dg.AssetCheckResult:
    if duckdb.storage_root and not Path(duckdb.database).exists():
        # partition steps on the partition files create no database file; without one there is
        # no registry, so no model, and opening it here would create it for nothing
        return distribution_result(DistributionOutcome(FEATURE_DRIFT, True, reason=(
            f"no model yet: no database file {duckdb.database}, where the model registry is")))
    with duckdb.get_connection() as conn:
        return distribution_result(judge_feature_drift(conn, partition_window(context.op_execution_context)))
