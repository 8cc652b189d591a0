"""One strategy from backtest to live, proven by replay: a stored synthetic day replayed through
the live path (scoring each decision time from raw data, the paper broker filling on the stored
snapshots) makes the same trades as the backtest of the same model and decisions, trade by
trade (symbol, side, decision time, exit reason, prices, quantity), with the total P&L within 1%."""

from __future__ import annotations

import pandas as pd
import pytest

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.live.parity import backtest_and_replay, compare
from atra_pipeline.core.live.replay import replay
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline_tests.support.models import register_random_model
from atra_pipeline_tests.support.stored_day import REAL_SPEC, store_capture, store_raw, store_research

pytestmark = pytest.mark.slow  # each test replays a stored day through the live path beside its backtest

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
DAY, PREVIOUS = "2024-08-08", "2024-08-07"
START, END = "10:00", "10:45"


@pytest.fixture(scope="module")
def market():
    return {(s, d): generate_market_day(s, d) for s in SYMBOLS for d in (PREVIOUS, DAY)}


@pytest.fixture
def research_day(conn, market):
    store_raw(conn, market)
    store_research(conn, SYMBOLS, DAY)
    return conn, register_random_model(conn, win_rate=0.9, approve=False, spec=ModelSpec(tuple(SYMBOLS)))


def test_a_replayed_day_makes_the_backtests_trades(research_day):
    conn, model = research_day
    got = backtest_and_replay(conn, model, [(DAY, START, END)])
    backtest, table, summary = got.backtest, got.table, got.summary
    assert summary["passed"], table[~table["match"]].to_string()
    assert summary["trades_backtest"] == summary["trades_live"] == summary["matched"] >= 5
    assert summary["open_at_data_end"] == 0
    assert set(backtest.ledger["exit_reason"]) >= {"pt", "sl"}  # both horizontal barriers exercised
    # the decision records agree too: every event the backtest decided, the replay decided the same way
    decisions = conn.execute("SELECT * FROM live_decisions WHERE broker = 'replay'").fetchdf()
    live = decisions[decisions["reason_not_taken"].isin(["", "edge_below_min", "position_open"])]
    merged = backtest.decisions.merge(live, on=["decision_ts", "symbol"], suffixes=("_bt", "_live"))
    assert len(merged) == len(backtest.decisions)
    assert (merged["reason_not_taken_bt"] == merged["reason_not_taken_live"]).all()
    assert (backtest.decisions["reason_not_taken"] == "edge_below_min").any()  # costs turn some events down
    pd.testing.assert_series_equal(merged["expected_edge_bps_bt"], merged["expected_edge_bps_live"], rtol=1e-6,
                                   check_names=False)


def test_a_replay_is_idempotent_and_refuses_what_it_cannot_replay(research_day):
    conn, model = research_day
    first = replay(conn, model.model_id, DAY, start="12:00", end="12:10")
    again = replay(conn, model.model_id, DAY, start="12:00", end="12:10")  # the same rows and no more
    assert len(first.trades) == len(again.trades) > 0
    pd.testing.assert_frame_equal(first.trades.drop(columns="checked_to"), again.trades.drop(columns="checked_to"))
    assert conn.execute("SELECT count(*) FROM orders WHERE broker = 'replay'").fetchall()[0][0] == 2 * len(again.trades)
    assert conn.execute("SELECT count(*) FROM live_decisions").fetchall()[0][0] == 2 * 10
    with pytest.raises(DataError, match=r"raw_l2_snapshots 2024-08-10\|BTCUSDT.*nothing to replay"):
        replay(conn, model.model_id, "2024-08-10")
    with pytest.raises(DataError, match=r"SOLUSDT.*not in the universe"):
        replay(conn, model.model_id, DAY, symbols=["SOLUSDT"])
    assert conn.execute("SELECT count(*) FROM orders").fetchall()[0][0] == 2 * len(again.trades)  # nothing new


def test_the_real_capture_across_midnight_makes_the_backtests_trades(conn, shared_data):
    """Binance spot, 23:57 to 00:03 across midnight, both days: the replay of each day into one
    account makes the trades of one backtest over both."""
    symbols = store_capture(conn, shared_data / "binance_spot_capture")
    model = register_random_model(conn, win_rate=0.9, approve=False, spec=ModelSpec(tuple(symbols), **REAL_SPEC))
    got = backtest_and_replay(conn, model, [("2024-08-08", "23:57", "24:00"), ("2024-08-09", "00:00", "00:03")])
    assert got.summary["passed"], got.table[~got.table["match"]].to_string()
    assert got.summary["matched"] >= 6
    assert (got.live["decision_ts"] < "2024-08-09").any() and (got.live["decision_ts"] >= "2024-08-09").any()


def test_a_live_position_open_where_the_data_end_is_listed_apart():
    """The labels leave out an event whose path runs past the stored data; the live path entered it
    and holds it. That is listed, not counted as a difference; any other unmatched trade is."""
    ts = pd.Timestamp("2024-08-08 23:56")
    trade = {"decision_ts": ts, "symbol": "ETHUSDT", "side": 1, "exit_reason": "pt", "qty": 2.0, "entry_px": 100.0,
             "exit_px": 101.0, "net_pnl": 1.9}
    backtest = pd.DataFrame([trade])
    still_open = dict(trade, decision_ts=ts + pd.Timedelta(minutes=2), exit_reason=None, exit_px=None, net_pnl=None)
    table, summary = compare(backtest, pd.DataFrame([trade, still_open]))
    assert summary["mismatched"] == 0 and summary["open_at_data_end"] == 1 and summary["passed"]
    assert list(table["where"]) == ["both", "live only, open where the data end"]
    _, summary = compare(backtest, pd.DataFrame([trade, dict(still_open, exit_reason="sl", exit_px=99.0,
                                                             net_pnl=-2.1)]))
    assert summary["mismatched"] == 1 and not summary["passed"]
