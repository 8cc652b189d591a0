"""Orders behind the safety rails, with the paper broker: fills priced like the backtest, each rail
tested (model, size, stale data, stale signal, malformed order, a book from the future, the
venue's step and minimum), idempotent client order ids, an order filled before the run died
recovered, the circuit breaker within a run and across runs, reconciliation, and the paper
account's marked equity by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.execution.brokers import BrokerError, PaperBroker, VenueLimits, reconcile
from atra_pipeline.core.execution.orders import Order, client_order_id, ledger_positions
from atra_pipeline.core.execution.rails import RiskLimits, SendState, marked_pnl_today, send_order
from atra_pipeline.core.strategy.fills import walk_book
from atra_pipeline_tests.conftest import make_book

NOW = pd.Timestamp("2024-08-08 00:00:10")
MODEL = "m1"


@pytest.fixture
def market(conn):
    # 00:00:00 .. 00:00:09, 1-tick spread, sizes 1..10; read by name in the SQL below
    book = make_book(10, mid=100.0, symbol="BTCUSDT")  # noqa: F841
    conn.execute("INSERT INTO collected_l2_snapshots SELECT * FROM book")
    return conn


def order(side: int = 1, qty: float = 2.5, minute: float = 0, model: str = MODEL, purpose: str = "entry",
          sent_at: pd.Timestamp | None = None) -> Order:
    decision = pd.Timestamp("2024-08-08 00:00:09") + pd.Timedelta(minutes=minute)
    return Order(client_order_id(model, "BTCUSDT", decision, purpose), "BTCUSDT", side, qty, decision, model,
                 sent_at or NOW, purpose)


def send(conn, o: Order, limits=RiskLimits(), broker=None, approved=MODEL, state=None):
    broker = broker or PaperBroker(conn, now=lambda: NOW)
    return send_order(conn, broker, o, approved, limits, NOW, state or SendState()), broker


def events(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT kind FROM risk_events ORDER BY ts").fetchall()]


def test_paper_fills_price_like_the_backtest(market):
    (status, fill), broker = send(market, order())  # 2.5 units: walks 1 @ 100.005 and 1.5 @ 100.015
    assert status == "filled"
    px, sz = np.array([100.005 + 0.01 * i for i in range(10)]), np.arange(1.0, 11.0)
    assert fill.qty == pytest.approx(2.5) and fill.price == pytest.approx(walk_book(px, sz, 2.5, 1e-3, 1.0)[0])
    assert fill.price == pytest.approx((100.005 + 1.5 * 100.015) / 2.5)
    assert reconcile(market, broker) == {}


def test_the_paper_fill_meets_the_first_book_after_the_latency(market):
    # 00:00:20 .. 22, stored (a replay); read by name in the SQL below
    later = make_book(3, start="2024-08-08 00:00:20", mid=101.0, symbol="BTCUSDT")  # noqa: F841
    market.execute("INSERT INTO raw_l2_snapshots SELECT * FROM later")
    # sent at 00:00:19.9: 250 ms later is 00:00:20.15, whose first snapshot is 00:00:21
    (status, fill), _ = send(market, order(qty=0.5, sent_at=pd.Timestamp("2024-08-08 00:00:19.9")),
                             limits=RiskLimits(max_data_age_s=60))
    assert status == "filled" and fill.ts == pd.Timestamp("2024-08-08 00:00:21")
    assert fill.price == pytest.approx(101.005)


def test_the_paper_account_is_marked_by_hand(market):
    (_, fill), broker = send(market, order())
    assert fill.ts == NOW + pd.Timedelta(milliseconds=250)  # no newer book: the newest, when the order arrives
    # cash 100k - 2.5 x vwap - fee, plus 2.5 units at the mid 100 of 00:00:09
    expected = 100_000 - 2.5 * fill.price - fill.fee + 2.5 * 100.0
    later = NOW + pd.Timedelta(seconds=1)
    assert expected < 100_000 and broker.equity(later) == pytest.approx(expected, rel=1e-12)
    assert broker.equity(NOW) == 100_000  # before the fill
    assert marked_pnl_today(market, "paper", later) == pytest.approx(expected - 100_000, rel=1e-9)


def test_only_the_approved_model_opens_and_limits_hold(market):
    (status, _), _ = send(market, order(), approved="m2")
    assert status == "rejected" and events(market) == ["limit"]
    (status, _), _ = send(market, order(qty=4.0, minute=1), limits=RiskLimits(max_position_notional=500,
                                                                              max_order_notional=300))
    assert status == "rejected" and events(market) == ["limit", "limit"]  # 400 of notional against 300
    assert market.execute("SELECT count(*) FROM fills").fetchall()[0][0] == 0
    # closing is always allowed: an exit of another model's position goes out
    (status, _), _ = send(market, order(side=-1, qty=4.0, minute=2, purpose="exit"), approved="m2",
                          limits=RiskLimits(max_order_notional=300))
    assert status == "filled"


def test_stale_data_blocks_orders(market):
    (status, _), _ = send(market, order(sent_at=NOW + pd.Timedelta(minutes=5)))
    assert status == "rejected" and events(market) == ["stale_data"]


def test_an_order_filled_before_the_run_died_is_recovered_not_doubled(market):
    class DiesAfterSending(PaperBroker):  # the order reaches the broker, then the run dies
        def place(self, o):
            super().place(o)
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        send(market, order(), broker=DiesAfterSending(market, now=lambda: NOW))
    assert market.execute("SELECT status FROM orders").fetchall() == [("pending",)]
    (status, fill), broker = send(market, order())  # the retry asks the broker for its client id first
    assert status == "recovered" and fill.qty == pytest.approx(2.5)
    assert market.execute("SELECT status FROM orders").fetchall() == [("filled",)]
    assert reconcile(market, broker) == {} and events(market) == ["recovered_order"]
    (status, again), _ = send(market, order())  # and a run after that finds it filled, with its fill
    assert status == "already_sent" and again.price == fill.price


def test_an_order_that_never_reached_the_broker_is_sent_after_the_crash(market):
    class DiesBeforeSending(PaperBroker):
        def place(self, o):
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        send(market, order(), broker=DiesBeforeSending(market, now=lambda: NOW))
    (status, fill), broker = send(market, order())
    assert status == "filled" and reconcile(market, broker) == {} and len(broker.positions()) == 1


class FailingBroker(PaperBroker):
    def place(self, o):
        raise BrokerError("exchange unavailable")


def test_the_circuit_breaker_stops_after_consecutive_errors(market):
    state, broker = SendState(), FailingBroker(market)
    statuses = [send(market, order(minute=i), broker=broker, state=state,
                     limits=RiskLimits(max_consecutive_errors=3))[0][0] for i in range(4)]
    assert statuses == ["error", "error", "error", "halted"] and state.halted == "circuit breaker"
    assert events(market) == ["broker_error"] * 3 + ["circuit_breaker"]
    assert market.execute("SELECT count(*) FROM orders WHERE status = 'error'").fetchall()[0][0] == 3


def test_the_circuit_breaker_counts_errors_across_runs_and_cools_down(market):
    limits = RiskLimits(max_consecutive_errors=3, breaker_cooldown_s=300)
    for i in range(3):  # three runs, one broker error each
        state = SendState.from_ledger(market, "paper", limits, NOW)
        assert not state.halted and state.errors_in_row == i
        assert send(market, order(minute=i), broker=FailingBroker(market), state=state, limits=limits)[0][0] == "error"
    assert events(market) == ["broker_error"] * 3 + ["circuit_breaker"]
    assert SendState.from_ledger(market, "paper", limits, NOW).halted == "circuit breaker"  # the fourth run
    cooled = SendState.from_ledger(market, "paper", limits, NOW + pd.Timedelta(minutes=6))  # half-open: one try
    assert not cooled.halted and cooled.errors_in_row == 2
    (status, _), _ = send(market, order(minute=9, sent_at=NOW + pd.Timedelta(seconds=1)), state=cooled,
                          limits=replace(limits, max_data_age_s=600))
    assert status == "filled" and SendState.from_ledger(market, "paper", limits, NOW).errors_in_row == 0


@pytest.mark.parametrize("bad, kind", [
    (dict(minute=-180), "stale_signal"),      # a 3-hour-old decision traded against a fresh book
    (dict(side=0), "invalid_order"),          # no side
    (dict(qty=-30_000 / 100), "invalid_order"),  # a negative size: never turned into the other side
])
def test_old_signals_and_malformed_orders_are_refused(market, bad, kind):
    (status, _), _ = send(market, order(**bad))
    assert status == "rejected" and events(market) == [kind]
    assert market.execute("SELECT count(*) FROM fills").fetchall()[0][0] == 0


def test_a_book_stamped_in_the_future_stops_orders(market):
    # the collector stamps books with the real clock: one 20 s after it means the clocks disagree
    later = pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(seconds=20)
    ahead = make_book(1, start=str(later), mid=100.0, symbol="BTCUSDT")  # noqa: F841 (read by name in the SQL below)
    market.execute("INSERT INTO collected_l2_snapshots SELECT * FROM ahead")
    (status, _), _ = send(market, order())
    assert status == "rejected" and events(market) == ["clock"]


def test_orders_take_the_venue_step_and_minimum(market):
    broker = PaperBroker(market, now=lambda: NOW, limits=VenueLimits(step=0.001, min_qty=0.001, min_notional=5.0))
    (status, fill), _ = send(market, order(qty=1.23456), broker=broker)
    assert status == "filled" and fill.qty == pytest.approx(1.234)
    (status, _), _ = send(market, order(qty=0.04, minute=1), broker=broker)  # 4 of notional, below 5
    assert status == "rejected" and events(market) == ["venue_limit"]


def test_reconciliation_finds_a_mismatch(market):
    _, broker = send(market, order())
    market.execute("INSERT INTO paper_fills VALUES ('paper', 'x', TIMESTAMP '2024-08-08 00:00:09', 'BTCUSDT', "
                   "1, 1, 100, 0)")
    assert reconcile(market, broker) == {"BTCUSDT": (pytest.approx(2.5), pytest.approx(3.5))}


def test_orders_refused_in_an_outage_are_sent_again_once(market):
    (status, _), _ = send(market, order(qty=1.0), broker=FailingBroker(market, now=lambda: NOW))
    assert status == "error"
    (status, _), broker = send(market, order(qty=1.0))  # the outage is over: the same order, once
    assert status == "filled"
    assert market.execute("SELECT count(*), min(status) FROM orders").fetchall() == [(1, "filled")]
    (status, _), _ = send(market, order(qty=1.0))
    assert status == "already_sent" and reconcile(market, broker) == {}
    assert ledger_positions(market, "paper") == {"BTCUSDT": pytest.approx(1.0)}
