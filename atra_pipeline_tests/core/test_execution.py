"""Execution behind the safety rails, with the paper broker: fills priced like the backtest,
each rail tested, idempotent client order ids, the kill switch and reconciliation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.backtest import walk_book
from atra_pipeline.core.execution import (
    BrokerError,
    PaperBroker,
    RiskLimits,
    execute_signals,
    kill_switch_tripped,
    ledger_positions,
    reconcile,
    reset_kill_switch,
)
from atra_pipeline_tests.conftest import make_book

NOW = pd.Timestamp("2024-08-08 00:00:10")
MODEL = "m1"


@pytest.fixture
def market(conn):
    book = make_book(10, mid=100.0, symbol="BTCUSDT")  # 00:00:00 .. 00:00:09, 1-tick spread, sizes 1..10
    conn.execute("INSERT INTO collected_l2_snapshots SELECT * FROM book")
    return conn


def signals(*rows) -> pd.DataFrame:
    return pd.DataFrame([{"decision_ts": pd.Timestamp("2024-08-08 00:00:09") + pd.Timedelta(minutes=i), "symbol": "BTCUSDT",
                          "model_id": MODEL, "side": side, "size_notional": size} for i, (side, size) in enumerate(rows)])


def run(conn, frame, limits=RiskLimits(), broker=None, approved=MODEL, now=NOW):
    broker = broker or PaperBroker(conn, now=lambda: now)
    return execute_signals(conn, frame, broker, approved, limits, now=now), broker


def events(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT kind FROM risk_events ORDER BY ts").fetchall()]


def test_paper_fills_price_like_the_backtest(market):
    counts, broker = run(market, signals((1, 250.0)))  # 2.5 units at mid 100: walks 1 @ 100.005 and 1.5 @ 100.015
    assert counts["filled"] == 1
    price, qty = market.execute("SELECT price, qty FROM fills").fetchall()[0]
    px, sz = np.array([100.005 + 0.01 * i for i in range(10)]), np.arange(1.0, 11.0)
    assert qty == pytest.approx(2.5) and price == pytest.approx(walk_book(px, sz, 2.5, 1e-3, 1.0)[0])
    assert price == pytest.approx((100.005 + 1.5 * 100.015) / 2.5)
    assert reconcile(market, broker) == {}


def test_only_the_approved_model_trades_and_limits_hold(market):
    counts, _ = run(market, signals((1, 250.0)), approved="m2")
    assert counts == {"filled": 0, "rejected": 1, "errors": 0, "already_sent": 0} and events(market) == ["limit"]
    later = signals((1, 10_000.0)).assign(decision_ts=pd.Timestamp("2024-08-08 00:00:09.5"))
    counts, broker = run(market, later, limits=RiskLimits(max_position_notional=500, max_order_notional=300))
    # capped at 300 of notional at the walked price: 300 / 100.005 = 3.0 at the touch walks to
    # (1 @ 100.005 + 2 @ 100.015) / 3, and 300 over that average is the order
    vwap = (100.005 + 2 * 100.015) / 3
    assert counts["filled"] == 1 and ledger_positions(market, "paper")["BTCUSDT"] == pytest.approx(300 / vwap)
    assert market.execute("SELECT max(qty * price) FROM fills").fetchall()[0][0] <= 300 + 1e-9


def test_stale_data_blocks_orders(market):
    counts, _ = run(market, signals((1, 250.0)), now=NOW + pd.Timedelta(minutes=5))
    assert counts["rejected"] == 1 and events(market) == ["stale_data"]


def test_a_retried_run_never_doubles_an_order(market):
    class DiesAfterSending(PaperBroker):  # the order reaches the broker, then the run dies
        def place(self, order):
            super().place(order)
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        run(market, signals((1, 250.0)), broker=DiesAfterSending(market, now=lambda: NOW))
    counts, broker = run(market, signals((1, 250.0)))  # the retry finds its order pending
    assert counts["already_sent"] == 1 and counts["filled"] == 0
    assert market.execute("SELECT status FROM orders").fetchall() == [("pending",)]
    assert reconcile(market, broker) == {"BTCUSDT": (0.0, pytest.approx(2.5))}  # shown loudly, not resent


class FailingBroker(PaperBroker):
    def place(self, order):
        raise BrokerError("exchange unavailable")


def test_the_circuit_breaker_stops_after_consecutive_errors(market):
    counts, _ = run(market, signals((1, 100.0), (-1, 100.0), (1, 200.0), (-1, 300.0)), broker=FailingBroker(market),
                    limits=RiskLimits(max_consecutive_errors=3))
    assert counts["errors"] == 3 and counts["halted"] == "circuit breaker" and events(market) == ["circuit_breaker"]
    assert market.execute("SELECT count(*) FROM orders WHERE status = 'error'").fetchall()[0][0] == 3


def test_the_kill_switch_flattens_and_waits_for_a_person(market):
    # buy then sell back at once: the spread and fees lose money every round trip
    limits = RiskLimits(max_daily_loss=0.05, max_position_notional=1_000, max_order_notional=1_000)
    counts, broker = run(market, signals((1, 500.0), (-1, 500.0), (1, 500.0)), limits=limits)
    assert counts["halted"] == "kill switch tripped" and kill_switch_tripped(market)
    assert abs(ledger_positions(market, "paper").get("BTCUSDT", 0.0)) < 1e-9  # flattened
    later = signals((1, 500.0)).assign(decision_ts=pd.Timestamp("2024-08-08 00:09:09"))
    counts, _ = run(market, later, limits=limits)
    assert "halted" in counts and counts["filled"] == 0  # nothing new until a reset
    reset_kill_switch(market, "a person")
    counts, _ = run(market, later, limits=RiskLimits())
    assert counts["filled"] == 1 and reconcile(market, broker) == {}


def test_reconciliation_finds_a_mismatch(market):
    _, broker = run(market, signals((1, 250.0)))
    market.execute("UPDATE paper_positions SET qty = qty + 1")
    assert reconcile(market, broker) == {"BTCUSDT": (pytest.approx(2.5), pytest.approx(3.5))}


def test_orders_refused_in_an_outage_are_sent_again_once(market):
    counts, _ = run(market, signals((1, 100.0)), broker=FailingBroker(market, now=lambda: NOW))
    assert counts["errors"] == 1
    counts, broker = run(market, signals((1, 100.0)))  # the outage is over: the same order, once
    assert counts["filled"] == 1 and market.execute("SELECT count(*), min(status) FROM orders").fetchall() == [(1, "filled")]
    counts, _ = run(market, signals((1, 100.0)))
    assert counts["filled"] == 0 and reconcile(market, broker) == {}
