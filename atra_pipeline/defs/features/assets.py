"""Features stage: the microstructure catalogue per decision time, from the raw book."""

import dagster as dg
import pandas as pd

from atra_pipeline.core.features.build import (
    FEATURES_STAGE,
    KEY_COLUMNS,
    data_start,
    decision_times,
    ensure_features_table,
    keep_decisions,
    lookahead_mismatches,
    missing_peers,
    stale_decisions,
)
from atra_pipeline.core.features.checks import FeatureSettings, book_fresh_outcome, check_features, lookahead_outcome
from atra_pipeline.core.features.registry import FEATURES, cross_asset_peers, feature_columns
from atra_pipeline.core.quality.rules import record_check_outcomes
from atra_pipeline.core.storage.database import replace_partition
from atra_pipeline.core.storage.partition_settings import record_partition_settings
from atra_pipeline.defs.common.checks import (
    feature_check_result,
    feature_check_specs,
    markdown_table,
    refuse_failed_upstream,
)
from atra_pipeline.defs.common.config import settings_config
from atra_pipeline.defs.common.partitions import (
    market_partitions,
    partition_window,
    reference_symbol,
    symbol_partitions,
)
from atra_pipeline.defs.common.resources import PARTITION_POOL, AtraDuckDB, RawSourceResource
from atra_pipeline.defs.raw.assets import RAW_L2, RAW_TRADES

# This date and the previous one (windows reach over midnight); the previous may not exist (first day).
_SAME_AND_PREVIOUS_DATE = dg.DimensionPartitionMapping(
    "date", dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True))
# Trades: the partition's own symbol. Books: every symbol, because the cross-asset family reads the
# reference's book (or, for the reference, all the others').
SAME_SYMBOL = dg.MultiPartitionMapping({
    "date": _SAME_AND_PREVIOUS_DATE, "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping())})
ALL_SYMBOLS = dg.MultiPartitionMapping({
    "date": _SAME_AND_PREVIOUS_DATE, "symbol": dg.DimensionPartitionMapping("symbol", dg.AllPartitionMapping())})


FeaturesConfig = settings_config(FeatureSettings, name="FeaturesConfig",
                                 doc="How a partition's features are built and checked (core FeatureSettings).")


REGISTRY_TABLE = markdown_table(pd.DataFrame([{"feature": f.name, "family": f.family, "window": f.window or "",
                                               "description": f.description} for f in FEATURES]),
                                max_rows=len(FEATURES))


@dg.asset(
    partitions_def=market_partitions,
    pool=PARTITION_POOL,
    group_name="features",
    kinds={"duckdb"},
    deps=[dg.AssetDep(RAW_L2, partition_mapping=ALL_SYMBOLS),
          dg.AssetDep(RAW_TRADES, partition_mapping=SAME_SYMBOL)],
    check_specs=feature_check_specs(),
    metadata={"table": "features", "feature_registry": dg.MetadataValue.md(REGISTRY_TABLE)},
)
def features(context: dg.AssetExecutionContext, config: FeaturesConfig, duckdb: AtraDuckDB,
             raw_source: RawSourceResource) -> dg.MaterializeResult:
    """One row per symbol per decision time of the catalogue in ``sql/features/`` (table ``features``).

    With ``raw_source.expect_full_day: false`` (the raw data's own switch) a partial day keeps
    the decision times its book covers, and the checks judge those."""
    window = partition_window(context)
    settings = config.settings()
    peers = cross_asset_peers(window.symbol, symbol_partitions.get_partition_keys(), reference_symbol())
    with duckdb.partition_connection() as conn:
        refuse_failed_upstream(context, conn, ["raw_l2_snapshots", "raw_trades"])
        if missing := missing_peers(conn, window, peers):
            raise dg.Failure(
                f"features {window.start.date()}|{window.symbol}: the cross-asset family reads the books of "
                f"{', '.join(peers)}, but raw_l2_snapshots has no rows for "
                f"{', '.join(f'{window.start.date()}|{m}' for m in missing)}. Materialize raw_l2_snapshots for "
                "every symbol of the date first (`atra run` and a backfill do).")
        ensure_features_table(conn)
        expected = decision_times(conn, window, settings.step_s, full_day=raw_source.expect_full_day)
        sample = expected[[0, len(expected) // 2, -1]][: settings.lookahead_samples] if len(expected) else expected
        mismatches = lookahead_mismatches(conn, window, sample, settings.step_s, peers=peers)  # leaves the full build
        keep_decisions(conn, expected)
        first_data = data_start(conn, window, peers, settings.step_s)
        frame = conn.execute(f"SELECT * FROM {FEATURES_STAGE}").fetchdf()
        outcomes = check_features(frame, expected, first_data, settings.max_nan_share, settings.step_s)
        stale = stale_decisions(conn, window.start)
        outcomes.append(book_fresh_outcome(stale[stale.isin(expected)], len(frame), settings.max_stale_share))
        outcomes.append(lookahead_outcome(mismatches, sample))
        written = replace_partition(conn, "features", FEATURES_STAGE, KEY_COLUMNS + feature_columns(), window)
        record_check_outcomes(conn, "features", window, {o.name: o.passed for o in outcomes})
        record_partition_settings(conn, "features", window, {
            "step_s": settings.step_s, "universe": sorted(symbol_partitions.get_partition_keys()),
            "reference_symbol": reference_symbol()})
    nan_share = frame[feature_columns()].isna().mean().sort_values(ascending=False)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(written["inserted"]),
            "decision_step_s": settings.step_s,
            "day": "full" if raw_source.expect_full_day
                else f"partial: the {len(expected)} decision times its book covers",
            "features": len(feature_columns()),
            "first_ts": str(frame["ts"].min()),
            "last_ts": str(frame["ts"].max()),
            "data_from": str(first_data["ofi"]),  # the symbol's own book: every family but cross_asset
            "cross_asset_peers": ", ".join(peers) or "none (one-symbol universe: cross-asset columns NULL)",
            "cross_asset_data_from": str(first_data["cross_asset"]),
            "nan_share_top": dg.MetadataValue.md(markdown_table(nan_share.head(8).rename("nan share").reset_index())),
        },
        check_results=[feature_check_result(o) for o in outcomes],
    )
