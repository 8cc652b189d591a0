"""Execution: orders through a broker, behind the safety rails, and the ledger they leave.

What to trade is the strategy's (:mod:`atra_pipeline.core.trading` applies
:mod:`atra_pipeline.core.strategy`); this module sends the orders and keeps the books.

Safety rails (each refusal or trip is a ``risk_events`` row):

* only the approved model's orders go out;
* ``max_position_notional`` per symbol and ``max_order_notional`` per order (the strategy sizes
  within them; an order above them is refused, never sent);
* a daily-loss kill switch on marked-to-market P&L (:mod:`atra_pipeline.core.trading`), which
  flattens and waits for a person's reset (:func:`reset_kill_switch`);
* a circuit breaker: after ``max_consecutive_errors`` broker errors in a row the run stops sending;
* a stale-data guard: no order when the symbol's newest snapshot is older than ``max_data_age_s``;
* idempotent client order ids, ``atra-<hash of model, symbol, decision time, purpose>``: an order is in
  ``orders`` as 'pending' before it goes out, so a retried run never sends it twice; one the
  broker refused ('error', e.g. an outage) is sent again under the same id (exchanges reject a
  repeated client id, so even a refusal that did reach the exchange cannot double).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Protocol

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.fills import CostSettings, walk_book

LEVELS = 10


@dataclass(frozen=True)
class RiskLimits:
    max_position_notional: float = 100_000.0
    max_order_notional: float = 50_000.0
    max_daily_loss: float = 2_000.0
    max_consecutive_errors: int = 3
    max_data_age_s: float = 30.0
    notional_tolerance: float = 0.005
    """An entry is sized on the decision's book and goes out on a later one: its notional may drift
    this much (a share) above the caps with the price before the rails refuse it."""


@dataclass(frozen=True)
class Order:
    client_order_id: str
    symbol: str
    side: int
    qty: float
    decision_ts: pd.Timestamp
    model_id: str
    sent_at: pd.Timestamp | None = None
    """When the order goes out (the replay's clock; None: now)."""
    purpose: str = "entry"
    """'entry', 'exit' or 'kill': exits and the kill switch's orders close, and are never capped."""


@dataclass(frozen=True)
class Fill:
    client_order_id: str
    ts: pd.Timestamp
    symbol: str
    side: int
    qty: float
    price: float
    fee: float
    mid: float
    broker_order_id: str = ""


class BrokerError(Exception):
    """The broker could not take the order (network, exchange down): counts toward the breaker."""


class Broker(Protocol):
    name: str

    def place(self, order: Order) -> Fill: ...

    def positions(self) -> dict[str, float]: ...

    def equity(self, at: pd.Timestamp) -> float:
        """The account's equity at ``at``, positions marked at the mid."""


def client_order_id(model_id: str, symbol: str, decision_ts: pd.Timestamp, purpose: str = "signal") -> str:
    digest = hashlib.sha1(f"{model_id}|{symbol}|{pd.Timestamp(decision_ts).isoformat()}|{purpose}".encode()).hexdigest()
    return f"atra-{digest[:20]}"


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
                 name: str = "paper", initial_equity: float = 100_000.0):
        self.conn, self.costs, self.name, self.initial_equity = conn, costs, name, float(initial_equity)
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
                          [self.name, order.client_order_id, ts, order.symbol, order.side, order.qty, float(price), fee])
        return Fill(order.client_order_id, ts, order.symbol, order.side, order.qty, float(price), fee, mid_of(book),
                    order.client_order_id)

    def positions(self, at: pd.Timestamp | None = None) -> dict[str, float]:
        bound, args = ("AND ts <= ?", [self.name, at]) if at is not None else ("", [self.name])
        return {s: float(q) for s, q in self.conn.execute(
            f"SELECT symbol, sum(side * qty) FROM paper_fills WHERE account = ? {bound} GROUP BY symbol", args).fetchall()}

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

        prefix = f"ATRA_{exchange_id.upper()}_"
        key, secret = os.environ.get(prefix + "API_KEY"), os.environ.get(prefix + "API_SECRET")
        if not key or not secret:
            raise RuntimeError(f"set {prefix}API_KEY and {prefix}API_SECRET to trade on {exchange_id}")
        exchange = getattr(ccxt, exchange_id)({"apiKey": key, "secret": secret, "enableRateLimit": True})
        if sandbox:
            exchange.set_sandbox_mode(True)
        if base_url:  # the local fake exchange of the tests
            from atra_pipeline.testing.fake_binance import point_ccxt_at

            point_ccxt_at(exchange, base_url)
        self.exchange = exchange

    def __repr__(self) -> str:  # never show credentials
        return f"CcxtBroker({self.exchange.id}, sandbox={getattr(self.exchange, 'isSandboxModeEnabled', '?')})"

    def place(self, order: Order) -> Fill:
        import ccxt

        try:
            market = next(m["symbol"] for m in self.exchange.load_markets().values() if m["id"] == order.symbol)
            try:
                sent = self.exchange.create_order(market, "market", "buy" if order.side > 0 else "sell", order.qty,
                                                  params={"newClientOrderId": order.client_order_id})
                done = self.exchange.fetch_order(sent["id"], market)
            except (ccxt.DuplicateOrderId, ccxt.InvalidOrder) as error:
                if "Duplicate" not in str(error):
                    raise
                # sent before (a retry after a lost reply): the exchange has it under our id
                done = self.exchange.fetch_order(None, market, params={"origClientOrderId": order.client_order_id})
        except ccxt.NetworkError as error:
            raise BrokerError(f"{self.exchange.id}: {type(error).__name__}") from None
        fee = float((done.get("fee") or {}).get("cost") or 0.0)
        price = float(done.get("average") or done.get("price") or np.nan)
        return Fill(order.client_order_id, pd.Timestamp(done["timestamp"], unit="ms"), order.symbol, order.side,
                    float(done.get("filled") or order.qty), price, fee, price, str(done["id"]))

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


# -- the ledger ----------------------------------------------------------------------------------

def risk_event(conn: duckdb.DuckDBPyConnection, kind: str, detail: str, symbol: str | None = None, now=None) -> None:
    ts = now or pd.Timestamp.now(tz="UTC").tz_localize(None)
    conn.execute("INSERT INTO risk_events VALUES (?, ?, ?, ?)", [ts, kind, symbol, detail])


def kill_switch_tripped(conn: duckdb.DuckDBPyConnection) -> bool:
    """True from a trip until a later reset."""
    row = conn.execute("SELECT kind FROM risk_events WHERE kind IN ('kill_switch_tripped', 'kill_switch_reset') "
                       "ORDER BY ts DESC LIMIT 1").fetchall()
    return bool(row) and row[0][0] == "kill_switch_tripped"


def reset_kill_switch(conn: duckdb.DuckDBPyConnection, who: str) -> None:
    """A person's decision to trade again after the kill switch tripped."""
    risk_event(conn, "kill_switch_reset", f"reset by {who}")


def ledger_positions(conn: duckdb.DuckDBPyConnection, broker: str) -> dict[str, float]:
    rows = conn.execute("SELECT f.symbol, sum(f.side * f.qty) FROM fills AS f JOIN orders AS o USING (client_order_id) "
                        "WHERE o.broker = ? GROUP BY f.symbol", [broker]).fetchall()
    return {s: float(q) for s, q in rows}


def ledger_value(conn: duckdb.DuckDBPyConnection, broker: str, at: pd.Timestamp) -> float:
    """Cash of ``broker``'s fills up to ``at`` (fees paid) plus the positions then held at each
    symbol's mid at ``at``: the ledger's marked value, relative to the starting cash."""
    rows = conn.execute("SELECT f.symbol, sum(-f.side * f.qty * f.price - f.fee), sum(f.side * f.qty) FROM fills AS f "
                        "JOIN orders AS o USING (client_order_id) WHERE o.broker = ? AND f.ts <= ? GROUP BY f.symbol",
                        [broker, at]).fetchall()
    value = 0.0
    for symbol, cash, qty in rows:
        value += float(cash)
        if abs(qty) > 1e-12 and (book := latest_book(conn, symbol, at)) is not None:
            value += float(qty) * mid_of(book)
    return value


def marked_pnl_today(conn: duckdb.DuckDBPyConnection, broker: str, now: pd.Timestamp) -> float:
    """``broker``'s P&L since the start of ``now``'s UTC day, marked to market at both ends."""
    now = pd.Timestamp(now)
    return ledger_value(conn, broker, now) - ledger_value(conn, broker, now.normalize())


def _record(conn, order: Order, status: str, reason: str, broker: str, fill: Fill | None, now) -> None:
    conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [order.client_order_id, now, order.decision_ts, order.symbol, order.model_id, order.side, order.qty,
                  status, reason, broker, fill.broker_order_id if fill else None, order.purpose])
    if fill:
        conn.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [fill.client_order_id, fill.ts, fill.symbol, fill.side, fill.qty, fill.price, fill.fee, fill.mid])


def _settle(conn, order: Order, status: str, reason: str, fill: Fill | None) -> None:
    conn.execute("UPDATE orders SET status = ?, reason = ?, broker_order_id = ? WHERE client_order_id = ?",
                 [status, reason, fill.broker_order_id if fill else None, order.client_order_id])
    if fill:
        conn.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [fill.client_order_id, fill.ts, fill.symbol, fill.side, fill.qty, fill.price, fill.fee, fill.mid])


@dataclass
class SendState:
    """What a run of sends has seen: the circuit breaker counts broker errors in a row."""

    errors_in_row: int = 0
    halted: str = ""


def send_order(conn: duckdb.DuckDBPyConnection, broker: Broker, order: Order, approved_model: str | None,
               limits: RiskLimits, now: pd.Timestamp, state: SendState) -> tuple[str, Fill | None]:
    """Send ``order`` behind the rails; return its status ('filled', 'rejected', 'error',
    'already_sent', 'halted') and its fill. Closing orders (exits, the kill switch) pass the
    model and size rails: closing is always allowed."""
    if state.halted:
        return "halted", None
    previous = conn.execute("SELECT status FROM orders WHERE client_order_id = ?", [order.client_order_id]).fetchall()
    if previous and previous[0][0] != "error":
        return "already_sent", None
    if previous:  # the broker refused it (outage): send again under the same id, which the exchange dedups
        conn.execute("DELETE FROM orders WHERE client_order_id = ?", [order.client_order_id])
    book = latest_book(conn, order.symbol, order.sent_at)
    reason, kind = "", "limit"
    if order.purpose == "entry" and order.model_id != approved_model:
        reason = f"model {order.model_id} is not the approved model {approved_model}"
    elif order.purpose == "entry" and book is not None and \
            order.qty * mid_of(book) > min(limits.max_order_notional, limits.max_position_notional) * \
            (1 + limits.notional_tolerance):
        reason = (f"order notional {order.qty * mid_of(book):.2f} above the limits (order "
                  f"{limits.max_order_notional}, position {limits.max_position_notional})")
    elif book is None or (pd.Timestamp(order.sent_at or now) - pd.Timestamp(book["ts"])).total_seconds() > limits.max_data_age_s:
        kind = "stale_data"
        reason = f"stale data: newest {order.symbol} snapshot {None if book is None else book['ts']} older than " \
                 f"{limits.max_data_age_s} s at {order.sent_at or now}"
    if reason:
        _record(conn, order, "rejected", reason, broker.name, None, now)
        risk_event(conn, kind, reason, order.symbol, now)
        return "rejected", None
    # the order is in the ledger before it goes out: a run that dies after sending finds it
    # 'pending' and does not send it again (reconciliation then shows what the broker did)
    _record(conn, order, "pending", "", broker.name, None, now)
    try:
        fill = broker.place(order)
    except BrokerError as error:
        state.errors_in_row += 1
        _settle(conn, order, "error", str(error), None)
        if state.errors_in_row >= limits.max_consecutive_errors:
            risk_event(conn, "circuit_breaker", f"{state.errors_in_row} broker errors in a row: stopped sending", None, now)
            state.halted = "circuit breaker"
        return "error", None
    state.errors_in_row = 0
    _settle(conn, order, "filled", "", fill)
    return "filled", fill


def reconcile(conn: duckdb.DuckDBPyConnection, broker: Broker, tolerance: float = 1e-9) -> dict[str, tuple[float, float]]:
    """Positions where the ledger and the broker disagree: ``{symbol: (ledger, broker)}``; empty = reconciled."""
    ours, theirs = ledger_positions(conn, broker.name), broker.positions()
    return {s: (ours.get(s, 0.0), theirs.get(s, 0.0)) for s in set(ours) | set(theirs)
            if abs(ours.get(s, 0.0) - theirs.get(s, 0.0)) > tolerance}


def limit_audit(conn: duckdb.DuckDBPyConnection, broker: str, limits: RiskLimits) -> dict:
    """The largest filled entry order and the largest open position (at its last fill's mid) of
    ``broker``'s ledger against the limits; ``passed`` when neither breaks one (closing orders,
    exits and the kill switch's, excepted: closing is always allowed)."""
    worst = conn.execute("SELECT coalesce(max(f.qty * f.price), 0) FROM fills AS f JOIN orders AS o USING (client_order_id) "
                         "WHERE o.broker = ? AND o.purpose = 'entry'", [broker]).fetchall()[0][0]
    positions = conn.execute("SELECT sum(f.side * f.qty) AS qty, last(f.mid ORDER BY f.ts) AS mid FROM fills AS f "
                             "JOIN orders AS o USING (client_order_id) WHERE o.broker = ? GROUP BY f.symbol",
                             [broker]).fetchdf()
    largest = float((positions["qty"].abs() * positions["mid"]).max()) if len(positions) else 0.0
    tolerance = 1 + limits.notional_tolerance
    return {"passed": bool(worst <= limits.max_order_notional * tolerance and
                           largest <= limits.max_position_notional * tolerance),
            "largest_order_notional": float(worst), "largest_position_notional": largest}
