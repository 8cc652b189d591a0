"""The ccxt collector against a local fake Binance (127.0.0.1 only): every fault survived with
nothing duplicated or lost, no retry where a retry cannot help, and restarts that resume."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager

import ccxt
import duckdb
import pytest

from atra_pipeline.core.raw.collector import CollectedStore, Collector, CollectorSettings, async_exchange
from atra_pipeline.core.storage.database import prepare
from atra_pipeline.testing.fake_binance import FakeBinance

FAST = CollectorSettings(interval_s=0.05, timeout_s=0.6, retries=4, backoff_s=0.01, batch_rows=10)


@pytest.fixture
def fake():
    with FakeBinance(slow_s=1.0) as server:
        yield server


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "atra.duckdb")
    with duckdb.connect(path) as conn:
        prepare(conn)

    @contextmanager
    def connect():
        conn = duckdb.connect(path)
        try:
            yield conn
        finally:
            conn.close()

    return CollectedStore(connect)


def collect(fake, store, polls: int, settings: CollectorSettings = FAST) -> Collector:
    async def main():
        exchange = async_exchange("binance", timeout_ms=300, base_url=fake.url)
        try:
            collector = Collector(exchange, store, settings)
            await collector.run(polls=polls)
            return collector
        finally:
            await exchange.close()

    return asyncio.run(main())


def stored(store, sql: str):
    with store.connect() as conn:
        return conn.execute(sql).fetchall()


def fake_trade_ids(fake) -> set[tuple[str, str]]:
    return {(s, str(t["id"])) for s, trades in fake.trades.items() for t in trades}


def test_collects_books_and_every_trade(fake, store):
    collector = collect(fake, store, polls=4)
    assert stored(store, "SELECT count(*), count(DISTINCT (symbol, ts)) FROM collected_l2_snapshots")[0] == (12, 12)
    ids = set(stored(store, "SELECT symbol, trade_id FROM collected_trades"))
    assert ids == fake_trade_ids(fake) and collector.stats.trade_rows == len(ids) == 12
    row = stored(store, "SELECT bid_px_0 < ask_px_0, bid_px_9 IS NOT NULL, exchange "
                        "FROM collected_l2_snapshots LIMIT 1")[0]
    assert row == (True, True, "binance")
    assert all(path.startswith("/api/v3/") for path, _ in fake.requests)  # only the fake was asked


@pytest.mark.parametrize("fault, error", [("429", "DDoSProtection"), ("500", "ExchangeNotAvailable"),
                                          ("503", "ExchangeNotAvailable"), ("timeout", "RequestTimeout"),
                                          ("malformed", "MalformedResponse")])
def test_each_fault_is_survived_with_nothing_lost_or_doubled(fake, store, fault, error):
    fake.fail_next(fault, fault)  # two in a row: the book call and its first retry (or the trades call)
    collector = collect(fake, store, polls=3)
    assert collector.stats.errors[error] >= 1 and collector.stats.retries >= 2 and collector.stats.failed_calls == 0
    books = stored(store, "SELECT count(*), count(DISTINCT (symbol, ts)) FROM collected_l2_snapshots")[0]
    assert books == (9, 9)  # every poll of every symbol landed once
    assert set(stored(store, "SELECT symbol, trade_id FROM collected_trades")) == fake_trade_ids(fake)
    assert stored(store, "SELECT count(*) = count(DISTINCT (symbol, trade_id)) FROM collected_trades")[0][0]


def test_an_outage_longer_than_the_retries_skips_the_tick_and_loses_no_trade(fake, store):
    one = CollectorSettings(symbols=("BTCUSDT",), interval_s=0.05, timeout_s=0.6, retries=4, backoff_s=0.01)
    collect(fake, store, polls=1, settings=one)
    fake.fail_next(*["500"] * 5)  # the next book call fails on its 1 + 4 attempts
    collector = collect(fake, store, polls=3, settings=one)
    assert collector.stats.failed_calls == 1 and collector.stats.retries == 4
    assert stored(store, "SELECT count(*) FROM collected_l2_snapshots")[0][0] == 1 + 2  # that poll given up
    assert set(stored(store, "SELECT symbol, trade_id FROM collected_trades")) == fake_trade_ids(fake)


def test_a_restart_resumes_without_duplicates(fake, store):
    collect(fake, store, polls=3)
    collect(fake, store, polls=3)  # a new process: trades resume from the last stored id
    assert stored(store, "SELECT count(*), count(DISTINCT (symbol, ts)) FROM collected_l2_snapshots")[0] == (18, 18)
    trades = stored(store, "SELECT count(*), count(DISTINCT (symbol, trade_id)) FROM collected_trades")[0]
    assert trades == (18, 18)
    assert set(stored(store, "SELECT symbol, trade_id FROM collected_trades")) == fake_trade_ids(fake)
    again = store.append(*_frames(store))  # a retried batch adds nothing
    assert again == (0, 0)


def _frames(store):
    with store.connect() as conn:
        return (conn.execute("SELECT * FROM collected_l2_snapshots LIMIT 5").fetchdf(),
                conn.execute("SELECT * FROM collected_trades LIMIT 5").fetchdf())


@pytest.mark.parametrize("fault, exception", [("401", ccxt.AuthenticationError)])
def test_no_retry_where_a_retry_cannot_help(fake, store, fault, exception):
    collect(fake, store, polls=1)  # markets loaded, nothing pending
    fake.fail_next(fault)
    before = len(fake.requests)
    with pytest.raises(exception):
        collect(fake, store, polls=1)
    data_calls = [p for p, _ in fake.requests[before:] if p in ("/api/v3/depth", "/api/v3/aggTrades")]
    assert len(data_calls) <= 3  # the failing call once, not retried (the other symbols' calls may be in flight)
    with pytest.raises(ccxt.BadSymbol, match="XYZUSDT"):
        collect(fake, store, polls=1, settings=CollectorSettings(symbols=("XYZUSDT",), interval_s=0.05))
