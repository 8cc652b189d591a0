"""The ccxt broker against the local fake Binance: keys from the environment only (never shown),
a market order placed, fetched and reconciled, a repeated client order id not doubled; the
venue's filters applied before sending, the venue's refusals and a revoked key settled (never
left pending) and counted toward the breaker; an order filled before the run died recovered from
the exchange by its client id, not sent twice."""

from __future__ import annotations

import pandas as pd
import pytest

from atra_pipeline.core.execution.brokers import CcxtBroker, VenueLimits
from atra_pipeline.core.execution.orders import Order, client_order_id
from atra_pipeline.core.execution.rails import RiskLimits, SendState, send_order
from atra_pipeline.testing.fake_binance import FakeBinance
from atra_pipeline_tests.conftest import make_book

KEY, SECRET = "test-key-4f2a", "test-secret-9c1d"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ATRA_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("ATRA_BINANCE_API_SECRET", SECRET)
    with FakeBinance() as server:
        server.api_key = KEY
        yield server


def test_keys_come_from_the_environment_only(monkeypatch):
    monkeypatch.delenv("ATRA_BINANCE_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="ATRA_BINANCE_API_KEY"):
        CcxtBroker("binance")


def test_an_order_through_the_fake_exchange_once(fake):
    broker = CcxtBroker("binance", sandbox=True, base_url=fake.url)
    assert KEY not in repr(broker) and SECRET not in repr(broker)
    order = Order(client_order_id("m1", "BTCUSDT", pd.Timestamp("2024-08-08 00:01")), "BTCUSDT", 1, 0.01,
                  pd.Timestamp("2024-08-08 00:01"), "m1")
    fill = broker.place(order)
    assert fill.qty == pytest.approx(0.01) and fill.price > 0 and fill.broker_order_id
    again = broker.place(order)  # a retry after a lost reply: the exchange refuses the id, we fetch it
    assert again.broker_order_id == fill.broker_order_id and len(fake.orders) == 1
    assert broker.positions() == {"BTCUSDT": pytest.approx(0.01)}
    assert broker.cancel("BTCUSDT", order.client_order_id)["status"] == "canceled"
    assert set(fake.seen_keys) == {KEY}  # the key travels in the header, as the exchange expects


@pytest.fixture
def ledger(conn):
    # read by name in the SQL below
    book = make_book(3, start="2024-08-08 00:00:58", mid=60_000.0, symbol="BTCUSDT")  # noqa: F841
    conn.execute("INSERT INTO collected_l2_snapshots SELECT * FROM book")
    return conn


def entry(minute: int, qty: float) -> Order:
    t = pd.Timestamp("2024-08-08 00:01")
    return Order(client_order_id("m1", "BTCUSDT", t + pd.Timedelta(minutes=minute)), "BTCUSDT", 1, qty,
                 t + pd.Timedelta(minutes=minute), "m1", NOW, "entry")


NOW = pd.Timestamp("2024-08-08 00:01:00")


def test_venue_refusals_and_a_bad_key_settle_the_order_and_count_toward_the_breaker(fake, ledger):
    broker, limits, state = CcxtBroker("binance", base_url=fake.url), RiskLimits(max_consecutive_errors=5), SendState()
    assert broker.venue_limits("BTCUSDT") == VenueLimits(step=1e-5, min_qty=1e-5, min_notional=5.0)
    # a one-cent move of a 20k position asks for 3.3e-6 BTC: below the lot size, refused before sending
    assert send_order(ledger, broker, entry(0, 3.3e-6), "m1", limits, NOW, state) == ("rejected", None)
    assert fake.orders == {} and "below the venue's minimum" in _reason(ledger, entry(0, 0))
    # more than the balance pays: the exchange refuses it (-2010); final, and counted
    fake.balances["USDT"] = 100.0
    assert send_order(ledger, broker, entry(1, 0.01), "m1", limits, NOW, state)[0] == "rejected"
    assert _reason(ledger, entry(1, 0)).startswith("refused by the venue: binance: InsufficientFunds")
    # a revoked key (401): 'error', not pending; once the key is fixed the retry sends it
    fake.balances["USDT"] = 1_000_000.0
    fake.api_key = "another-key"
    assert send_order(ledger, broker, entry(2, 0.01), "m1", limits, NOW, state) == ("error", None)
    assert ledger.execute("SELECT status FROM orders WHERE client_order_id = ?",
                          [entry(2, 0).client_order_id]).fetchall() == [("error",)]
    assert state.errors_in_row == 2
    fake.api_key = KEY
    status, fill = send_order(ledger, broker, entry(2, 0.01), "m1", limits, NOW, state)
    assert status == "filled" and fill.qty == pytest.approx(0.01) and len(fake.orders) == 1 and state.errors_in_row == 0
    kinds = [k for (k,) in ledger.execute("SELECT kind FROM risk_events ORDER BY ts, kind").fetchall()]
    assert sorted(kinds) == ["broker_error", "broker_rejected", "venue_limit"]


def test_an_order_filled_before_the_run_died_is_recovered_not_sent_twice(fake, ledger):
    class DiesAfterSending(CcxtBroker):
        def place(self, order):
            super().place(order)
            raise SystemExit("killed after the exchange filled, before the ledger settled")

    order = entry(0, 0.02)
    with pytest.raises(SystemExit):
        send_order(ledger, DiesAfterSending("binance", base_url=fake.url), order, "m1", RiskLimits(), NOW, SendState())
    assert ledger.execute("SELECT status FROM orders").fetchall() == [("pending",)]
    broker = CcxtBroker("binance", base_url=fake.url)
    status, fill = send_order(ledger, broker, order, "m1", RiskLimits(), NOW, SendState())
    assert status == "recovered" and fill.qty == pytest.approx(0.02) and len(fake.orders) == 1
    assert ledger.execute("SELECT status, sum(f.qty) FROM orders JOIN fills AS f USING (client_order_id) "
                          "GROUP BY status").fetchall() == [("filled", pytest.approx(0.02))]
    assert broker.positions() == {"BTCUSDT": pytest.approx(0.02)}  # the exchange holds what the ledger says


def _reason(conn, order: Order) -> str:
    return conn.execute("SELECT reason FROM orders WHERE client_order_id = ?", [order.client_order_id]).fetchall()[0][0]
