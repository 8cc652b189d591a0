"""The raw stage through Dagster: checks pass on good data, bad data is refused or flagged,
writes are idempotent, and a failed write keeps the previous rows."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from atra_pipeline.core.quality.expectations import GE_SUITES
from atra_pipeline.core.quality.rules import checks_for
from atra_pipeline.defs.common.resources import RawSourceResource
from atra_pipeline_tests.conftest import make_book, make_trades
from atra_pipeline_tests.support.materialize import check_results, count_rows, materialization, materialize_raw

DAY = "2024-08-08"
# the Great Expectations suites on the raw tables, each a check of its own
RAW_GE_CHECKS = {f"{s.asset}.{s.check}" for s in GE_SUITES if s.asset in ("raw_l2_snapshots", "raw_trades")}


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
    expected |= RAW_GE_CHECKS
    assert set(checks) == expected
    assert all(checks.values()), {k for k, v in checks.items() if not v}
    assert count_rows(db, "raw_l2_snapshots") == 86_400
    meta = materialization(result, "raw_l2_snapshots").metadata
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
    failure = result.failure_data_for_node("raw_partition").error.to_string()
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
    failure = _failure(result)
    assert "price_near_mid: 1 offending rows" in failure and "nothing was written" in failure


def _failure(result) -> str:
    return result.failure_data_for_node("raw_partition").error.to_string()


def _stored(db) -> tuple[int, int, float]:
    """Rows of each raw table and the trades' total amount: what a refused write must not change."""
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute("SELECT (SELECT count(*) FROM raw_l2_snapshots), (SELECT count(*) FROM raw_trades), "
                            "(SELECT sum(amount) FROM raw_trades)").fetchall()[0]


def _broken_trades_file(trades):  # a price that is not a number, at data row 8
    bad = trades.astype({"price": object})
    bad.loc[bad.index[7], "price"] = "12x.5"
    return bad


@pytest.mark.parametrize("spoil, reason", [
    (lambda t: t.assign(price=t["price"] * 1000), "price_near_mid"),   # trades priced x1000
    (lambda t: t.assign(amount=t["amount"].where(t.index != 5, 1e12)), "notional_plausible"),
    (_broken_trades_file, "row 8"),                                     # unreadable trades: the book waits too
])
def test_a_refused_partition_keeps_both_tables_as_they_were(tmp_path, spoil, reason):
    db = tmp_path / "atra.duckdb"
    book = make_book(300)
    assert materialize_raw(db, DAY, "BTCUSDT", _file_source(tmp_path, book, make_trades(book))).success
    before = _stored(db)
    new_book = make_book(600)  # a different, valid book: written only if the trades are good too
    result = materialize_raw(db, DAY, "BTCUSDT", _file_source(tmp_path, new_book, spoil(make_trades(new_book))))
    assert not result.success
    assert reason in _failure(result)
    assert _stored(db) == before
    assert result.get_asset_materialization_events() == []


def test_plausibility_bounds_are_set_per_symbol(tmp_path):
    db = tmp_path / "atra.duckdb"
    book = make_book(300)
    trades = make_trades(book)
    largest = float((trades["price"] * trades["amount"]).max())
    tight = {"BTCUSDT": {"max_trade_notional": largest / 2}}
    result = materialize_raw(db, DAY, "BTCUSDT", _file_source(tmp_path, book, trades, plausibility=tight))
    assert not result.success and "notional_plausible" in _failure(result)
    other = {"ETHUSDT": {"max_trade_notional": largest / 2}}  # another symbol's bound does not apply
    assert materialize_raw(db, DAY, "BTCUSDT", _file_source(tmp_path, book, trades, plausibility=other)).success


@pytest.mark.slow  # three raw runs through Dagster
def test_rows_from_another_source_are_replaced_only_when_asked(tmp_path):
    db = tmp_path / "atra.duckdb"
    book = make_book(300)
    assert materialize_raw(db, DAY, "BTCUSDT", _file_source(tmp_path, book, make_trades(book))).success
    before = _stored(db)
    result = materialize_raw(db, DAY, "BTCUSDT")  # the launchpad's default: synthetic
    assert not result.success
    message = _failure(result)
    assert "file (atra) from" in message and "book_BTCUSDT_2024-08-08.parquet" in message
    assert "this run's source is synthetic" in message and "replace_source: true" in message
    assert _stored(db) == before
    result = materialize_raw(db, DAY, "BTCUSDT", RawSourceResource(replace_source=True))
    assert result.success and _stored(db)[0] == 86_400
    replaced = materialization(result, "raw_l2_snapshots").metadata["source_replaced"].value
    assert replaced["kind"] == "file" and replaced["format"] == "atra"
    # the same source again replaces freely, and says it replaced nothing of another source
    result = materialize_raw(db, DAY, "BTCUSDT", RawSourceResource(seed=8))
    assert result.success and materialization(result, "raw_trades").metadata["source_replaced"].value == "no"


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
    every = len(checks_for("raw_l2_snapshots")) + len(checks_for("raw_trades")) + len(RAW_GE_CHECKS)
    assert len(checks) == every and all(checks.values()), {k for k, v in checks.items() if not v}
    assert count_rows(db, "raw_l2_snapshots") > 200 and count_rows(db, "raw_trades") > 3000


@pytest.mark.realdata
@pytest.mark.parametrize("levels", [5, 25])
def test_tardis_sample_through_dagster(tmp_path, shared_data, levels):
    sample = shared_data / "tardis" / f"binance-futures_book_snapshot_{levels}_BTCUSDT.csv"
    stamps = pd.read_csv(sample, usecols=["timestamp"])["timestamp"]
    # the samples hold no trades, and a partition is its book and its trades: two at the first
    # snapshot's time, in Tardis's trades layout, priced at its mid
    first = pd.read_csv(sample, nrows=1)
    mid = (first["asks[0].price"].iloc[0] + first["bids[0].price"].iloc[0]) / 2
    pd.DataFrame({"exchange": "binance-futures", "symbol": "BTCUSDT", "timestamp": stamps.iloc[0] + [1, 2],
                  "local_timestamp": stamps.iloc[0] + [5, 6], "id": ["t1", "t2"], "side": ["buy", "sell"],
                  "price": mid, "amount": [0.5, 0.25]}).to_csv(tmp_path / "trades.csv", index=False)
    source = RawSourceResource(kind="file", file_format="tardis", expect_full_day=False,
                               book_path=str(sample).replace("BTCUSDT", "{symbol}"),
                               trades_path=str(tmp_path / "trades.csv"))
    result = materialize_raw(tmp_path / "atra.duckdb", "2020-09-01", "BTCUSDT", source)
    assert result.success
    checks = check_results(result)
    every = len(checks_for("raw_l2_snapshots")) + len(checks_for("raw_trades")) + len(RAW_GE_CHECKS)
    assert len(checks) == every, checks
    assert all(checks.values()), checks
    meta = materialization(result, "raw_l2_snapshots").metadata
    assert meta["source"].value["levels_in_source"] == levels
