"""The brokers: where an order goes out and comes back a fill (:class:`PaperBroker`, the backtest's
book walk and fees on the collected books, also the replay's; :class:`CcxtBroker`, an exchange
through ccxt), the books they fill on, and their positions reconciled with the ledger.

What to trade is the strategy's (:mod:`atra_pipeline.core.execution.executor` applies
:mod:`atra_pipeline.core.strategy.rules`); orders are sent to a broker behind the rails
(:mod:`atra_pipeline.core.execution.rails`), and leave the ledger of
:mod:`atra_pipeline.core.execution.orders`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.execution.orders import Fill, Order, ledger_positions
from atra_pipeline.core.settings import exchange_credentials
from atra_pipeline.core.strategy.fills import CostSettings, walk_book

LEVELS = 10


class BrokerError(Exception):
    """The broker could not take the order (network, exchange down, credentials refused): the order
    is 'error', sent again under the same id by a later run; counts toward the breaker."""


class BrokerRejected(Exception):
    """The venue refused the order itself (size, funds, filters): the order is 'rejected', final;
    counts toward the breaker (repeated refusals mean something is wrong)."""


@dataclass(frozen=True)
class VenueLimits:
    """A market's order filters: quantities are multiples of ``step``, at least ``min_qty`` and
    ``min_notional`` of quote currency."""

    step: float = 0.0
    min_qty: float = 0.0
    min_notional: float = 0.0

    def round(self, qty: float) -> float:
        """``qty`` down to a multiple of ``step`` (to the nearest multiple within float noise)."""
        if self.step <= 0:
            return qty
        return np.floor(qty / self.step + 1e-9) * self.step


class Broker(Protocol):
    name: str

    def place(self, order: Order) -> Fill: ...

    def positions(self) -> dict[str, float]: ...

    def equity(self, at: pd.Timestamp) -> float:
        """The account's equity at ``at``, positions marked at the mid."""

    def lookup(self, order: Order) -> Fill | None:
        """The fill of an order the broker has under ``order.client_order_id``; None if it never arrived."""

    def venue_limits(self, symbol: str) -> VenueLimits:
        """The market's order filters."""


def latest_book(conn: duckdb.DuckDBPyConnection, symbol: str, at: pd.Timestamp | None = None) -> pd.Series | None:
    """The newest snapshot of ``symbol`` (at or before ``at``, if given), collected or stored."""
    bound = "AND ts <= $at" if at is not None else ""
    params = {"s": symbol, **({"at": pd.Timestamp(at).to_pydatetime()} if at is not None else {})}
    rows = conn.execute(
        f"SELECT * FROM (SELECT * FROM collected_l2_snapshots WHERE symbol = $s {bound} UNION ALL BY NAME "
        f"SELECT * FROM raw_l2_snapshots WHERE symbol = $s {bound}) ORDER BY ts DESC LIMIT 1", params).fetchdf()
    return None if rows.empty else rows.iloc[0]


def first_book_from(conn: duckdb.DuckDBPyConnection, symbol: str, at: pd.Timestamp) -> pd.Series | None:
    """The first snapshot of ``symbol`` at or after ``at`` (None when none has arrived yet)."""
    rows = conn.execute(
        "SELECT * FROM (SELECT * FROM collected_l2_snapshots WHERE symbol = $s AND ts >= $at UNION ALL BY NAME "
        "SELECT * FROM raw_l2_snapshots WHERE symbol = $s AND ts >= $at) ORDER BY ts LIMIT 1",
        {"s": symbol, "at": pd.Timestamp(at).to_pydatetime()}).fetchdf()
    return None if rows.empty else rows.iloc[0]


def mid_of(book: pd.Series) -> float:
    return float((book["bid_px_0"] + book["ask_px_0"]) / 2)


def book_levels(book: pd.Series, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Prices and sizes of one side (``bid`` / ``ask``) of a snapshot row, best first."""
    return (book[[f"{side}_px_{i}" for i in range(LEVELS)]].to_numpy(dtype=float),
            book[[f"{side}_sz_{i}" for i in range(LEVELS)]].to_numpy(dtype=float))


class PaperBroker:
    """Fills market orders with the backtest's book walk and fees on the book the order meets: the
    first snapshot at or after the time it goes out plus the latency, or the newest one while that
    has not arrived (live). So paper trading, a replay and the backtest price a trade the same way.
    It keeps its own account (table ``paper_fills`` under its name), apart from the execution
    ledger, as an exchange would; its equity is marked at any time from it."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, costs: CostSettings = CostSettings(), now=None,
                 name: str = "paper", initial_equity: float = 100_000.0, limits: VenueLimits = VenueLimits()):
        self.conn, self.costs, self.name, self.initial_equity = conn, costs, name, float(initial_equity)
        self.limits = limits
        self.now = now or (lambda: pd.Timestamp.now(tz="UTC").tz_localize(None))

    def place(self, order: Order) -> Fill:
        arrives = pd.Timestamp(order.sent_at or self.now()) + pd.Timedelta(milliseconds=self.costs.latency_ms)
        book = first_book_from(self.conn, order.symbol, arrives)
        if book is None:
            book = latest_book(self.conn, order.symbol)
        if book is None:
            raise BrokerError(f"{self.name}: no book for {order.symbol}")
        px, sz = book_levels(book, "ask" if order.side > 0 else "bid")
        price, _ = walk_book(px, sz, order.qty, self.costs.beyond_book_penalty_bps * 1e-4, float(order.side))
        ts = max(pd.Timestamp(book["ts"]), arrives)
        fee = self.costs.taker_fee_bps * 1e-4 * order.qty * float(price)
        self.conn.execute("INSERT INTO paper_fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          [self.name, order.client_order_id, ts, order.symbol, order.side, order.qty,
                           float(price), fee])
        return Fill(order.client_order_id, ts, order.symbol, order.side, order.qty, float(price), fee, mid_of(book),
                    order.client_order_id)

    def lookup(self, order: Order) -> Fill | None:
        row = self.conn.execute("SELECT ts, side, qty, price, fee FROM paper_fills WHERE account = ? AND "
                                "client_order_id = ?", [self.name, order.client_order_id]).fetchall()
        if not row:
            return None
        ts, side, qty, price, fee = row[0]
        book = latest_book(self.conn, order.symbol, ts)
        return Fill(order.client_order_id, pd.Timestamp(ts), order.symbol, int(side), float(qty), float(price),
                    float(fee), mid_of(book) if book is not None else float(price), order.client_order_id)

    def venue_limits(self, symbol: str) -> VenueLimits:
        return self.limits

    def positions(self, at: pd.Timestamp | None = None) -> dict[str, float]:
        bound, args = ("AND ts <= ?", [self.name, at]) if at is not None else ("", [self.name])
        return {s: float(q) for s, q in self.conn.execute(
            f"SELECT symbol, sum(side * qty) FROM paper_fills WHERE account = ? {bound} GROUP BY symbol",
            args).fetchall()}

    def equity(self, at: pd.Timestamp) -> float:
        """Starting equity plus the cash of the fills up to ``at`` (fees paid) plus the positions
        then held at each symbol's mid at ``at``."""
        cash = self.conn.execute("SELECT coalesce(sum(-side * qty * price - fee), 0) FROM paper_fills "
                                 "WHERE account = ? AND ts <= ?", [self.name, at]).fetchall()[0][0]
        value = 0.0
        for symbol, qty in self.positions(at).items():
            if abs(qty) > 0 and (book := latest_book(self.conn, symbol, at)) is not None:
                value += qty * mid_of(book)
        return self.initial_equity + float(cash) + value


class CcxtBroker:
    """Orders through ccxt (``create_order`` / ``fetch_order`` / ``cancel_order``), in the exchange's
    sandbox when it has one. API keys come only from ``ATRA_<EXCHANGE>_API_KEY`` and
    ``ATRA_<EXCHANGE>_API_SECRET``; they are handed to ccxt and never logged, stored or printed."""

    name = "ccxt"

    def __init__(self, exchange_id: str = "binance", sandbox: bool = True, base_url: str | None = None):
        import ccxt

        credentials = exchange_credentials(exchange_id)
        if credentials is None:
            prefix = f"ATRA_{exchange_id.upper()}_"
            raise RuntimeError(f"set {prefix}API_KEY and {prefix}API_SECRET to trade on {exchange_id}")
        key, secret = credentials
        exchange = getattr(ccxt, exchange_id)({"apiKey": key, "secret": secret, "enableRateLimit": True})
        if sandbox:
            exchange.set_sandbox_mode(True)
        if base_url:  # the local fake exchange of the tests
            from atra_pipeline.core.raw.venue import point_ccxt_at

            point_ccxt_at(exchange, base_url)
        self.exchange = exchange

    def __repr__(self) -> str:  # never show credentials
        return f"CcxtBroker({self.exchange.id}, sandbox={getattr(self.exchange, 'isSandboxModeEnabled', '?')})"

    def _market(self, symbol: str) -> dict:
        return next(m for m in self.exchange.load_markets().values() if m["id"] == symbol)

    def _fill(self, order: Order, done: dict) -> Fill:
        """The order's fill as the exchange reports it: a partial fill records what was filled; an
        order not filled at all is not a fill (the broker could not fill it: asked again later)."""
        filled = float(done.get("filled") or 0.0)
        price = float(done.get("average") or done.get("price") or np.nan)
        if filled <= 0 or not np.isfinite(price):
            raise BrokerError(f"{self.exchange.id}: order {done.get('id')} {done.get('status')}, nothing filled yet")
        fee = float((done.get("fee") or {}).get("cost") or 0.0)
        return Fill(order.client_order_id, pd.Timestamp(done["timestamp"], unit="ms"), order.symbol, order.side,
                    filled, price, fee, price, str(done["id"]))

    def place(self, order: Order) -> Fill:
        import ccxt

        try:
            market = self._market(order.symbol)["symbol"]
            try:
                sent = self.exchange.create_order(market, "market", "buy" if order.side > 0 else "sell", order.qty,
                                                  params={"newClientOrderId": order.client_order_id})
                done = self.exchange.fetch_order(sent["id"], market)
            except (ccxt.DuplicateOrderId, ccxt.InvalidOrder) as error:
                if "Duplicate" not in str(error):
                    raise
                # sent before (a retry after a lost reply): the exchange has it under our id
                done = self.exchange.fetch_order(None, market, params={"origClientOrderId": order.client_order_id})
        except (ccxt.NetworkError, ccxt.AuthenticationError, ccxt.PermissionDenied) as error:
            raise BrokerError(f"{self.exchange.id}: {type(error).__name__}") from None
        except ccxt.ExchangeError as error:  # the venue answered, and refused (filters, funds, symbol)
            raise BrokerRejected(f"{self.exchange.id}: {type(error).__name__}: {str(error)[:200]}") from None
        return self._fill(order, done)

    def lookup(self, order: Order) -> Fill | None:
        import ccxt

        try:
            market = self._market(order.symbol)["symbol"]
            done = self.exchange.fetch_order(None, market, params={"origClientOrderId": order.client_order_id})
        except ccxt.OrderNotFound:
            return None
        except (ccxt.NetworkError, ccxt.AuthenticationError, ccxt.PermissionDenied) as error:
            raise BrokerError(f"{self.exchange.id}: {type(error).__name__}") from None
        return self._fill(order, done) if float(done.get("filled") or 0) > 0 else None

    def venue_limits(self, symbol: str) -> VenueLimits:
        market = self._market(symbol)
        limits, precision = market.get("limits") or {}, market.get("precision") or {}
        return VenueLimits(step=float(precision.get("amount") or 0.0),
                           min_qty=float((limits.get("amount") or {}).get("min") or 0.0),
                           min_notional=float((limits.get("cost") or {}).get("min") or 0.0))

    def positions(self) -> dict[str, float]:
        balance = self.exchange.fetch_balance()
        return {f"{asset}USDT": float(v) for asset, v in balance.get("total", {}).items() if asset != "USDT" and v}

    def equity(self, at: pd.Timestamp | None = None) -> float:
        """The account now: quote balance plus every other asset at its book's mid (``at`` is
        ignored: an exchange reports its account as it stands)."""
        balance = self.exchange.fetch_balance().get("total", {})
        equity = float(balance.get("USDT") or 0.0)
        for asset, amount in balance.items():
            if asset != "USDT" and amount:
                book = self.exchange.fetch_order_book(f"{asset}/USDT", limit=5)
                equity += float(amount) * (book["bids"][0][0] + book["asks"][0][0]) / 2
        return equity

    def cancel(self, symbol: str, client_order_id: str) -> dict:
        market = next(m["symbol"] for m in self.exchange.load_markets().values() if m["id"] == symbol)
        return self.exchange.cancel_order(None, market, params={"origClientOrderId": client_order_id})


def reconcile(conn: duckdb.DuckDBPyConnection, broker: Broker,
              tolerance: float = 1e-9) -> dict[str, tuple[float, float]]:
    """Positions where the ledger and the broker disagree: ``{symbol: (ledger, broker)}``; empty = reconciled."""
    ours, theirs = ledger_positions(conn, broker.name), broker.positions()
    return {s: (ours.get(s, 0.0), theirs.get(s, 0.0)) for s in set(ours) | set(theirs)
            if abs(ours.get(s, 0.0) - theirs.get(s, 0.0)) > tolerance}
