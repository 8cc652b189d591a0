"""Labels stage: CUSUM events, the primary model's side, meta-labels and sample weights per partition."""

import dagster as dg
import pandas as pd

from atra_pipeline.core.labels.partition import LABEL_COLUMNS, LabelSettings, label_partition
from atra_pipeline.core.quality.rules import record_check_outcomes, run_asset_checks
from atra_pipeline.core.storage.database import read_partition, replace_partition
from atra_pipeline.core.storage.partition_settings import record_partition_settings
from atra_pipeline.defs.common.checks import (
    check_result,
    checks_summary_markdown,
    markdown_table,
    refuse_failed_upstream,
    sql_check_specs,
)
from atra_pipeline.defs.common.config import settings_config
from atra_pipeline.defs.common.partitions import market_partitions, partition_window
from atra_pipeline.defs.common.resources import PARTITION_POOL, AtraDuckDB
from atra_pipeline.defs.features.assets import features
from atra_pipeline.defs.raw.assets import RAW_L2

# The symbol's book of the previous date (volatility and CUSUM warm-up), this date and the next
# one (a barrier path runs up to max_holding past midnight); the next date may not exist yet.
PREVIOUS_SAME_NEXT_DAY = dg.MultiPartitionMapping({
    "date": dg.DimensionPartitionMapping(
        "date", dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=1,
                                              allow_nonexistent_upstream_partitions=True)),
    "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
})
LabelsConfig = settings_config(LabelSettings, name="LabelsConfig",
                               doc="How events are chosen and labelled (core LabelSettings).")


@dg.asset(
    partitions_def=market_partitions,
    pool=PARTITION_POOL,
    group_name="labels",
    kinds={"duckdb"},
    deps=[features, dg.AssetDep(RAW_L2, partition_mapping=PREVIOUS_SAME_NEXT_DAY)],
    check_specs=sql_check_specs("labels"),
    metadata={"table": "labels", "columns": ", ".join(LABEL_COLUMNS)},
)
def labels(context: dg.AssetExecutionContext, config: LabelsConfig, duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """Meta-labels of the order-flow momentum primary model at CUSUM events, with sample weights (table ``labels``).

    Events whose barrier path is not complete yet (the next date's book not stored) are left out
    and counted (``left_out_incomplete``); materialise again once the next date is in.
    """
    window = partition_window(context)
    settings = config.settings()
    with duckdb.partition_connection() as conn:
        refuse_failed_upstream(context, conn, ["features", "raw_l2_snapshots"])
        frame, report = label_partition(conn, window, settings)
        written = replace_partition(conn, "labels", frame, LABEL_COLUMNS, window)
        outcomes = run_asset_checks(conn, "labels", window, {"max_holding_s": settings.max_holding_s})
        record_check_outcomes(conn, "labels", window, {o.check.name: o.passed for o in outcomes})
        record_partition_settings(conn, "labels", window, {"step_s": report["step_s"], **report["settings"]})
        preview = read_partition(conn, "labels", window, limit=5)
    context.log.info(f"labels {window.symbol} {window.start.date()}: {written}; "
                     f"{report['left_out_incomplete']} incomplete")
    classes = pd.DataFrame({"label": [1, 0], "share": [report["share_label_1"], report["share_label_0"]],
                            "events": [int((frame["label"] == 1).sum()), int((frame["label"] == 0).sum())]})
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(written["inserted"]),
            "cusum_events": report["cusum_events"],
            "left_out_incomplete": report["left_out_incomplete"],
            "left_out_no_side": report["left_out_no_side"],
            "class_shares": dg.MetadataValue.md(markdown_table(classes)),
            "barriers": dg.MetadataValue.json(report["barriers"]),
            "path_end": report["path_end"],
            "report": dg.MetadataValue.json({k: v for k, v in report.items() if k != "settings"}),
            "settings": dg.MetadataValue.json({k: list(v) if isinstance(v, tuple) else v
                                               for k, v in report["settings"].items()}),
            "checks": dg.MetadataValue.md(checks_summary_markdown(outcomes)),
            "preview": dg.MetadataValue.md(markdown_table(preview)),
        },
        check_results=[check_result(o) for o in outcomes],
    )
