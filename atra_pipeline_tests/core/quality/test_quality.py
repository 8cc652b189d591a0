"""Each kind of bad data makes exactly its rule fail, and the rule points at the bad rows."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atra_pipeline.core.quality.rules import SQL_CHECKS, checks_for, run_asset_checks
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, prepare, replace_partition
from atra_pipeline.core.storage.sql import load_sql
from atra_pipeline_tests.conftest import DAY, make_book, make_trades

BAD_ROW = 17


def _store(conn, window, book, trades=None):
    replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
    if trades is not None:
        replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)


def _outcomes(conn, asset, window, **overrides):
    return {o.check.name: o for o in run_asset_checks(conn, asset, window, overrides)}


def test_every_declared_check_has_its_sql_file():
    for check in SQL_CHECKS:
        assert "SELECT" in load_sql(check.sql_file).upper(), check.sql_file


def test_clean_partition_passes_every_check(conn, window):
    book = make_book(600)
    _store(conn, window, book, make_trades(book))
    full_day = {"min_rows": 600, "max_rows": 600, "edges": False}
    for asset in ("raw_l2_snapshots", "raw_trades"):
        outcomes = _outcomes(conn, asset, window, **full_day)
        assert set(outcomes) == {c.name for c in checks_for(asset)}
        assert all(o.passed for o in outcomes.values()), [o.message() for o in outcomes.values() if not o.passed]


def _crossed(book):
    book.loc[BAD_ROW, "bid_px_0"] = book.loc[BAD_ROW, "ask_px_0"] + 0.01
    book.loc[BAD_ROW, [f"bid_px_{i}" for i in range(1, 10)]] = book.loc[BAD_ROW, "bid_px_0"] - 0.01 * np.arange(1, 10)


def _unordered_bids(book):
    book.loc[BAD_ROW, "bid_px_4"] = book.loc[BAD_ROW, "bid_px_2"]


def _unordered_asks(book):
    book.loc[BAD_ROW, "ask_px_9"] = book.loc[BAD_ROW, "ask_px_8"] - 0.001


def _hole_in_levels(book):
    book.loc[BAD_ROW, ["bid_px_3", "bid_sz_3"]] = np.nan


def _zero_size(book):
    book.loc[BAD_ROW, "ask_sz_5"] = 0.0


def _infinite_size(book):
    book.loc[BAD_ROW, "bid_sz_0"] = np.inf


def _size_without_price(book):
    book.loc[BAD_ROW, "ask_px_9"] = np.nan


@pytest.mark.parametrize("mutate, failing", [
    (_crossed, "book_not_crossed"),
    (_unordered_bids, "levels_ordered"),
    (_unordered_asks, "levels_ordered"),
    (_hole_in_levels, "levels_ordered"),
    (_zero_size, "sizes_positive_finite"),
    (_infinite_size, "sizes_positive_finite"),
    (_size_without_price, "sizes_positive_finite"),
])
def test_bad_book_row_fails_its_check_and_names_the_row(conn, window, mutate, failing):
    book = make_book(60)
    mutate(book)
    _store(conn, window, book)
    outcomes = _outcomes(conn, "raw_l2_snapshots", window, edges=False)
    failed = {name for name, o in outcomes.items() if not o.passed}
    assert failed == {failing}
    bad = outcomes[failing]
    assert bad.n_offending == 1
    assert pd.Timestamp(bad.sample["ts"].iloc[0]) == book.loc[BAD_ROW, "ts"]
    assert str(book.loc[BAD_ROW, "ts"]) in bad.message()


def test_repeated_timestamp_fails_ts_strictly_increasing(conn, window):
    book = make_book(30)
    book.loc[BAD_ROW, "ts"] = book.loc[BAD_ROW - 1, "ts"]
    _store(conn, window, book)
    outcome = _outcomes(conn, "raw_l2_snapshots", window, edges=False)["ts_strictly_increasing"]
    assert not outcome.passed
    assert outcome.sample.iloc[0]["n_rows"] == 2
    assert pd.Timestamp(outcome.sample.iloc[0]["ts"]) == book.loc[BAD_ROW, "ts"]


def test_row_count_outside_range_fails_with_the_count(conn, window):
    _store(conn, window, make_book(30))
    outcomes = _outcomes(conn, "raw_l2_snapshots", window, min_rows=86_400, max_rows=86_400, edges=False)
    assert not outcomes["row_count_in_range"].passed
    assert outcomes["row_count_in_range"].sample.iloc[0]["n_rows"] == 30
    assert outcomes["row_count_in_range"].check.blocking is False


def test_gaps_reported_with_count_and_longest(conn, window):
    book = make_book(100)
    book = book.drop(index=range(20, 30)).drop(index=range(60, 63))  # 11 s and 4 s holes
    _store(conn, window, book)
    gaps = _outcomes(conn, "raw_l2_snapshots", window, max_gap_s=3.0, edges=False)["gaps_within_limit"]
    assert not gaps.passed
    assert gaps.summary == {"n_gaps": 2, "longest_gap_s": 11.0}
    assert pd.Timestamp(gaps.sample.iloc[0]["gap_from"]) == book.loc[19, "ts"]
    edges = _outcomes(conn, "raw_l2_snapshots", window, max_gap_s=3.0, edges=True)["gaps_within_limit"]
    assert edges.summary["n_gaps"] == 3 and edges.summary["longest_gap_s"] > 86_000


def test_trade_far_from_mid_fails_price_band(conn, window):
    book = make_book(60)
    trades = make_trades(book)
    trades.loc[3, "price"] = 102.0  # 200 bps above a mid of 100
    _store(conn, window, book, trades)
    outcomes = _outcomes(conn, "raw_trades", window, band_bps=100.0)
    assert [n for n, o in outcomes.items() if not o.passed] == ["price_near_mid"]
    band = outcomes["price_near_mid"]
    assert band.sample.iloc[0]["trade_id"] == trades.loc[3, "trade_id"]
    assert band.summary["max_deviation_bps"] == pytest.approx(200.0, abs=0.01)


def test_bad_amount_and_duplicate_id_fail_their_checks(conn, window):
    book = make_book(60)
    trades = make_trades(book)
    trades.loc[2, "amount"] = 0.0
    trades.loc[5, "trade_id"] = trades.loc[4, "trade_id"]
    _store(conn, window, book, trades)
    outcomes = _outcomes(conn, "raw_trades", window)
    assert {n for n, o in outcomes.items() if not o.passed} == {"amount_positive", "trade_id_unique"}
    assert outcomes["amount_positive"].sample.iloc[0]["trade_id"] == trades.loc[2, "trade_id"]
    assert outcomes["trade_id_unique"].sample.iloc[0]["trade_id"] == trades.loc[4, "trade_id"]


def test_gap_right_after_a_row_at_midnight_is_still_a_gap(conn, window):
    book = make_book(100).drop(index=range(1, 31))  # rows at 00:00:00, then nothing until 00:00:31
    _store(conn, window, book)
    gaps = _outcomes(conn, "raw_l2_snapshots", window, max_gap_s=5.0, edges=False)["gaps_within_limit"]
    assert gaps.summary == {"n_gaps": 1, "longest_gap_s": 31.0}


def test_implausible_trade_notional_fails_and_is_named(conn, window):
    book = make_book(60)
    trades = make_trades(book)
    trades.loc[4, "amount"] = 1e12  # the attack's amount: 1e12 units at a price near 100
    _store(conn, window, book, trades)
    outcomes = _outcomes(conn, "raw_trades", window)
    assert [n for n, o in outcomes.items() if not o.passed] == ["notional_plausible"]
    found = outcomes["notional_plausible"]
    assert found.check.blocking and found.sample.iloc[0]["trade_id"] == trades.loc[4, "trade_id"]
    assert found.summary["largest_notional"] == pytest.approx(1e12 * trades.loc[4, "price"])
    # the bound is a parameter: at the trade's own notional it passes, just below it fails
    at = trades.loc[4, "price"] * 1e12
    assert _outcomes(conn, "raw_trades", window, max_trade_notional=at)["notional_plausible"].passed
    assert not _outcomes(conn, "raw_trades", window, max_trade_notional=at * 0.999)["notional_plausible"].passed


def test_mid_jump_and_level_notional_bounds_by_hand(conn, window):
    book = make_book(60)
    levels = [f"{s}_px_{i}" for s in ("bid", "ask") for i in range(10)]
    book.loc[BAD_ROW:, levels] *= 1.2  # the mid steps up 20 %: ln 1.2 = 1823.2 bp, once
    book.loc[BAD_ROW + 5, "ask_sz_7"] = 1e9  # one level worth about 1.2e11
    _store(conn, window, book)
    outcomes = _outcomes(conn, "raw_l2_snapshots", window, edges=False)
    assert {n for n, o in outcomes.items() if not o.passed} == {"mid_jump_plausible", "level_notional_plausible"}
    jump = outcomes["mid_jump_plausible"]
    assert jump.n_offending == 1 and pd.Timestamp(jump.sample.iloc[0]["ts"]) == book.loc[BAD_ROW, "ts"]
    assert jump.summary["largest_jump_bps"] == pytest.approx(np.log(1.2) * 1e4, abs=0.01)
    assert _outcomes(conn, "raw_l2_snapshots", window, edges=False, max_mid_jump_bps=1900)["mid_jump_plausible"].passed
    level = outcomes["level_notional_plausible"]
    assert level.n_offending == 1 and level.sample.iloc[0]["side"] == "ask"
    assert level.summary["largest_level_notional"] == pytest.approx(1e9 * book.loc[BAD_ROW + 5, "ask_px_7"])


def test_plausibility_bounds_per_symbol_override_defaults_and_refuse_unknown_names():
    from atra_pipeline.core.quality.rules import plausibility_params

    defaults = plausibility_params({}, "BTCUSDT")
    assert set(defaults) == {"max_trade_notional", "max_level_notional", "max_mid_jump_bps"}
    bounds = {"*": {"max_mid_jump_bps": 300.0}, "BTCUSDT": {"max_trade_notional": 5e7}}
    assert plausibility_params(bounds, "BTCUSDT") == {**defaults, "max_mid_jump_bps": 300.0, "max_trade_notional": 5e7}
    assert plausibility_params(bounds, "ETHUSDT") == {**defaults, "max_mid_jump_bps": 300.0}
    with pytest.raises(ValueError, match="'ETHUSDT'.*max_notional.*max_trade_notional"):
        plausibility_params({"ETHUSDT": {"max_notional": 1.0}}, "BTCUSDT")


@settings(max_examples=40, deadline=None)
@given(moves=st.lists(st.floats(min_value=-0.3, max_value=0.3), min_size=1, max_size=25),
       bound_bps=st.floats(min_value=1.0, max_value=2500.0))
def test_mid_jump_rule_agrees_with_a_brute_force(moves, bound_bps):
    """Offending rows of mid_jump_plausible = the snapshots whose |ln(mid_i / mid_{i-1})| x 1e4
    exceeds the bound, counted one by one in Python."""
    book = make_book(len(moves) + 1)
    factors = np.exp(np.concatenate([[0.0], np.cumsum(moves)]))
    levels = [f"{s}_px_{i}" for s in ("bid", "ask") for i in range(10)]
    book[levels] = book[levels].mul(factors, axis=0)
    mids = ((book["bid_px_0"] + book["ask_px_0"]) / 2).tolist()
    expected = sum(abs(np.log(b / a)) * 1e4 > bound_bps for a, b in zip(mids, mids[1:]))
    with duckdb.connect() as conn:
        prepare(conn)
        window = PartitionWindow.for_day("BTCUSDT", DAY)
        _store(conn, window, book)
        outcome = _outcomes(conn, "raw_l2_snapshots", window, edges=False, max_mid_jump_bps=bound_bps)
    assert outcome["mid_jump_plausible"].n_offending == expected


def test_a_partial_day_book_that_stops_while_trades_go_on_leaves_a_gap(conn, window):
    """Issue 15: with expect_full_day false a hole at the end (the book stops at 23:57, trades go
    on) passed every check; a partial day's edges are now its data's span, book and trades."""
    book = make_book(100)                      # 00:00:00 .. 00:01:39
    trades = make_trades(make_book(160))       # trades on until 00:02:35.1
    _store(conn, window, book, trades)
    gaps = _outcomes(conn, "raw_l2_snapshots", window, max_gap_s=5.0, edges=False)["gaps_within_limit"]
    assert gaps.summary == {"n_gaps": 1, "longest_gap_s": pytest.approx(155.1 - 99)}
    assert pd.Timestamp(gaps.sample.iloc[0]["gap_from"]) == book["ts"].iloc[-1]
    # trades starting before the book: the hole at the start is reported the same way
    early = make_trades(make_book(100)).assign(ts=lambda t: t["ts"] - pd.Timedelta(seconds=30))
    early = early[early["ts"] >= pd.Timestamp(DAY)]
    _store(conn, window, book.iloc[30:], early)
    gaps = _outcomes(conn, "raw_l2_snapshots", window, max_gap_s=5.0, edges=False)["gaps_within_limit"]
    assert gaps.summary["n_gaps"] == 1 and gaps.sample.iloc[0]["gap_to"] == book["ts"].iloc[30]
