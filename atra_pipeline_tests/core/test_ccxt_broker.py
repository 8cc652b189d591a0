"""The ccxt broker against the local fake Binance: keys from the environment only (never shown),
a market order placed, fetched and reconciled, and a repeated client order id not doubled."""

from __future__ import annotations

import pandas as pd
import pytest

from atra_pipeline.core.execution import CcxtBroker, Order, client_order_id
from atra_pipeline.testing.fake_binance import FakeBinance

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
