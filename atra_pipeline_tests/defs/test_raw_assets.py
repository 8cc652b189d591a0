"""The raw stage through Dagster: checks pass on good data, bad data is refused or flagged,
writes are idempotent, and a failed write keeps the previous rows."""

from __future__ import annotations

import pandas as pd
import pytest

from atra_pipeline.core.quality import checks_for
from atra_pipeline.resources import RawSourceResource
from atra_pipeline_tests.conftest import make_book, make_trades
from atra_pipeline_tests.defs.helpers import check_results, count_rows, materialize_raw

DAY = "2024-08-08"


def _file_source(tmp_path, book: pd.DataFrame, trades: pd.DataFrame, **extra) -> RawSourceResource:
    book.to_parquet(tmp_path / "book_{symbol}_{date}.parquet".format(symbol="BTCUSDT", date=DAY))
    trades.to_csv(tmp_path / "trades_{symbol}_{date}.csv".format(symbol="BTCUSDT", date=DAY), index=False)
    return RawSourceResource(kind="file", file_format="atra", expect_full_day=False,
                             book_path=str(tmp_path / "book_{symbol}_{date}.parquet"),
                             trades_path=str(tmp_path / "trades_{symbol}_{date}.csv"), **extra)


def test_synthetic_partition_materialises_with_every_check_passing(tmp_path):
    db = tmp_path / "atra.duckdb"
    result = materialize_raw(db, DAY, "ETHUSDT")
    assert result.success
    checks = check_results(result)
    expected = {f"{c.asset}.{c.name}" for c in checks_for("raw_l2_snapshots") + checks_for("raw_trades")}
    expected |= {"raw_l2_snapshots.great_expectations_suite", "raw_trades.great_expectations_suite"}
    assert set(checks) == expected
    assert all(checks.values()), {k for k, v in checks.items() if not v}
    assert count_rows(db, "raw_l2_snapshots") == 86_400
    meta = result.asset_materializations_for_node("raw_l2_snapshots")[0].metadata
    assert meta["dagster/row_count"].value == 86_400
    assert meta["first_ts"].value == f"{DAY} 00:00:00"


def test_rematerialising_replaces_instead_of_duplicating(tmp_path):
    db = tmp_path / "atra.duckdb"
    book = make_book(300)
    source = _file_source(tmp_path, book, make_trades(book))
    for _ in range(2):
        assert materialize_raw(db, DAY, "BTCUSDT", source).success
    assert count_rows(db, "raw_l2_snapshots") == 300
    assert count_rows(db, "raw_trades") == 60


def test_bad_file_fails_the_run_names_the_spot_and_keeps_previous_rows(tmp_path):
    db = tmp_path / "atra.duckdb"
    book = make_book(300)
    source = _file_source(tmp_path, book, make_trades(book))
    assert materialize_raw(db, DAY, "BTCUSDT", source).success
    broken = make_book(500)
    broken.loc[42, "ask_px_0"] = broken.loc[42, "bid_px_0"] - 0.01  # crossed
    broken.loc[42, [f"ask_px_{i}" for i in range(1, 10)]] = broken.loc[42, "ask_px_0"] + 0.01 * pd.RangeIndex(1, 10)
    source = _file_source(tmp_path, broken, make_trades(broken))
    result = materialize_raw(db, DAY, "BTCUSDT", source)
    assert not result.success
    failure = result.failure_data_for_node("raw_l2_snapshots").error.to_string()
    assert "DataError" in failure and "book_BTCUSDT" in failure and "row 43" in failure and "crossed book" in failure
    assert count_rows(db, "raw_l2_snapshots") == 300  # the previous partition is intact
    assert count_rows(db, "raw_trades") == 60


def test_failing_blocking_check_fails_the_run_but_warnings_do_not(tmp_path):
    db = tmp_path / "atra.duckdb"
    book = make_book(300).drop(index=range(100, 120))  # a 21 s gap: a warning only
    trades = make_trades(book)
    result = materialize_raw(db, DAY, "BTCUSDT", _file_source(tmp_path, book, trades))
    assert result.success and check_results(result)["raw_l2_snapshots.gaps_within_limit"] is False
    trades.loc[trades.index[3], "price"] *= 1.02  # 200 bps off the mid: valid input, failing a blocking check
    result = materialize_raw(db, DAY, "BTCUSDT", _file_source(tmp_path, book, trades))
    assert not result.success
    assert check_results(result)["raw_trades.price_near_mid"] is False
    assert result.failure_data_for_node("raw_trades") is not None


@pytest.mark.realdata
@pytest.mark.parametrize("date", ["2024-08-08", "2024-08-09"])
@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_real_binance_capture_passes_every_check(tmp_path, shared_data, date, symbol):
    source = RawSourceResource(kind="file", file_format="binance", expect_full_day=False,
                               book_path=str(shared_data / "binance_spot_capture" / "{symbol_lower}_*.gz"))
    db = tmp_path / "atra.duckdb"
    result = materialize_raw(db, date, symbol, source)
    assert result.success
    checks = check_results(result)
    assert len(checks) == 11 and all(checks.values()), {k for k, v in checks.items() if not v}
    assert count_rows(db, "raw_l2_snapshots") > 200 and count_rows(db, "raw_trades") > 3000


@pytest.mark.realdata
@pytest.mark.parametrize("levels", [5, 25])
def test_tardis_sample_through_dagster(tmp_path, shared_data, levels):
    source = RawSourceResource(kind="file", file_format="tardis", expect_full_day=False,
                               book_path=str(shared_data / "tardis" / f"binance-futures_book_snapshot_{levels}_{{symbol}}.csv"))
    result = materialize_raw(tmp_path / "atra.duckdb", "2020-09-01", "BTCUSDT", source,
                             selection=["raw_l2_snapshots"])
    assert result.success
    checks = check_results(result)
    assert len(checks) == 7 and all(checks.values()), checks
    meta = result.asset_materializations_for_node("raw_l2_snapshots")[0].metadata
    assert meta["source"].value["levels_in_source"] == levels
