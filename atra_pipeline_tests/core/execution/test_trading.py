"""The live executor by hand: a decision record with the strategy's cost and edge, an entry sized on
the paper account's equity, one position per symbol, exits at the take-profit, the stop-loss and
the vertical barrier judged on every snapshot (one written after a step included), and the kill
switch on marked P&L (a held position marked down trips it, without any fill), per broker, closing
again at the next step what it could not close."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.execution.brokers import BrokerError, PaperBroker
from atra_pipeline.core.execution.executor import trade_step
from atra_pipeline.core.execution.rails import RiskLimits, kill_switch_tripped, reset_kill_switch
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.raw.schema import L2_COLUMNS, N_LEVELS
from atra_pipeline.core.strategy.fills import round_trip_cost
from atra_pipeline.core.strategy.rules import StrategySettings, expected_edge
from atra_pipeline.core.strategy.sizing import SizingSettings
from atra_pipeline_tests.support.models import register_random_model

T0 = pd.Timestamp("2024-08-08 10:00:00")
TAU = 0.002  # 20 bp barriers


def books(mids, start=T0, depth=1_000.0) -> pd.DataFrame:
    """One snapshot a second at ``mids``, 1 bp spread, ``depth`` units per level 1 bp apart."""
    mids = np.asarray(mids, dtype=float)
    frame = pd.DataFrame({"ts": pd.date_range(start, periods=len(mids), freq="1s").as_unit("us"), "symbol": "BTCUSDT",
                          "exchange": "test"})
    for i in range(N_LEVELS):
        frame[f"bid_px_{i}"] = mids * (1 - 5e-5 - 1e-4 * i)
        frame[f"ask_px_{i}"] = mids * (1 + 5e-5 + 1e-4 * i)
        frame[f"bid_sz_{i}"] = depth
        frame[f"ask_sz_{i}"] = depth
    return frame[L2_COLUMNS]


@pytest.fixture
def desk(conn):
    record = register_random_model(conn, spec=ModelSpec(("BTCUSDT",)))
    return conn, record


def add(conn, frame) -> None:
    """Stored books (a replayed day): the steps below run at times inside them."""
    conn.execute("INSERT INTO raw_l2_snapshots SELECT * FROM frame")


def signal(t, side=1, probability=0.9, tau=TAU, event=True, mid=100.0, model="m") -> pd.DataFrame:
    return pd.DataFrame([{"decision_ts": t, "symbol": "BTCUSDT", "model_id": model, "event": event, "side": side,
                          "probability": probability, "barrier_width": tau, "mid": mid, "data_ts": t, "created_at": t}])


def step(conn, record, signals, now, limits=RiskLimits()):
    broker = PaperBroker(conn, record.require_spec().strategy.costs, now=lambda: now)
    return trade_step(conn, broker, record, signals, now, limits, record.model_id, at_event_time=True)


def test_an_entry_records_its_decision_and_its_barriers(desk):
    conn, record = desk
    add(conn, books([100.0] * 60))
    report = step(conn, record, signal(T0, model=record.model_id), T0)
    assert report.entries == 1 and report.orders == {"filled": 1}
    d = conn.execute("SELECT * FROM live_decisions").fetchdf().iloc[0]
    pos = conn.execute("SELECT * FROM live_positions").fetchdf().iloc[0]
    b = books([100.0]).iloc[0]
    levels = [b[[f"{s}_{k}_{i}" for i in range(N_LEVELS)]].to_numpy(float)
              for s in ("bid", "ask") for k in ("px", "sz")]
    cost = round_trip_cost(1.0, pos["qty"], 100.0, *levels, 4e-4, 1e-3)
    assert d["taken"] and d["reason_not_taken"] == "" and d["expected_cost_bps"] == pytest.approx(cost * 1e4)
    assert d["expected_edge_bps"] == pytest.approx(1e4 * expected_edge(0.9, TAU, 1.0, 1.0, cost))
    # sized on the paper account's 100k: the 50k cap binds (Kelly 0.25 x (0.9/L - 0.1/W) and the 2% risk are larger)
    assert pos["qty"] * pos["entry_px"] == pytest.approx(StrategySettings().max_notional)
    assert pos["up"] == pytest.approx(TAU) and pos["down"] == pytest.approx(-TAU) and pos["status"] == "open"
    assert pos["vertical_ts"] == T0 + pd.Timedelta(seconds=300) and pos["entry_ts"] == T0 + pd.Timedelta(seconds=1)
    # a second decision while the position is open is recorded and skipped
    step(conn, record, signal(T0 + pd.Timedelta(seconds=30), model=record.model_id), T0 + pd.Timedelta(seconds=30))
    assert conn.execute("SELECT reason_not_taken FROM live_decisions ORDER BY decision_ts").fetchall()[-1] == \
        ("position_open",)


@pytest.mark.parametrize("path, reason, second", [
    ([100.0] * 10 + [100.1] * 5 + [100.25] * 50, "pt", 15),    # +25 bp > +20 bp at 00:00:15
    ([100.0] * 10 + [99.9] * 5 + [99.75] * 50, "sl", 15),      # -25 bp < -20 bp
    ([100.0] * 400, "vertical", 300),                           # nothing touched: the vertical barrier at +300 s
])
def test_exits_at_the_first_barrier_on_every_snapshot(desk, path, reason, second):
    conn, record = desk
    add(conn, books(path))
    step(conn, record, signal(T0, model=record.model_id), T0)
    later = T0 + pd.Timedelta(seconds=len(path) - 1)
    report = step(conn, record, signal(T0, model=record.model_id).iloc[:0], later)  # one exit-only tick
    pos = conn.execute("SELECT * FROM live_positions").fetchdf().iloc[0]
    assert report.exits == {reason: 1} and pos["status"] == "closed" and pos["exit_reason"] == reason
    assert pos["exit_event_ts"] == T0 + pd.Timedelta(seconds=second)
    # the closing order went out at the tick that triggered it and met the book 250 ms later
    assert pos["exit_ts"] == T0 + pd.Timedelta(seconds=second + 1)
    assert conn.execute("SELECT count(*) FROM orders WHERE status = 'filled'").fetchall()[0][0] == 2
    assert conn.execute("SELECT sum(side * qty) FROM fills").fetchall()[0][0] == pytest.approx(0.0, abs=1e-9)


def test_reasons_for_decisions_without_a_trade(desk):
    conn, record = desk
    add(conn, books([100.0] * 10))
    frame = pd.concat([signal(T0, event=False, side=0, probability=None, model=record.model_id),
                       signal(T0 + pd.Timedelta(seconds=1), side=0, probability=None, model=record.model_id),
                       signal(T0 + pd.Timedelta(seconds=2), tau=0.0, model=record.model_id),
                       signal(T0 + pd.Timedelta(seconds=3), probability=0.51, model=record.model_id)])
    for t, rows in frame.groupby("decision_ts"):
        step(conn, record, rows, t)
    assert [r[0] for r in conn.execute("SELECT reason_not_taken FROM live_decisions ORDER BY decision_ts").fetchall()] \
        == ["no_event", "no_side", "no_target", "edge_below_min"]
    assert conn.execute("SELECT count(*) FROM orders").fetchall()[0][0] == 0


def test_a_position_marked_down_trips_the_kill_switch_without_a_fill(conn):
    # a held 40k long (Kelly 0.25 x (0.9 / 0.5 - 0.1 / 0.5) = 0.4x, the risk and volatility caps opened up)
    # whose mid falls 30% inside barriers set 50% wide: no barrier, no fill, -12k marked
    loose = StrategySettings(sizing=SizingSettings(vol_target=1.0, max_risk_per_trade=1.0))
    record = register_random_model(conn, spec=ModelSpec(("BTCUSDT",), strategy=loose))
    add(conn, books([100.0] * 5 + [70.0] * 5))
    step(conn, record, signal(T0, tau=0.5, probability=0.9, model=record.model_id), T0)
    assert conn.execute("SELECT count(*) FROM live_positions WHERE status = 'open'").fetchall()[0][0] == 1
    report = step(conn, record, signal(T0).iloc[:0], T0 + pd.Timedelta(seconds=9), RiskLimits(max_daily_loss=2_000))
    assert kill_switch_tripped(conn) and report.halted == "kill switch tripped" and report.exits == {"kill": 1}
    detail = conn.execute("SELECT detail FROM risk_events WHERE kind = 'kill_switch_tripped'").fetchall()[0][0]
    assert "marked" in detail and float(detail.split()[2]) == pytest.approx(-12_000, rel=0.01)
    # nothing opens until a person resets it
    step(conn, record, signal(T0 + pd.Timedelta(seconds=9), tau=0.5, model=record.model_id),
         T0 + pd.Timedelta(seconds=9))
    assert conn.execute("SELECT reason_not_taken FROM live_decisions ORDER BY decision_ts").fetchall()[-1] == \
        ("kill_switch",)


def test_a_snapshot_written_after_a_step_is_still_judged(desk):
    """The collector stamps a book when it arrives and writes it with its round: a step may run
    between. The position is judged up to the last snapshot it saw, not up to the step's clock."""
    conn, record = desk
    add(conn, books([100.0] * 12))  # 10:00:00 .. 10:00:11
    step(conn, record, signal(T0, model=record.model_id), T0)
    step(conn, record, signal(T0).iloc[:0], T0 + pd.Timedelta(seconds=15))  # nothing beyond 10:00:11 yet
    assert conn.execute("SELECT checked_to FROM live_positions").fetchall()[0][0] == T0 + pd.Timedelta(seconds=11)
    add(conn, books([100.3], start=T0 + pd.Timedelta(seconds=13)))  # stamped 10:00:13, written now: +30 bp
    report = step(conn, record, signal(T0).iloc[:0], T0 + pd.Timedelta(seconds=16))
    pos = conn.execute("SELECT exit_reason, exit_event_ts FROM live_positions").fetchall()[0]
    assert report.exits == {"pt": 1} and pos == ("pt", T0 + pd.Timedelta(seconds=13))


def test_the_kill_switch_is_per_broker_and_retries_a_failed_close(conn):
    loose = StrategySettings(sizing=SizingSettings(vol_target=1.0, max_risk_per_trade=1.0))
    record = register_random_model(conn, spec=ModelSpec(("BTCUSDT",), strategy=loose))
    add(conn, books([100.0] * 5 + [70.0] * 60))
    step(conn, record, signal(T0, tau=0.5, model=record.model_id), T0)

    class Down(PaperBroker):
        def place(self, order):
            raise BrokerError("503")

    now = T0 + pd.Timedelta(seconds=9)
    down = Down(conn, record.require_spec().strategy.costs, now=lambda: now)
    tripped = trade_step(conn, down, record, signal(T0).iloc[:0], now, RiskLimits(max_daily_loss=2_000),
                         record.model_id, at_event_time=True)
    assert tripped.halted == "kill switch tripped" and tripped.exits == {} and tripped.orders == {"error": 1}
    # the next step retries the close (the broker is back) though the switch was tripped before it
    later = step(conn, record, signal(T0).iloc[:0], T0 + pd.Timedelta(seconds=10), RiskLimits(max_daily_loss=2_000))
    assert later.exits == {"kill": 1}
    assert kill_switch_tripped(conn, "paper") and not kill_switch_tripped(conn, "replay")  # the replay is not halted
    reset_kill_switch(conn, "a person", "paper")
    assert not kill_switch_tripped(conn, "paper")
