"""The features asset through Dagster: two days in order, every check passing, previous-day and
cross-asset lineage, and a clear failure when the reference's raw data are missing."""

from __future__ import annotations

import dagster as dg
import pytest

from atra_pipeline.definitions import defs
from atra_pipeline.defs import features, raw
from atra_pipeline.defs.common.partitions import market_partitions, partition_key
from atra_pipeline.defs.common.resources import AtraDuckDB, RawSourceResource
from atra_pipeline_tests.conftest import make_book, make_trades
from atra_pipeline_tests.support.materialize import check_results, count_rows, materialize_raw


@pytest.mark.slow  # two days x two symbols of raw data and features through Dagster
def test_features_for_two_days_pass_every_check(tmp_path):
    resources = {"duckdb": AtraDuckDB(database=str(tmp_path / "atra.duckdb")), "raw_source": RawSourceResource()}
    for day in ("2024-08-07", "2024-08-08"):
        assert materialize_raw(tmp_path / "atra.duckdb", day, "BTCUSDT").success  # SOLUSDT's cross-asset reference
        result = dg.materialize([*raw.assets, *raw.asset_checks, *features.assets],
                                partition_key=partition_key(day, "SOLUSDT"), resources=resources, raise_on_error=False)
        assert result.success
        checks = {k: v for k, v in check_results(result).items() if k.startswith("features.")}
        assert len(checks) == 6 and all(checks.values()), checks
    meta = result.asset_materializations_for_node("features")[0].metadata
    # look-back: 1 h of rolling steps + 1 h windows
    assert meta["dagster/row_count"].value == 1440 and meta["data_from"].value == "2024-08-07 22:00:00"
    assert meta["cross_asset_peers"].value == "BTCUSDT" and meta["cross_asset_data_from"].value == "2024-08-07 22:00:00"
    assert count_rows(tmp_path / "atra.duckdb", "features") == 2 * 1440


def _upstream(asset: str, date: str, symbol: str) -> list[str]:
    mapping = features.assets[0].get_partition_mapping(dg.AssetKey(asset))
    child = market_partitions.subset_with_partition_keys([partition_key(date, symbol)])
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(child, market_partitions, market_partitions)
    return sorted(str(k) for k in upstream.partitions_subset.get_partition_keys())


def test_features_depend_on_this_and_the_previous_day_trades_of_the_symbol_and_books_of_every_symbol():
    key = dg.AssetKey("features")
    parents = defs.resolve_asset_graph().get(key).parent_keys
    assert {dg.AssetKey("raw_l2_snapshots"), dg.AssetKey("raw_trades")} <= parents
    assert _upstream("raw_trades", "2024-08-08", "ETHUSDT") == ["2024-08-07|ETHUSDT", "2024-08-08|ETHUSDT"]
    assert _upstream("raw_l2_snapshots", "2024-08-08", "ETHUSDT") == [
        f"{d}|{s}" for d in ("2024-08-07", "2024-08-08") for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]


def test_features_without_the_references_raw_data_fail_and_name_the_missing_partition(tmp_path):
    db = tmp_path / "atra.duckdb"
    assert materialize_raw(db, "2024-08-08", "ETHUSDT").success
    result = dg.materialize([*features.assets], partition_key=partition_key("2024-08-08", "ETHUSDT"),
                            resources={"duckdb": AtraDuckDB(database=str(db)), "raw_source": RawSourceResource()},
                            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "raw_l2_snapshots has no rows for 2024-08-08|BTCUSDT" in failure.event_specific_data.error.message
    assert count_rows(db, "raw_l2_snapshots", "ETHUSDT") > 0  # nothing else was touched


def test_a_partition_read_that_failed_a_blocking_check_stops_features_and_labels(tmp_path):
    """Across runs too: a stored failed blocking check of any partition a step reads (here a peer's
    book the day before) stops it before it reads anything, naming the check and the partition."""
    import duckdb

    from atra_pipeline.core.storage.database import prepare
    from atra_pipeline.defs import labels

    db = tmp_path / "atra.duckdb"
    with duckdb.connect(str(db)) as conn:
        prepare(conn)
        conn.execute("INSERT INTO asset_check_log VALUES ('raw_l2_snapshots', 'book_not_crossed', 'ETHUSDT', "
                     "'2024-08-07', false, now()), ('raw_l2_snapshots', 'gaps_within_limit', 'SOLUSDT', '2024-08-08', "
                     "false, now()), ('features', 'no_constant_columns', 'SOLUSDT', '2024-08-08', false, now())")
    resources = {"duckdb": AtraDuckDB(database=str(db)), "raw_source": RawSourceResource()}

    def failure(assets, symbol: str) -> str:
        result = dg.materialize(assets, partition_key=partition_key("2024-08-08", symbol), resources=resources,
                                raise_on_error=False)
        assert not result.success
        event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
        return event.event_specific_data.user_failure_data.description

    said = failure([*features.assets], "SOLUSDT")
    assert "features 2024-08-08|SOLUSDT not built" in said
    assert "raw_l2_snapshots.book_not_crossed on 2024-08-07|ETHUSDT" in said
    assert "gaps_within_limit" not in said  # a warning check does not block
    assert "features.no_constant_columns on 2024-08-08|SOLUSDT" in failure([*labels.assets], "SOLUSDT")
    assert count_rows(db, "labels") == 0
    with duckdb.connect(str(db), read_only=True) as conn:  # refused before the features table was even made
        assert not conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'features'").fetchone()[0]


def _twenty_minutes(tmp_path, expect_full_day: bool) -> tuple:
    """Every symbol's book and trades of 2024-08-08 00:00:00 .. 00:19:59 only (a partial capture),
    materialised; the features of ETHUSDT for that day with the same raw_source."""
    db = tmp_path / "atra.duckdb"
    source = RawSourceResource(kind="file", file_format="atra", expect_full_day=expect_full_day,
                               book_path=str(tmp_path / "book_{symbol}.parquet"),
                               trades_path=str(tmp_path / "trades_{symbol}.parquet"))
    for i, symbol in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
        book = make_book(1200, start="2024-08-08", mid=100.0 + i, symbol=symbol)
        book.to_parquet(tmp_path / f"book_{symbol}.parquet")
        make_trades(book).to_parquet(tmp_path / f"trades_{symbol}.parquet")
        assert materialize_raw(db, "2024-08-08", symbol, source).success
    result = dg.materialize([*features.assets], partition_key=partition_key("2024-08-08", "ETHUSDT"),
                            resources={"duckdb": AtraDuckDB(database=str(db)), "raw_source": source},
                            raise_on_error=False)
    return result, db


@pytest.mark.slow  # raw data and features through Dagster, twice
def test_a_partial_day_keeps_the_decision_times_its_book_covers_and_passes(tmp_path):
    result, db = _twenty_minutes(tmp_path, expect_full_day=False)
    assert result.success
    checks = {k: v for k, v in check_results(result).items() if k.startswith("features.")}
    assert all(checks.values()), checks
    # decision times 00:00 .. 00:20: the last snapshot at 00:19:59 is fresh until 00:20:29
    assert count_rows(db, "features") == 21
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    constant = evaluations["no_constant_columns"].metadata
    assert "ret_1m" in constant["not_judged_too_few_rows"].value  # 20 rows are no evidence of a frozen column


def test_the_same_partial_capture_read_as_a_full_day_fails_book_fresh(tmp_path):
    # before issue 15 this wrote 1,440 rows, 23 h 40 min of them from the stale 00:19:59 book
    result, db = _twenty_minutes(tmp_path, expect_full_day=True)
    checks = check_results(result)
    assert checks["features.book_fresh"] is False
    stale = {e.check_name: e for e in result.get_asset_check_evaluations()}["book_fresh"].metadata
    assert stale["stale_rows"].value == 1440 - 21 and stale["first_stale"].value[0] == "2024-08-08 00:21:00"
