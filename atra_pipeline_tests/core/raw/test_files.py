"""File sources: Tardis and our own schema, and the errors bad files get."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.quality.rules import run_asset_checks
from atra_pipeline.core.raw import files
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, replace_partition
from atra_pipeline_tests.conftest import make_book, make_trades

TARDIS_DAY = PartitionWindow.for_day("BTCUSDT", "2020-09-01")


def _tardis_csv(book: pd.DataFrame, path, levels: int = 10) -> None:
    """Write ``book`` in Tardis book_snapshot_<levels> layout."""
    out = pd.DataFrame({"exchange": "binance-futures", "symbol": book["symbol"],
                        "timestamp": book["ts"].astype("int64"), "local_timestamp": book["ts"].astype("int64") + 5000})
    for i in range(levels):
        out[f"asks[{i}].price"] = book[f"ask_px_{i}"]
        out[f"asks[{i}].amount"] = book[f"ask_sz_{i}"]
        out[f"bids[{i}].price"] = book[f"bid_px_{i}"]
        out[f"bids[{i}].amount"] = book[f"bid_sz_{i}"]
    out.to_csv(path, index=False)


@pytest.mark.realdata
@pytest.mark.parametrize("levels", [5, 25])
def test_tardis_samples_import_and_pass_every_check(conn, shared_data, levels):
    path = shared_data / "tardis" / f"binance-futures_book_snapshot_{levels}_BTCUSDT.csv"
    report = files.stage_book(conn, [path], "tardis", TARDIS_DAY)
    assert report["rows_staged"] == 10 and report["levels_in_source"] == levels
    assert ("padded_levels" in report) == (levels < 10)
    replace_partition(conn, "raw_l2_snapshots", files.BOOK_STAGE, L2_COLUMNS, TARDIS_DAY)
    stored = conn.execute("SELECT * FROM raw_l2_snapshots ORDER BY ts").fetchdf()
    raw = pd.read_csv(path)
    assert stored["ts"].iloc[0] == pd.Timestamp(int(raw["timestamp"].iloc[0]), unit="us")
    assert stored["bid_px_0"].tolist() == raw["bids[0].price"].tolist()
    assert stored["ask_sz_4"].tolist() == raw["asks[4].amount"].tolist()
    assert stored["bid_px_9"].isna().all() == (levels == 5)
    outcomes = run_asset_checks(conn, "raw_l2_snapshots", TARDIS_DAY, {"edges": False, "min_rows": 1})
    assert all(o.passed for o in outcomes), [o.message() for o in outcomes if not o.passed]


def test_tardis_keeps_top_ten_levels_and_last_state_per_timestamp(conn, tmp_path):
    book = make_book(20, start="2020-09-01")
    path = tmp_path / "book.csv"
    _tardis_csv(book, path)
    wide = pd.read_csv(path)
    for i in range(10, 12):  # a 12-level file: levels 10 and 11 are dropped
        wide[f"asks[{i}].price"], wide[f"asks[{i}].amount"] = 200.0 + i, 1.0
        wide[f"bids[{i}].price"], wide[f"bids[{i}].amount"] = 50.0 - i, 1.0
    dup = wide.iloc[[5]].copy()
    dup["bids[0].amount"] = 99.0
    wide = pd.concat([wide.iloc[:6], dup, wide.iloc[6:]], ignore_index=True)
    wide.to_csv(path, index=False)
    report = files.stage_book(conn, [path], "tardis", TARDIS_DAY)
    staged = conn.execute(f"SELECT * FROM {files.BOOK_STAGE} ORDER BY ts").fetchdf()
    assert list(staged.columns) == L2_COLUMNS
    assert len(staged) == 20 and report["duplicate_ts_dropped"] == 1
    assert staged.loc[5, "bid_sz_0"] == 99.0  # the later of two snapshots at one timestamp


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_own_schema_round_trip(conn, tmp_path, window, suffix):
    book = make_book(50)
    trades = make_trades(book)
    book_path, trades_path = tmp_path / f"book{suffix}", tmp_path / f"trades{suffix}"
    if suffix == ".csv":
        book.to_csv(book_path, index=False)
        trades.to_csv(trades_path, index=False)
    else:
        book.to_parquet(book_path)
        trades.to_parquet(trades_path)
    files.stage_book(conn, [book_path], "atra", window)
    files.stage_trades(conn, [trades_path], "atra", window)
    staged_book = conn.execute(f"SELECT * FROM {files.BOOK_STAGE} ORDER BY ts").fetchdf()
    staged_trades = conn.execute(f"SELECT * FROM {files.TRADES_STAGE} ORDER BY ts").fetchdf()
    pd.testing.assert_frame_equal(staged_book, book, check_dtype=False)
    pd.testing.assert_frame_equal(staged_trades, trades, check_dtype=False)


def test_rows_of_other_symbols_and_days_are_left_out(conn, tmp_path, window):
    book = pd.concat([make_book(10), make_book(4, symbol="ETHUSDT"), make_book(3, start="2024-08-09")])
    path = tmp_path / "mixed.csv"
    book.sort_values("ts", kind="stable").to_csv(path, index=False)
    report = files.stage_book(conn, [path], "atra", window)
    assert (report["rows_read"], report["rows_other_symbols"], report["rows_outside_window"],
            report["rows_staged"]) == (17, 4, 3, 10)


def _write_bad(tmp_path, kind):
    book = make_book(30)
    path = tmp_path / f"{kind}.csv"
    if kind == "missing_column":
        book.drop(columns="ask_sz_3").to_csv(path, index=False)
        return path
    text = book.astype(object)
    if kind == "unparsable":
        text.loc[11, "bid_px_2"] = "12x.5"
    elif kind == "nan_price":
        text.loc[11, "ask_px_1"] = "nan"
    elif kind == "crossed":
        text.loc[11, "bid_px_0"] = 100.5
    elif kind == "unsorted":
        text.loc[11, "ts"] = book.loc[3, "ts"]
    elif kind == "inf_deep_price":  # an ascending side still: only the level rule sees it
        text.loc[11, "ask_px_9"] = "inf"
    elif kind == "zero_size":
        text.loc[11, "bid_sz_4"] = 0.0
    text.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind, row, column, problem", [
    ("missing_column", None, "ask_sz_3", "missing column"),
    ("unparsable", 12, "bid_px_2", "unparsable number '12x.5'"),
    ("nan_price", 12, "ask_px_1", "NaN price"),
    ("crossed", 12, "bid_px_0", "crossed book"),
    ("unsorted", 12, "ts", "time goes backwards"),
    # before: both reported at ask_sz_0 / bid_sz_0, whatever the level
    ("inf_deep_price", 12, "ask_px_9", "ask level without a finite price and size > 0 (price inf"),
    ("zero_size", 12, "bid_sz_4", "bid level without a finite price and size > 0"),
])
def test_bad_book_file_error_names_file_row_and_column(conn, tmp_path, window, kind, row, column, problem):
    path = _write_bad(tmp_path, kind)
    with pytest.raises(DataError) as err:
        files.stage_book(conn, [path], "atra", window)
    message = str(err.value)
    assert str(path) in message and problem in message and f"column '{column}'" in message
    assert err.value.row == row
    if row is not None:
        assert f"row {row}" in message


def test_tardis_error_names_the_files_own_column(conn, tmp_path):
    book = make_book(10, start="2020-09-01")
    path = tmp_path / "tardis.csv"
    _tardis_csv(book, path)
    raw = pd.read_csv(path).astype(object)
    raw.loc[4, "asks[2].price"] = "oops"
    raw.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row 5, column 'asks\[2\].price': unparsable number 'oops'"):
        files.stage_book(conn, [path], "tardis", TARDIS_DAY)


@pytest.mark.parametrize("mutate, column, problem", [
    (lambda t: t.__setitem__("side", t["side"].where(t.index != 2, "unknown")), "side", "side is not buy or sell"),
    (lambda t: t.__setitem__("price", t["price"].where(t.index != 2, float("nan"))), "price", "NaN or missing price"),
    (lambda t: t.__setitem__("amount", t["amount"].where(t.index != 2, -1.0)), "amount", "amount not a finite"),
])
def test_bad_trades_file_error(conn, tmp_path, window, mutate, column, problem):
    trades = make_trades(make_book(60))
    mutate(trades)
    path = tmp_path / "trades.csv"
    trades.to_csv(path, index=False)
    with pytest.raises(DataError, match=rf"row 3, column '{column}': {problem}"):
        files.stage_trades(conn, [path], "atra", window)


def test_tardis_trades(conn, tmp_path):
    trades = make_trades(make_book(40, start="2020-09-01"))
    raw = pd.DataFrame({"exchange": "binance-futures", "symbol": "BTCUSDT",
                        "timestamp": trades["ts"].astype("int64"), "local_timestamp": trades["ts"].astype("int64"),
                        "id": [str(1000 + i) for i in range(len(trades))], "side": trades["side"],
                        "price": trades["price"], "amount": trades["amount"]})
    path = tmp_path / "trades.csv"
    raw.to_csv(path, index=False)
    files.stage_trades(conn, [path], "tardis", TARDIS_DAY)
    staged = conn.execute(f"SELECT * FROM {files.TRADES_STAGE} ORDER BY ts").fetchdf()
    assert list(staged.columns) == TRADE_COLUMNS
    assert staged["trade_id"].tolist() == raw["id"].tolist()
    assert staged["ts"].tolist() == trades["ts"].tolist()


def test_zone_aware_parquet_and_offset_csv_are_stored_in_utc(conn, tmp_path, window):
    book = make_book(5, start="2024-08-08 10:00")
    aware = book.assign(ts=book["ts"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin"))
    aware.to_parquet(tmp_path / "aware.parquet")
    files.stage_book(conn, [tmp_path / "aware.parquet"], "atra", window)
    staged = conn.execute(f"SELECT ts FROM {files.BOOK_STAGE} ORDER BY ts").fetchdf()["ts"]
    assert staged.tolist() == book["ts"].tolist()
    text = book.astype(object)
    text["ts"] = [t.tz_localize("UTC").tz_convert("Asia/Tokyo").isoformat() for t in book["ts"]]  # +09:00
    text.to_csv(tmp_path / "offset.csv", index=False)
    files.stage_book(conn, [tmp_path / "offset.csv"], "atra", window)
    staged = conn.execute(f"SELECT ts FROM {files.BOOK_STAGE} ORDER BY ts").fetchdf()["ts"]
    assert staged.tolist() == book["ts"].tolist()


def test_gzipped_csv_is_read_whatever_its_name(conn, tmp_path, window):
    book = make_book(20)
    book.to_csv(tmp_path / "book.CSV.GZ", index=False, compression="gzip")
    assert files.stage_book(conn, [tmp_path / "book.CSV.GZ"], "atra", window)["rows_staged"] == 20


def test_unparsable_timestamp_names_row_and_column(conn, tmp_path, window):
    text = make_book(10).astype(object)
    text.loc[6, "ts"] = "yesterday at noon"
    text.to_csv(tmp_path / "bad_ts.csv", index=False)
    with pytest.raises(DataError, match=r"bad_ts.csv, row 7, column 'ts': unparsable timestamp 'yesterday at noon'"):
        files.stage_book(conn, [tmp_path / "bad_ts.csv"], "atra", window)


@pytest.mark.parametrize("stage", ["book", "trades"])
def test_a_corrupt_or_truncated_gzip_is_named(conn, tmp_path, window, stage):
    good = tmp_path / "good.csv"
    book = make_book(30)
    (book if stage == "book" else make_trades(book)).to_csv(good, index=False)
    whole = gzip.compress(good.read_bytes())
    garbled = tmp_path / "garbled.csv.gz"
    garbled.write_bytes(whole[:4] + b"garbage" * 20)  # before: zlib.error with no file name
    truncated = tmp_path / "truncated.csv.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    stage_files = files.stage_book if stage == "book" else files.stage_trades
    for bad in (garbled, truncated):
        with pytest.raises(DataError, match=rf"{bad.name}: cannot be read \(corrupt or truncated\?\)"):
            stage_files(conn, [good, bad], "atra", window)
