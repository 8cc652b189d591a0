"""Per-day Binance capture files: the book a day's replay ends in is stored with its partition and
the next day's file, which has no REST snapshot, continues it (issue 15, finding 6).

The hand-built captures are split at midnight as the real one is, by a local clock 1.27 s behind
the exchange's: the day-1 file holds the next day's first second (an update with E past midnight,
a trade of the next day), which the day-2 partition must get from the carried state.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.raw import binance_capture
from atra_pipeline.core.raw import sources as raw_sources
from atra_pipeline.core.raw.binance_capture import BookState, read_binance_capture
from atra_pipeline.core.raw.partition import PartitionRefused, stage_raw, write_raw
from atra_pipeline.core.storage.database import PartitionWindow, prepare, read_partition
from atra_pipeline.core.storage.parquet import attach_store
from atra_pipeline.defs.common.resources import RawSourceResource

MIDNIGHT_MS = 1_723_161_600_000  # 2024-08-09 00:00:00 UTC: every E below is an offset from it
MIDNIGHT = pd.Timestamp(MIDNIGHT_MS, unit="ms")
DAY1, DAY2 = "2024-08-08", "2024-08-09"
LAG_NS = -1_273_000_000  # the local receive clock behind E, as in the real capture


def at(ms: int) -> pd.Timestamp:
    return pd.Timestamp(MIDNIGHT_MS + ms, unit="ms")


# --------------------------------------------------------------------------- message shapes


def depth(market: str, e: int, first: int, last: int, prev: int, b=(), a=()) -> dict:
    """A diff-depth message; futures carry ``pu`` (the previous message's ``u``), spot does not."""
    data = {"e": "depthUpdate", "E": MIDNIGHT_MS + e, "s": "BTCUSDT", "U": first, "u": last,
            "b": [[str(p), str(q)] for p, q in b], "a": [[str(p), str(q)] for p, q in a]}
    if market != "spot":
        data["pu"] = prev
    return {"stream": "btcusdt@depth@100ms", "data": data}


def trade(market: str, t: int, trade_id: int, price, qty, buyer_is_maker: bool) -> dict:
    data = {"e": "trade", "E": MIDNIGHT_MS + t, "s": "BTCUSDT", "t": trade_id, "p": str(price), "q": str(qty),
            "T": MIDNIGHT_MS + t, "m": buyer_is_maker}
    data.update({"M": True} if market == "spot" else {"X": "MARKET"})  # spot's and futures' trade shapes
    return {"stream": "btcusdt@trade", "data": data}


def snapshot(last_id: int, bids, asks) -> dict:
    return {"lastUpdateId": last_id, "bids": [[str(p), str(q)] for p, q in bids],
            "asks": [[str(p), str(q)] for p, q in asks]}


def write_capture(path: Path, messages) -> Path:
    lines, clock = [], (MIDNIGHT_MS - 5000) * 1_000_000
    for msg in messages:
        if "data" in msg:
            clock = msg["data"]["E"] * 1_000_000 + LAG_NS
        lines.append(f"{clock} {json.dumps(msg)}\n")
    with gzip.open(path, "wt") as fh:
        fh.writelines(lines)
    return path


def day1_messages(market: str, last=()) -> list[dict]:
    """The REST snapshot's day, to 00:00:01.2 by the exchange's clock (midnight by the local one)."""
    return [
        depth(market, -3100, 95, 99, 94),                          # 1: stale for the snapshot
        depth(market, -3000, 100, 102, 99, b=[(99.9, 2)]),          # 2: straddles it
        snapshot(100, bids=[(99.9, 1), (99.8, 2)], asks=[(100.1, 1), (100.2, 3)]),  # 3
        trade(market, -2500, 1, 100.1, 0.5, False),                 # 4
        depth(market, -2000, 103, 104, 102, a=[(100.1, 2)]),        # 5
        depth(market, -1000, 105, 105, 104, b=[(99.95, 1)]),        # 6
        trade(market, 200, 2, 100.05, 0.1, False),                  # 7: the next day's trade, before the cut
        depth(market, 300, 106, 107, 105, a=[(100.05, 1)]),         # 8: E past midnight: the cut
        trade(market, -50, 3, 99.95, 0.2, True),                    # 9: late, of day 1
        depth(market, 1200, 108, 108, 107, b=[(99.95, 0)]),         # 10
        *last,
    ]


def day2_messages(market: str, first: int = 109, prev: int = 108) -> list[dict]:
    """The next day: no snapshot, the stream goes on from u=108."""
    return [
        trade(market, 1500, 4, 100.05, 0.3, False),                             # 1
        depth(market, 1600, first, first + 1, prev, b=[(99.98, 1)]),            # 2
        depth(market, 2600, first + 2, first + 2, first + 1),                   # 3
        depth(market, 3600, first + 3, first + 3, first + 2, a=[(100.05, 0)]),  # 4
        depth(market, 5100, first + 4, first + 4, first + 3),                   # 5
    ]


def two_days(folder: Path, market: str = "spot") -> tuple[Path, Path]:
    return (write_capture(folder / "btcusdt_20240808.gz", day1_messages(market)),
            write_capture(folder / "btcusdt_20240809.gz", day2_messages(market)))


def read_day(paths, day: str, market: str = "spot", **kw):
    start = pd.Timestamp(day)
    return read_binance_capture(list(paths), "BTCUSDT", market=market, start=start,
                                end=start + pd.Timedelta(days=1), **kw)


def tops(book: pd.DataFrame) -> list[tuple]:
    return list(zip(book.ts, book.bid_px_0, book.bid_sz_0, book.ask_px_0, book.ask_sz_0))


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("market", ["spot", "usdm_futures"])
def test_the_next_day_continues_the_carried_book_as_one_stream(tmp_path, market):
    day1, day2 = two_days(tmp_path, market)
    first = read_day([day1], DAY1, market, previous="no book before")
    state = first.book_state
    assert state.valid and state.book_update_id == 105 and state.last_update_id == 108
    assert state.bids == [(99.8, 2.0), (99.9, 2.0), (99.95, 1.0)] and state.asks == [(100.1, 2.0), (100.2, 3.0)]
    assert [line for _, line, _ in state.lines] == [7, 8, 9, 10]  # the next day's trade, then all from the cut on
    carried = BookState.from_json(state.to_json())
    assert carried == state  # what is stored is what was kept, to the last bit of every price
    second = read_day([day2], DAY2, market, previous=carried)
    # by hand: the book at midnight is the carried one; E=300 and E=1200 of the day-1 file come next
    assert tops(second.book) == [
        (at(0), 99.95, 1.0, 100.1, 2.0), (at(1000), 99.95, 1.0, 100.05, 1.0), (at(2000), 99.98, 1.0, 100.05, 1.0),
        (at(3000), 99.98, 1.0, 100.05, 1.0), (at(4000), 99.98, 1.0, 100.1, 2.0), (at(5000), 99.98, 1.0, 100.1, 2.0)]
    assert second.trades.trade_id.tolist() == ["2", "4"] and first.trades.trade_id.tolist() == ["1", "3"]
    assert [f["path"] for f in second.report["files"]] == [str(day2)]
    assert second.report["carried_in"]["used"] and second.report["gaps"] == []
    # the independent check: the replay of both files, which needs no carried state
    whole = read_day([day1, day2], DAY2, market)
    pd.testing.assert_frame_equal(second.book, whole.book)
    pd.testing.assert_frame_equal(second.trades, whole.trades)


@pytest.mark.parametrize("market, says", [
    ("spot", "ends at u=108, its first depth update has U=115 (expected U=109: a gap of 6 update ids)"),
    ("usdm_futures", "ends at u=108, its first depth update has pu=113 (expected pu=108: a gap of 5 update ids)"),
])
def test_a_gap_between_the_stored_book_and_the_next_file_is_refused_naming_file_and_line(tmp_path, market, says):
    day1 = write_capture(tmp_path / "btcusdt_20240808.gz", day1_messages(market))
    day2 = write_capture(tmp_path / "btcusdt_20240809.gz", day2_messages(market, first=115, prev=113))
    state = read_day([day1], DAY1, market).book_state
    with pytest.raises(DataError) as err:
        read_day([day2], DAY2, market, previous=state)
    assert (Path(err.value.source).name, err.value.line) == ("btcusdt_20240809.gz", 2)
    assert err.value.column == ("U" if market == "spot" else "pu")
    assert "no REST depth snapshot in btcusdt_20240809.gz to start the book from" in str(err.value)
    assert "the stored book of the previous day does not continue into it" in str(err.value)
    assert says in str(err.value), str(err.value)


def test_no_snapshot_and_no_previous_book_is_refused_with_the_reason(tmp_path):
    _, day2 = two_days(tmp_path)
    with pytest.raises(DataError, match=r"btcusdt_20240809.gz: no REST depth snapshot in btcusdt_20240809.gz to "
                                        r"start the book from, and there is no book of 2024-08-08"):
        read_day([day2], DAY2, previous="there is no book of 2024-08-08")
    alone = read_day([day2], DAY2)  # without previous=, as before: no rows, and the reader says why
    assert alone.book.empty and alone.report["carried_in"] is None


def test_a_book_out_of_sync_at_the_day_end_is_refused_as_a_start(tmp_path):
    broken = day1_messages("spot")
    broken[7] = depth("spot", -500, 110, 111, 0, a=[(100.05, 1)])  # line 8: U=110 after u=105, never re-synced
    day1 = write_capture(tmp_path / "btcusdt_20240808.gz", broken)
    state = read_day([day1], DAY1).book_state
    assert not state.valid and state.bids == [] and "line 8" in state.why_invalid
    with pytest.raises(DataError, match=r"btcusdt_20240809.gz: no REST depth snapshot in btcusdt_20240809.gz to "
                                        r"start the book from, and the stored book of btcusdt_20240808.gz up to "
                                        r"2024-08-09T00:00:00.000 was not in sync: sequence gap at "
                                        r"btcusdt_20240808.gz line 8 \(sequence: expected U=106, got 110\)"):
        read_day([write_capture(tmp_path / "btcusdt_20240809.gz", day2_messages("spot"))], DAY2, previous=state)


def day2_with_snapshot(gap: bool) -> list[dict]:
    """A next-day file holding its own REST snapshot, after two updates that continue the carried
    book (``gap``: the second breaks the chain, but is the one that straddles the snapshot)."""
    u = 113 if gap else 111
    return [
        depth("spot", 1600, 109, 110, 0, b=[(99.98, 1)]),                                 # 1: continues u=108
        depth("spot", 2600, u - 1 if gap else u, u, 0),                                   # 2
        snapshot(u - 2 if gap else u - 1, bids=[(99.98, 1), (99.9, 2)], asks=[(100.05, 1), (100.1, 2)]),  # 3
        trade("spot", 3100, 5, 100.05, 0.2, False),                                       # 4
        depth("spot", 3600, u + 1, u + 1, 0, a=[(100.05, 0)]),                            # 5
        depth("spot", 5100, u + 2, u + 2, 0),                                             # 6
    ]


@pytest.mark.parametrize("gap", [False, True], ids=["continues", "gap_before_the_snapshot"])
def test_a_file_with_its_own_snapshot_starts_from_it_whatever_was_carried(tmp_path, gap):
    day1, _ = two_days(tmp_path)
    day2 = write_capture(tmp_path / "btcusdt_20240809.gz", day2_with_snapshot(gap))
    state = read_day([day1], DAY1).book_state
    alone = read_day([day2], DAY2, on_gap="error")
    # the day's rows are its file's alone, so they never depend on whether the day before was
    # materialised first; the carried rows before the snapshot (and a gap among them) are forgotten
    for previous in (state, "no book of 2024-08-08"):
        got = read_day([day2], DAY2, on_gap="error", previous=previous)
        pd.testing.assert_frame_equal(got.book, alone.book)
        pd.testing.assert_frame_equal(got.trades, alone.trades)
        assert got.report["samples"] == alone.report["samples"] and got.report["gaps"] == []
        assert not got.report["carried_in"]["used"]
    assert got.report["carried_in"]["why_not"] == "no book of 2024-08-08"
    assert tops(alone.book) == [(at(3000), 99.98, 1.0, 100.05, 1.0), (at(4000), 99.98, 1.0, 100.1, 2.0),
                                (at(5000), 99.98, 1.0, 100.1, 2.0)]
    assert alone.trades.trade_id.tolist() == ["5"]  # not the carried trade 2


# --------------------------------------------------------------------------- the raw step


def source(folder: Path, template: str = "{symbol_lower}_{yyyymmdd}.gz", market: str = "spot") -> RawSourceResource:
    return RawSourceResource(kind="file", file_format="binance", expect_full_day=False, market=market,
                             book_path=str(folder / template))


def materialise(conn: duckdb.DuckDBPyConnection, raw_source: RawSourceResource, day: str):
    """The raw step's core: stage both tables, judge them, write them with what they record."""
    window = PartitionWindow.for_day("BTCUSDT", day)
    staged = stage_raw(conn, raw_source.spec(), window)
    outcomes = staged.outcomes(conn, raw_source.check_params("BTCUSDT"))
    write_raw(conn, staged, outcomes)
    return staged


def store_connection(kind: str, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """A new connection to the DuckDB file, or over the partition files (as a new process makes)."""
    if kind == "duckdb":
        conn = duckdb.connect(str(tmp_path / "atra.duckdb"))
        prepare(conn)
        return conn
    conn = duckdb.connect()
    prepare(conn)
    attach_store(conn, str(tmp_path / "store"))
    return conn


def stored_states(conn) -> list[tuple]:
    return conn.execute("SELECT symbol, strftime(day, '%Y-%m-%d'), market, last_update_id "
                        "FROM capture_book_state ORDER BY day").fetchall()


@pytest.mark.parametrize("store", ["duckdb", "parquet"])
def test_the_raw_step_stores_the_book_and_rematerialising_replaces_it(tmp_path, store):
    data = tmp_path / "capture"
    data.mkdir()
    day1, day2 = two_days(data)
    with store_connection(store, tmp_path) as conn:
        materialise(conn, source(data), DAY1)
        assert stored_states(conn) == [("BTCUSDT", DAY1, "spot", 108)]
    # day 1 again, from a file whose stream goes one update further: its record is replaced
    write_capture(day1, day1_messages("spot", last=[depth("spot", 1400, 109, 109, 108)]))
    with store_connection(store, tmp_path) as conn:
        materialise(conn, source(data), DAY1)
        assert stored_states(conn) == [("BTCUSDT", DAY1, "spot", 109)]
        with pytest.raises(DataError, match=r"btcusdt_20240809.gz, line 2, column 'U': .* ends at u=109, its first "
                                            r"depth update has U=109 \(expected U=110: an overlap\)"):
            materialise(conn, source(data), DAY2)
    write_capture(day1, day1_messages("spot"))
    with store_connection(store, tmp_path) as conn:
        materialise(conn, source(data), DAY1)
        staged = materialise(conn, source(data), DAY2)
        assert stored_states(conn) == [("BTCUSDT", DAY1, "spot", 108), ("BTCUSDT", DAY2, "spot", 113)]
        book = read_partition(conn, "raw_l2_snapshots", PartitionWindow.for_day("BTCUSDT", DAY2))
    assert tops(book)[:2] == [(at(0), 99.95, 1.0, 100.1, 2.0), (at(1000), 99.95, 1.0, 100.05, 1.0)]
    assert staged.source["files"] == [str(day2)] and staged.reports["raw_l2_snapshots"]["carried_in"]["used"]
    assert "book_state" not in staged.reports["raw_l2_snapshots"]  # the state goes to its table, not the metadata
    if store == "parquet":
        assert (tmp_path / "store" / "capture_book_state" / "date=2024-08-09" / "symbol=BTCUSDT"
                / "raw_l2_snapshots.parquet").is_file()


def test_a_refused_partition_keeps_the_stored_book(conn, tmp_path):
    day1, _ = two_days(tmp_path)
    materialise(conn, source(tmp_path), DAY1)
    before = conn.execute("SELECT last_update_id, state FROM capture_book_state").fetchall()
    implausible = day1_messages("spot", last=[depth("spot", 1400, 109, 109, 108)])
    implausible[3] = trade("spot", -2500, 1, 100.1, 1e12, False)  # line 4: a notional of 1e14 USDT
    write_capture(day1, implausible)
    with pytest.raises(PartitionRefused, match="notional_plausible"):
        materialise(conn, source(tmp_path), DAY1)
    # the book goes with the rows: neither was replaced
    assert conn.execute("SELECT last_update_id, state FROM capture_book_state").fetchall() == before


@pytest.mark.parametrize("case, says", [
    ("nothing stored", r"no stored book of the previous day \(BTCUSDT 2024-08-08\) to continue: materialise "
                       r"2024-08-08\|BTCUSDT first"),
    ("other market", r"the stored book of the previous day \(BTCUSDT 2024-08-08\) is of market 'usdm_futures', "
                     r"this source's is 'spot'"),
])
def test_the_raw_step_without_the_previous_day_says_what_to_do(conn, tmp_path, case, says):
    two_days(tmp_path)
    if case == "other market":
        write_capture(tmp_path / "f_btcusdt_20240808.gz", day1_messages("usdm_futures"))
        materialise(conn, source(tmp_path, "f_{symbol_lower}_{yyyymmdd}.gz", "usdm_futures"), DAY1)
    with pytest.raises(DataError, match=r"btcusdt_20240809.gz: no REST depth snapshot in btcusdt_20240809.gz to "
                                        r"start the book from, and " + says):
        materialise(conn, source(tmp_path), DAY2)
    assert conn.execute("SELECT count(*) FROM raw_l2_snapshots WHERE ts >= '" + DAY2 + "'").fetchall() == [(0,)]


def test_each_partition_reads_its_own_file_once(conn, tmp_path, monkeypatch):
    day1, day2 = two_days(tmp_path)
    opened, real_open = [], binance_capture.open_binary

    def counted_open(path):
        opened.append(Path(path).name)
        return real_open(path)

    monkeypatch.setattr(binance_capture, "open_binary", counted_open)
    materialise(conn, source(tmp_path), DAY1)
    materialise(conn, source(tmp_path), DAY2)
    assert opened == ["btcusdt_20240808.gz", "btcusdt_20240809.gz"]  # both tables of a day from one replay
    # the template matching every day reads as before: both files for the day after the snapshot's,
    # with no stored book needed
    opened.clear()
    raw_sources._capture.cache_clear()
    with duckdb.connect() as empty:
        prepare(empty)
        staged = materialise(empty, source(tmp_path, "{symbol_lower}_*.gz"), DAY2)
    assert opened == ["btcusdt_20240808.gz", "btcusdt_20240809.gz"]
    assert staged.reports["raw_l2_snapshots"]["carried_in"] is None
    carried = read_partition(conn, "raw_l2_snapshots", PartitionWindow.for_day("BTCUSDT", DAY2))
    with duckdb.connect() as again:
        prepare(again)
        materialise(again, source(tmp_path, "{symbol_lower}_*.gz"), DAY2)
        whole = read_partition(again, "raw_l2_snapshots", PartitionWindow.for_day("BTCUSDT", DAY2))
    pd.testing.assert_frame_equal(carried, whole)


def test_the_template_names_the_day():
    assert raw_sources.names_the_day("data/{symbol_lower}_{yyyymmdd}.gz")
    assert raw_sources.names_the_day("data/{date}/{symbol}*.gz")
    assert not raw_sources.names_the_day("data/{symbol_lower}_*.gz")


# --------------------------------------------------------------------------- the real capture


@pytest.mark.slow  # two days of the real capture, per day and replayed whole
@pytest.mark.realdata
@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_real_capture_day_by_day_equals_the_replay_of_every_file(tmp_path, shared_data, symbol):
    from atra_pipeline_tests.support.materialize import materialization, materialize_raw

    folder = shared_data / "binance_spot_capture"
    db = tmp_path / "atra.duckdb"
    per_day = source(folder)
    early = materialize_raw(db, DAY2, symbol, per_day)  # the day before is not stored yet
    assert not early.success
    failure = early.failure_data_for_node("raw_partition").error.to_string()
    assert f"materialise 2024-08-08|{symbol} first" in failure and f"{symbol.lower()}_20240809.gz" in failure
    for day in (DAY1, DAY2):
        result = materialize_raw(db, day, symbol, per_day)
        assert result.success, day
        for table in ("raw_l2_snapshots", "raw_trades"):  # both tables of the day from its own file, once
            report = materialization(result, table).metadata["source"].value
            assert [Path(f["path"]).name for f in report["files"]] == [f"{symbol.lower()}_{day.replace('-', '')}.gz"]
    assert report["carried_in"]["used"] and report["carried_in"]["depth_updates_carried"] > 0
    # the independent check: the replay of every file, which the glob template did for each day
    start = pd.Timestamp(DAY2)
    whole = read_binance_capture(sorted(folder.glob(f"{symbol.lower()}_*.gz")), symbol, start=start,
                                 end=start + pd.Timedelta(days=1))
    window = PartitionWindow.for_day(symbol, DAY2)
    with duckdb.connect(str(db), read_only=True) as conn:
        book = read_partition(conn, "raw_l2_snapshots", window)
        trades = read_partition(conn, "raw_trades", window)
    assert len(book) > 300 and book.ts.iloc[0] == start  # the book at midnight: only the carried one gives it
    pd.testing.assert_frame_equal(book.astype({"ts": "datetime64[us]"}), whole.book)
    in_order = ["ts", "trade_id"]  # stored trades of one millisecond come back in any order
    pd.testing.assert_frame_equal(
        trades.astype({"ts": "datetime64[us]"}).sort_values(in_order, kind="stable", ignore_index=True),
        whole.trades.sort_values(in_order, kind="stable", ignore_index=True))
