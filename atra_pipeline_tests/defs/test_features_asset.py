"""The features asset through Dagster: two days in order, every check passing, previous-day lineage."""

from __future__ import annotations

import dagster as dg

from atra_pipeline.definitions import defs
from atra_pipeline.defs import features, raw
from atra_pipeline.partitions import market_partitions, partition_key
from atra_pipeline.resources import AtraDuckDB, RawSourceResource
from atra_pipeline_tests.defs.helpers import check_results, count_rows


def test_features_for_two_days_pass_every_check(tmp_path):
    resources = {"duckdb": AtraDuckDB(database=str(tmp_path / "atra.duckdb")), "raw_source": RawSourceResource()}
    for day in ("2024-08-07", "2024-08-08"):
        result = dg.materialize([*raw.assets, *raw.asset_checks, *features.assets],
                                partition_key=partition_key(day, "SOLUSDT"), resources=resources, raise_on_error=False)
        assert result.success
        checks = {k: v for k, v in check_results(result).items() if k.startswith("features.")}
        assert len(checks) == 5 and all(checks.values()), checks
    meta = result.asset_materializations_for_node("features")[0].metadata
    assert meta["dagster/row_count"].value == 1440 and meta["data_from"].value == "2024-08-07 22:00:00"  # look-back: 1 h of rolling steps + 1 h windows
    assert count_rows(tmp_path / "atra.duckdb", "features") == 2 * 1440


def test_features_depend_on_this_and_the_previous_day_of_the_same_symbol():
    key = dg.AssetKey("features")
    assert {dg.AssetKey("raw_l2_snapshots"), dg.AssetKey("raw_trades")} <= defs.resolve_asset_graph().get(key).parent_keys
    mapping = features.assets[0].get_partition_mapping(dg.AssetKey("raw_l2_snapshots"))
    child = market_partitions.subset_with_partition_keys([partition_key("2024-08-08", "ETHUSDT")])
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(child, market_partitions, market_partitions)
    assert sorted(str(k) for k in upstream.partitions_subset.get_partition_keys()) == [
        "2024-08-07|ETHUSDT", "2024-08-08|ETHUSDT"]
