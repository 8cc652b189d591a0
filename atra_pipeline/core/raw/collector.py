"""Live collection through ccxt (async): poll each symbol's top-10 book and new trades, and append
them to DuckDB (``collected_l2_snapshots``, ``collected_trades``) in small batches.

Failure handling, per call: a timeout of its own; retries with exponential backoff on ccxt's
``NetworkError`` family (``RequestTimeout``, ``ExchangeNotAvailable``, ``DDoSProtection`` /
``RateLimitExceeded``) and on a malformed reply (ccxt turns unparsable JSON into an empty book
rather than an error, so an empty or one-sided book counts as malformed); no retry on
``AuthenticationError`` or ``BadSymbol``, which a retry cannot fix. A semaphore bounds the
requests in flight and ccxt's ``enableRateLimit`` spaces them.

Nothing is lost or doubled across a restart: books are keyed by (symbol, receive time) and a
batch skips keys already stored; trades resume from the last stored trade id (``fromId``) and
skip ids already stored. Batches are transactions.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import ccxt
import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.raw.schema import L2_COLUMNS, N_LEVELS, TRADE_COLUMNS
from atra_pipeline.core.settings import get
from atra_pipeline.core.storage.database import transaction

FATAL = (ccxt.AuthenticationError, ccxt.BadSymbol)
EXCHANGE_TIMEOUT_MS = 5000  # ccxt's own timeout of a call (:func:`async_exchange`)


def call_timeout_s(exchange_timeout_ms: int) -> float:
    """The collector's own timeout of a call over ccxt's of ``exchange_timeout_ms``: a second
    longer, so ccxt's fires first and its error (retried by kind) is the one seen."""
    return exchange_timeout_ms / 1000 + 1


class MalformedResponse(ccxt.NetworkError):
    """A reply that parsed into nothing usable (e.g. truncated JSON): retried like a network error."""


@dataclass(frozen=True)
class CollectorSettings:
    symbols: tuple[str, ...] = field(default_factory=lambda: tuple(get("ATRA_SYMBOLS")))
    """Symbols to poll (raw names, e.g. BTCUSDT); default the configured ones, ``$ATRA_SYMBOLS``."""
    interval_s: float = 1.0
    """Seconds between polls of each symbol."""
    max_in_flight: int = 4
    """Symbols polled at once at most (their book and trades calls)."""
    timeout_s: float = 5.0
    """Per-call timeout (on top of ccxt's own)."""
    retries: int = 5
    """Retries of a call after a network error or a malformed reply before it counts as failed."""
    backoff_s: float = 0.25
    """First retry delay; doubles with every attempt."""
    batch_rows: int = 30
    """Rows (books and trades) gathered before they are written in one transaction."""
    trades: bool = True
    """Poll each symbol's new trades as well as its book."""


@dataclass
class CollectorStats:
    polls: int = 0
    book_rows: int = 0
    trade_rows: int = 0
    retries: int = 0
    failed_calls: int = 0
    errors: Counter = field(default_factory=Counter)


class CollectedStore:
    """Appends to the collected tables through short-lived connections (``connect()`` returns a
    context manager), so other writers can take the database between batches."""

    def __init__(self, connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]):
        self.connect = connect

    def last_trade_ids(self, exchange: str) -> dict[str, int]:
        with self.connect() as conn:
            rows = conn.execute("SELECT symbol, max(trade_id::BIGINT) FROM collected_trades WHERE exchange = ? "
                                "GROUP BY symbol", [exchange]).fetchall()
        return {s: int(i) for s, i in rows}

    def append(self, books: pd.DataFrame, trades: pd.DataFrame) -> tuple[int, int]:
        """Insert the rows not stored yet, both tables in one transaction; return how many were new."""
        with self.connect() as conn:
            try:
                with transaction(conn):
                    conn.register("new_books", books[L2_COLUMNS])
                    conn.register("new_trades", trades[TRADE_COLUMNS])
                    n_books = conn.execute(
                        "INSERT INTO collected_l2_snapshots SELECT n.* FROM new_books AS n ANTI JOIN "
                        "collected_l2_snapshots AS c ON c.symbol = n.symbol AND c.ts = n.ts").fetchall()[0][0]
                    n_trades = conn.execute(
                        "INSERT INTO collected_trades SELECT n.* FROM new_trades AS n ANTI JOIN collected_trades AS c "
                        "ON c.exchange = n.exchange AND c.symbol = n.symbol AND c.trade_id = n.trade_id"
                    ).fetchall()[0][0]
            finally:
                conn.unregister("new_books")
                conn.unregister("new_trades")
        return int(n_books), int(n_trades)


def book_row(book: dict, symbol: str, exchange: str, received: pd.Timestamp) -> dict:
    """One raw-schema row from a ccxt order book; raises MalformedResponse on an unusable one."""
    bids, asks = book.get("bids") or [], book.get("asks") or []
    if not bids or not asks:
        raise MalformedResponse(f"{exchange} {symbol}: order book without bids or asks (unparsable reply?)")
    row = {"ts": received, "symbol": symbol, "exchange": exchange}
    for side, levels in (("bid", bids), ("ask", asks)):
        for i in range(N_LEVELS):
            px, sz = (float(levels[i][0]), float(levels[i][1])) if i < len(levels) else (np.nan, np.nan)
            row[f"{side}_px_{i}"], row[f"{side}_sz_{i}"] = px, sz
    return row


def trade_rows(trades: list[dict], symbol: str, exchange: str) -> list[dict]:
    return [{"ts": pd.Timestamp(t["timestamp"], unit="ms"), "symbol": symbol, "exchange": exchange,
             "price": float(t["price"]), "amount": float(t["amount"]), "side": t["side"],
             "trade_id": str(t["id"])} for t in trades]


def async_exchange(exchange_id: str = "binance", timeout_ms: int = EXCHANGE_TIMEOUT_MS, base_url: str | None = None):
    """An async ccxt exchange with ``enableRateLimit``; ``base_url`` sends its REST calls elsewhere
    (the local fake exchange of the tests). Public data needs no API key, so none is passed."""
    import ccxt.async_support as ccxt_async

    exchange = getattr(ccxt_async, exchange_id)({"enableRateLimit": True, "timeout": timeout_ms})
    if base_url:
        from atra_pipeline.core.raw.venue import point_ccxt_at

        point_ccxt_at(exchange, base_url)
    return exchange


class Collector:
    """Poll ``settings.symbols`` (raw names, e.g. BTCUSDT) on an async ccxt exchange into ``store``."""

    def __init__(self, exchange, store: CollectedStore, settings: CollectorSettings | None = None,
                 clock: Callable[[], pd.Timestamp] | None = None):
        self.exchange, self.store, self.settings = exchange, store, settings or CollectorSettings()
        self.stats = CollectorStats()
        self.clock = clock or (lambda: pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us"))
        self._last_ts: dict[str, pd.Timestamp] = {}

    async def _call(self, fn):
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                return await asyncio.wait_for(fn(), timeout=s.timeout_s)
            except FATAL:
                raise
            except (TimeoutError, ccxt.NetworkError) as error:
                self.stats.errors[type(error).__name__] += 1
                if attempt == s.retries:
                    self.stats.failed_calls += 1
                    raise
                self.stats.retries += 1
                await asyncio.sleep(s.backoff_s * 2**attempt)

    async def _poll(self, symbol: str, market: str, sem: asyncio.Semaphore, last_ids: dict) -> tuple[list, list]:
        ex_name = self.exchange.id
        async with sem:
            async def fetch_book():
                book = await self.exchange.fetch_order_book(market, limit=N_LEVELS)
                return book_row(book, symbol, ex_name, self._receive_time(symbol))

            try:
                book = await self._call(fetch_book)
            except (TimeoutError, ccxt.NetworkError):
                return [], []  # given up for this tick; the next tick polls again
            trades = []
            if self.settings.trades:
                params = {"fromId": last_ids[symbol] + 1} if symbol in last_ids else {}
                try:
                    got = await self._call(lambda: self.exchange.fetch_trades(market, limit=1000, params=params))
                except (TimeoutError, ccxt.NetworkError):
                    got = []  # the next poll asks from the same id again: nothing is lost
                trades = trade_rows([t for t in got if int(t["id"]) > last_ids.get(symbol, -1)], symbol, ex_name)
                if trades:
                    last_ids[symbol] = max(int(t["trade_id"]) for t in trades)
            return [book], trades

    def _receive_time(self, symbol: str) -> pd.Timestamp:
        # strictly increasing per symbol even if the clock repeats a microsecond
        ts = self.clock()
        previous = self._last_ts.get(symbol)
        if previous is not None and ts <= previous:
            ts = previous + pd.Timedelta(microseconds=1)
        self._last_ts[symbol] = ts
        return ts

    async def run(self, duration_s: float | None = None, polls: int | None = None, stop=None) -> CollectorStats:
        """Poll every ``interval_s`` until ``duration_s`` seconds or ``polls`` rounds have passed, or
        ``stop`` (a ``threading.Event``) is set."""
        await self._call(self.exchange.load_markets)
        by_id = {m["id"]: m["symbol"] for m in self.exchange.markets.values()}
        missing = [s for s in self.settings.symbols if s not in by_id]
        if missing:
            raise ccxt.BadSymbol(f"{self.exchange.id} has no market {missing}")
        last_ids = self.store.last_trade_ids(self.exchange.id)
        sem = asyncio.Semaphore(self.settings.max_in_flight)
        books, trades = [], []
        deadline = None if duration_s is None else time.monotonic() + duration_s
        rounds = 0
        try:
            while (deadline is None or time.monotonic() < deadline) and (polls is None or rounds < polls) and \
                    not (stop is not None and stop.is_set()):
                tick = time.monotonic()
                results = await asyncio.gather(*(self._poll(s, by_id[s], sem, last_ids) for s in self.settings.symbols))
                self.stats.polls += 1
                rounds += 1
                for b, t in results:
                    books += b
                    trades += t
                if len(books) + len(trades) >= self.settings.batch_rows:
                    self._flush(books, trades)
                    books, trades = [], []
                await asyncio.sleep(max(0.0, self.settings.interval_s - (time.monotonic() - tick)))
        finally:
            self._flush(books, trades)
        return self.stats

    def _flush(self, books: list[dict], trades: list[dict]) -> None:
        if not books and not trades:
            return
        b = pd.DataFrame(books, columns=L2_COLUMNS)
        t = pd.DataFrame(trades, columns=TRADE_COLUMNS)
        new_books, new_trades = self.store.append(b, t)
        self.stats.book_rows += new_books
        self.stats.trade_rows += new_trades
