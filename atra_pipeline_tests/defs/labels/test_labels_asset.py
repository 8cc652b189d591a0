"""The labels asset through Dagster: checks passing, incomplete paths counted until the next date
is stored, idempotent re-runs, lineage to features and to the previous, same and next day's book."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from atra_pipeline.defs import features, labels
from atra_pipeline.defs.common.partitions import market_partitions, partition_key
from atra_pipeline.defs.common.resources import AtraDuckDB, RawSourceResource
from atra_pipeline_tests.support.materialize import check_results, count_rows, materialize_raw

pytestmark = pytest.mark.slow  # its fixture stores two days of raw data and features through Dagster

DAYS = ("2024-08-07", "2024-08-08")


def _materialize(db, assets, day: str, symbol: str = "ETHUSDT", config: dict | None = None):
    return dg.materialize([*assets], partition_key=partition_key(day, symbol), raise_on_error=False,
                          resources={"duckdb": AtraDuckDB(database=str(db)), "raw_source": RawSourceResource()},
                          run_config={"ops": {"labels": {"config": config}}} if config else None)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Raw books and trades of ETHUSDT and its reference BTCUSDT, and ETHUSDT's features, on both days."""
    db = tmp_path_factory.mktemp("labels") / "atra.duckdb"
    for day in DAYS:
        for symbol in ("BTCUSDT", "ETHUSDT"):
            assert materialize_raw(db, day, symbol).success
        assert _materialize(db, features.assets, day).success
    return db


def _labels_meta(result):
    return result.asset_materializations_for_node("labels")[0].metadata


def test_labels_pass_every_check_and_count_paths_waiting_for_the_next_date(stored):
    last = _materialize(stored, labels.assets, DAYS[1])  # 2024-08-09 is not stored: late paths incomplete
    assert last.success
    checks = check_results(last)
    assert len(checks) == 5 and all(checks.values()), checks
    meta = _labels_meta(last)
    assert meta["left_out_incomplete"].value > 0
    assert meta["dagster/row_count"].value == count_rows(stored, "labels", "ETHUSDT") > 50

    first = _materialize(stored, labels.assets, DAYS[0])  # its paths run into 2024-08-08, which is stored
    assert first.success and all(check_results(first).values())
    assert _labels_meta(first)["left_out_incomplete"].value == 0
    with duckdb.connect(str(stored), read_only=True) as conn:
        crossing = conn.execute("SELECT count(*) FROM labels WHERE ts < DATE '2024-08-08' AND t1 >= DATE '2024-08-08'"
                                ).fetchall()[0][0]
        weights = conn.execute("SELECT sum(weight), count(*) FROM labels WHERE ts < DATE '2024-08-08'").fetchall()[0]
    assert crossing > 0  # labels of the evening end on the next day's book
    assert weights[0] == pytest.approx(weights[1])  # weights sum to the number of events


def test_rematerializing_replaces_the_partition(stored):
    assert _materialize(stored, labels.assets, DAYS[0]).success
    before = count_rows(stored, "labels")
    again = _materialize(stored, labels.assets, DAYS[0], config={"max_holding_s": 120})
    assert again.success and _labels_meta(again)["settings"].value["max_holding_s"] == 120
    with duckdb.connect(str(stored), read_only=True) as conn:
        longest = conn.execute("SELECT max(epoch(t1 - ts)) FROM labels WHERE ts < DATE '2024-08-08'").fetchall()[0][0]
        days = conn.execute("SELECT count(DISTINCT ts::DATE) FROM labels").fetchall()[0][0]
    assert longest <= 120 and days <= 2 and count_rows(stored, "labels") != before


def test_labels_without_features_fail_and_name_the_partition(tmp_path):
    result = _materialize(tmp_path / "empty.duckdb", labels.assets, DAYS[0])
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "features 2024-08-07|ETHUSDT: no feature rows" in failure.event_specific_data.error.to_string()


def test_labels_depend_on_features_and_on_the_previous_same_and_next_day_book():
    asset = labels.assets[0]
    child = market_partitions.subset_with_partition_keys([partition_key("2024-08-08", "ETHUSDT")])
    mapping = asset.get_partition_mapping(dg.AssetKey("raw_l2_snapshots"))
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(child, market_partitions, market_partitions)
    assert sorted(str(k) for k in upstream.partitions_subset.get_partition_keys()) == [
        "2024-08-07|ETHUSDT", "2024-08-08|ETHUSDT", "2024-08-09|ETHUSDT"]
    assert dg.AssetKey("features") in asset.dependency_keys
    assert {s.name for s in asset.check_specs} == {"t1_not_before_event", "holding_within_max",
                                                   "values_in_allowed_sets", "weights_finite_positive",
                                                   "class_share_at_least"}
    assert {s.name: s.blocking for s in asset.check_specs}["class_share_at_least"] is False
