"""Execution: orders through a broker, behind the safety rails, and the ledger they leave.

What to trade is the strategy's (:mod:`atra_pipeline.core.execution.executor` applies
:mod:`atra_pipeline.core.strategy.rules`); this module sends the orders and keeps the books.

Safety rails (each refusal or trip is a ``risk_events`` row):

* only the approved model's orders go out;
* ``max_position_notional`` per symbol and ``max_order_notional`` per order (the strategy sizes
  within them; an order above them is refused, never sent);
* a daily-loss kill switch on marked-to-market P&L (:mod:`atra_pipeline.core.execution.executor`), which
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
from dataclasses import dataclass, replace
from typing import Protocol

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.settings import exchange_credentials
from atra_pipeline.core.storage.database import transaction
from atra_pipeline.core.strategy.fills import CostSettings, walk_book

LEVELS = 10


@dataclass(frozen=True)
class RiskLimits:
    max_position_notional: float = 100_000.0
    """Largest position per symbol, quote currency; an order that would exceed it is refused."""
    max_order_notional: float = 50_000.0
    """Largest single order, quote currency; a larger one is refused, never sent."""
    max_daily_loss: float = 2_000.0
    """The kill switch trips (every position closed, nothing opens) when the day's marked P&L is below minus this."""
    max_consecutive_errors: int = 3
    """Broker errors in a row that trip the circuit breaker (no more orders sent)."""
    max_data_age_s: float = 30.0
    """No order when the symbol's newest collected book is older than this."""
    notional_tolerance: float = 0.005
    """An entry is sized on the decision's book and goes out on a later one: its notional may drift
    this much (a share) above the caps with the price before the rails refuse it."""
    max_signal_age_s: float = 120.0
    """An entry whose decision time is older than this when its order would go out is refused."""
    max_clock_skew_s: float = 1.0
    """A collected book stamped further than this after the clock is a clock fault: no order."""
    breaker_cooldown_s: float = 300.0
    """A tripped circuit breaker (persisted in the ledger) lets one order try again after this."""


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


# -- the ledger ----------------------------------------------------------------------------------

def risk_event(conn: duckdb.DuckDBPyConnection, kind: str, detail: str, symbol: str | None = None, now=None,
               broker: str | None = None) -> None:
    ts = now or pd.Timestamp.now(tz="UTC").tz_localize(None)
    conn.execute("INSERT INTO risk_events (ts, kind, symbol, detail, broker) VALUES (?, ?, ?, ?, ?)",
                 [ts, kind, symbol, detail, broker])


def kill_switch_tripped(conn: duckdb.DuckDBPyConnection, broker: str | None = None) -> bool:
    """True from a trip of ``broker``'s kill switch (any broker's, without one) until a later reset
    of it or of every broker's."""
    row = conn.execute("SELECT kind FROM risk_events WHERE kind IN ('kill_switch_tripped', 'kill_switch_reset') "
                       "AND (broker IS NULL OR $b IS NULL OR broker = $b) ORDER BY ts DESC, rowid DESC LIMIT 1",
                       {"b": broker}).fetchall()
    return bool(row) and row[0][0] == "kill_switch_tripped"


def reset_kill_switch(conn: duckdb.DuckDBPyConnection, who: str, broker: str | None = None) -> None:
    """A person's decision to trade again after the kill switch tripped (``broker``'s, or every one's)."""
    risk_event(conn, "kill_switch_reset", f"reset by {who}", broker=broker)


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


def _record(conn, order: Order, status: str, reason: str, broker: str, now) -> None:
    conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [order.client_order_id, now, order.decision_ts, order.symbol, order.model_id, order.side, order.qty,
                  status, reason, broker, None, order.purpose])


def _settle(conn, order: Order, status: str, reason: str, fill: Fill | None) -> None:
    """The order's outcome and its fill, together: never 'filled' without its fill row."""
    with transaction(conn):
        conn.execute("UPDATE orders SET status = ?, reason = ?, broker_order_id = ? WHERE client_order_id = ?",
                     [status, reason, fill.broker_order_id if fill else None, order.client_order_id])
        if fill:
            conn.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [fill.client_order_id, fill.ts, fill.symbol, fill.side, fill.qty, fill.price, fill.fee,
                          fill.mid])


@dataclass
class SendState:
    """What a run of sends has seen: the circuit breaker counts broker errors in a row, from where
    the ledger left them (:meth:`from_ledger`), so errors across runs trip it too."""

    errors_in_row: int = 0
    halted: str = ""

    @classmethod
    def from_ledger(cls, conn: duckdb.DuckDBPyConnection, broker: str, limits: RiskLimits, now) -> SendState:
        """The broker's trailing run of failed orders (broker errors and venue refusals, newest first,
        up to the last filled one). At ``max_consecutive_errors`` the breaker is tripped; after
        ``breaker_cooldown_s`` since the last failure one order may try again (half-open)."""
        rows = conn.execute("SELECT status, reason, created_at FROM orders WHERE broker = ? AND status IN "
                            "('filled', 'error', 'rejected') ORDER BY created_at DESC, rowid DESC LIMIT ?",
                            [broker, limits.max_consecutive_errors + 1]).fetchall()
        failures = []
        for status, reason, created in rows:
            if status == "filled":
                break
            if reason.startswith((BROKER_REFUSED, BROKER_FAILED)):  # a rail's refusal is not the broker's failure
                failures.append(created)
        state = cls(errors_in_row=len(failures))
        cooling = failures and \
            (pd.Timestamp(now) - pd.Timestamp(failures[0])).total_seconds() < limits.breaker_cooldown_s
        if len(failures) >= limits.max_consecutive_errors and cooling:
            state.halted = "circuit breaker"
        elif len(failures) >= limits.max_consecutive_errors:
            state.errors_in_row = limits.max_consecutive_errors - 1  # half-open: one more failure trips it again
        return state


BROKER_REFUSED = "refused by the venue: "
BROKER_FAILED = "broker failed: "


def _recorded_fill(conn, order: Order) -> Fill | None:
    row = conn.execute("SELECT f.ts, f.side, f.qty, f.price, f.fee, f.mid, o.broker_order_id FROM fills AS f "
                       "JOIN orders AS o USING (client_order_id) WHERE client_order_id = ?",
                       [order.client_order_id]).fetchall()
    if not row:
        return None
    ts, side, qty, price, fee, mid, broker_id = row[0]
    return Fill(order.client_order_id, pd.Timestamp(ts), order.symbol, int(side), float(qty), float(price), float(fee),
                float(mid), broker_id or "")


def _refusal(conn, order: Order, broker: Broker, limits: RiskLimits, now: pd.Timestamp) -> tuple[str, str, Order]:
    """``(kind, reason, order)``: why the rails refuse ``order`` ('' when they do not), with its
    quantity on the venue's step."""
    sent_at = pd.Timestamp(order.sent_at or now)
    if order.side not in (-1, 1) or not np.isfinite(order.qty) or order.qty <= 0:
        return "invalid_order", f"side {order.side} and quantity {order.qty}: not an order", order
    venue = broker.venue_limits(order.symbol)
    asked, order = order.qty, replace(order, qty=float(venue.round(order.qty)))
    # the collector stamps books with the real clock: one stamped after it means the clocks disagree
    # (a replay's clock is the replayed time, so this compares with the real one)
    wall = pd.Timestamp.now(tz="UTC").tz_localize(None)
    ahead = conn.execute("SELECT max(ts) FROM collected_l2_snapshots WHERE symbol = ?", [order.symbol]).fetchall()[0][0]
    if ahead is not None and (pd.Timestamp(ahead) - wall).total_seconds() > limits.max_clock_skew_s:
        return "clock", f"{order.symbol} book stamped {ahead}, after the clock {wall}: clocks disagree", order
    book = latest_book(conn, order.symbol, sent_at)
    if book is None or (sent_at - pd.Timestamp(book["ts"])).total_seconds() > limits.max_data_age_s:
        return "stale_data", (f"stale data: newest {order.symbol} snapshot {None if book is None else book['ts']} "
                              f"older than {limits.max_data_age_s} s at {sent_at}"), order
    notional = order.qty * mid_of(book)
    if order.qty <= 0 or order.qty < venue.min_qty or notional < venue.min_notional:
        return "venue_limit", (f"quantity {asked} (on the venue's step {order.qty}, notional {notional:.2f}) below "
                               f"the venue's minimum ({venue.min_qty}, notional {venue.min_notional})"), order
    if order.purpose != "entry":
        return "", "", order  # closing is always allowed
    if (sent_at - pd.Timestamp(order.decision_ts)).total_seconds() > limits.max_signal_age_s:
        return "stale_signal", (f"decision {order.decision_ts} is {(sent_at - pd.Timestamp(order.decision_ts))} old "
                                f"at {sent_at}, above {limits.max_signal_age_s} s"), order
    if notional > min(limits.max_order_notional, limits.max_position_notional) * (1 + limits.notional_tolerance):
        return "limit", (f"order notional {notional:.2f} above the limits (order {limits.max_order_notional}, "
                         f"position {limits.max_position_notional})"), order
    return "", "", order


def send_order(conn: duckdb.DuckDBPyConnection, broker: Broker, order: Order, approved_model: str | None,
               limits: RiskLimits, now: pd.Timestamp, state: SendState) -> tuple[str, Fill | None]:
    """Send ``order`` behind the rails; return its status and its fill. Statuses: 'filled';
    'already_sent' (filled by an earlier run: its recorded fill); 'recovered' (a run died after
    sending: the broker had it, and its fill is now recorded); 'rejected' (a rail or the venue
    refused it: final); 'error' (the broker could not take it: a later run sends it again under
    the same id); 'halted' (the circuit breaker is open). Closing orders (exits, the kill switch)
    pass the model, age and size rails: closing is always allowed."""
    if state.halted:
        return "halted", None
    previous = conn.execute("SELECT status FROM orders WHERE client_order_id = ?", [order.client_order_id]).fetchall()
    if previous and previous[0][0] == "filled":
        return "already_sent", _recorded_fill(conn, order)
    if previous and previous[0][0] == "rejected":
        return "rejected", None
    if previous and previous[0][0] in ("pending", "error"):  # a run died after writing it, or an answer was
        # lost (a timeout after the exchange took it): ask the broker before sending it again
        try:
            fill = broker.lookup(order)
        except BrokerError as error:  # cannot tell yet: leave it pending, ask again next run
            state.errors_in_row += 1
            risk_event(conn, "recovery", f"{order.client_order_id} pending, the broker cannot say: {error}",
                       order.symbol, now, broker.name)
            return "error", None
        if fill is not None:
            _settle(conn, order, "filled", "recovered: the broker had it", fill)
            risk_event(conn, "recovered_order", f"{order.client_order_id} was filled before the run died", order.symbol,
                       now, broker.name)
            return "recovered", fill
    if previous:  # never reached the broker, or refused by it (outage): send again under the same id
        conn.execute("DELETE FROM orders WHERE client_order_id = ?", [order.client_order_id])
    kind, reason, order = _refusal(conn, order, broker, limits, now)
    if not kind and order.purpose == "entry" and order.model_id != approved_model:
        kind, reason = "limit", f"model {order.model_id} is not the approved model {approved_model}"
    if kind:
        # an entry a rail refuses is refused for good; a closing order is tried again at the next
        # step (closing is always allowed: a stale book or a clock fault only delays it)
        status = "rejected" if order.purpose == "entry" else "error"
        _record(conn, order, status, reason, broker.name, now)
        risk_event(conn, kind, reason, order.symbol, now, broker.name)
        return status, None
    # the order is in the ledger before it goes out: a run that dies after sending finds it
    # 'pending' and asks the broker before doing anything else with it
    _record(conn, order, "pending", "", broker.name, now)
    try:
        fill = broker.place(order)
    except BrokerRejected as error:
        status, message = "rejected", BROKER_REFUSED + str(error)
    except Exception as error:  # noqa: BLE001 - whatever the broker raised, the order must not stay pending
        status, message = "error", f"{BROKER_FAILED}{type(error).__name__}: {error}"
    else:
        state.errors_in_row = 0
        _settle(conn, order, "filled", "", fill)
        return "filled", fill
    state.errors_in_row += 1
    _settle(conn, order, status, message, None)
    risk_event(conn, "broker_" + status, message, order.symbol, now, broker.name)
    if state.errors_in_row >= limits.max_consecutive_errors:
        risk_event(conn, "circuit_breaker", f"{state.errors_in_row} broker failures in a row: stopped sending", None,
                   now, broker.name)
        state.halted = "circuit breaker"
    return status, None


def reconcile(conn: duckdb.DuckDBPyConnection, broker: Broker,
              tolerance: float = 1e-9) -> dict[str, tuple[float, float]]:
    """Positions where the ledger and the broker disagree: ``{symbol: (ledger, broker)}``; empty = reconciled."""
    ours, theirs = ledger_positions(conn, broker.name), broker.positions()
    return {s: (ours.get(s, 0.0), theirs.get(s, 0.0)) for s in set(ours) | set(theirs)
            if abs(ours.get(s, 0.0) - theirs.get(s, 0.0)) > tolerance}


def limit_audit(conn: duckdb.DuckDBPyConnection, broker: str, limits: RiskLimits) -> dict:
    """The largest filled entry order and the largest open position (at its last fill's mid) of
    ``broker``'s ledger against the limits; ``passed`` when neither breaks one (closing orders,
    exits and the kill switch's, excepted: closing is always allowed)."""
    worst = conn.execute("SELECT coalesce(max(f.qty * f.price), 0) FROM fills AS f "
                         "JOIN orders AS o USING (client_order_id) WHERE o.broker = ? AND o.purpose = 'entry'",
                         [broker]).fetchall()[0][0]
    positions = conn.execute("SELECT sum(f.side * f.qty) AS qty, last(f.mid ORDER BY f.ts) AS mid FROM fills AS f "
                             "JOIN orders AS o USING (client_order_id) WHERE o.broker = ? GROUP BY f.symbol",
                             [broker]).fetchdf()
    largest = float((positions["qty"].abs() * positions["mid"]).max()) if len(positions) else 0.0
    tolerance = 1 + limits.notional_tolerance
    return {"passed": bool(worst <= limits.max_order_notional * tolerance and
                           largest <= limits.max_position_notional * tolerance),
            "largest_order_notional": float(worst), "largest_position_notional": largest}
