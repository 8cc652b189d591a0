"""Execution: turn new live signals into orders through a broker, behind the safety rails.

Position rule: a signal that bets asks for a position of ``side x size_notional / mid`` in its
symbol; a signal without a bet asks for none (the position is closed). The order is the
difference from the current position, clipped by the limits.

Safety rails (each refusal or trip is a ``risk_events`` row):

* only signals of the registry's approved model trade;
* ``max_position_notional`` per symbol and ``max_order_notional`` per order;
* a daily-loss kill switch: once the day's realised P&L (fills at their prices, fees included)
  falls below ``-max_daily_loss``, every position is flattened and no new order goes out until a
  person resets it (:func:`reset_kill_switch`);
* a circuit breaker: after ``max_consecutive_errors`` broker errors in a row the run stops sending;
* a stale-data guard: no order when the symbol's newest snapshot is older than ``max_data_age_s``;
* idempotent client order ids, ``atra-<hash of model, symbol, decision time>``: an order is in
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

from atra_pipeline.core.backtest import CostSettings, walk_book

LEVELS = 10


@dataclass(frozen=True)
class RiskLimits:
    max_position_notional: float = 100_000.0
    max_order_notional: float = 50_000.0
    max_daily_loss: float = 2_000.0
    max_consecutive_errors: int = 3
    max_data_age_s: float = 30.0


@dataclass(frozen=True)
class Order:
    client_order_id: str
    symbol: str
    side: int
    qty: float
    decision_ts: pd.Timestamp
    model_id: str


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


def client_order_id(model_id: str, symbol: str, decision_ts: pd.Timestamp, purpose: str = "signal") -> str:
    digest = hashlib.sha1(f"{model_id}|{symbol}|{pd.Timestamp(decision_ts).isoformat()}|{purpose}".encode()).hexdigest()
    return f"atra-{digest[:20]}"


def latest_book(conn: duckdb.DuckDBPyConnection, symbol: str) -> pd.Series | None:
    """The newest snapshot of ``symbol``, collected or stored."""
    rows = conn.execute(
        "SELECT * FROM (SELECT * FROM collected_l2_snapshots WHERE symbol = $s UNION ALL BY NAME "
        "SELECT * FROM raw_l2_snapshots WHERE symbol = $s) ORDER BY ts DESC LIMIT 1", {"s": symbol}).fetchdf()
    return None if rows.empty else rows.iloc[0]


class PaperBroker:
    """Fills market orders against the newest snapshot with the backtest's book walk and fees, so
    paper trading and the backtest price a trade the same way. It keeps its own account (table
    ``paper_positions``), apart from the execution ledger, as an exchange would."""

    name = "paper"

    def __init__(self, conn: duckdb.DuckDBPyConnection, costs: CostSettings = CostSettings(), now=None):
        self.conn, self.costs = conn, costs
        self.now = now or (lambda: pd.Timestamp.now(tz="UTC").tz_localize(None))

    def place(self, order: Order) -> Fill:
        book = latest_book(self.conn, order.symbol)
        if book is None:
            raise BrokerError(f"paper: no book for {order.symbol}")
        side = "ask" if order.side > 0 else "bid"
        px = book[[f"{side}_px_{i}" for i in range(LEVELS)]].to_numpy(dtype=float)
        sz = book[[f"{side}_sz_{i}" for i in range(LEVELS)]].to_numpy(dtype=float)
        price, _ = walk_book(px, sz, order.qty, self.costs.beyond_book_penalty_bps * 1e-4, float(order.side))
        mid = (book["bid_px_0"] + book["ask_px_0"]) / 2
        self.conn.execute("INSERT INTO paper_positions VALUES (?, ?) ON CONFLICT (symbol) DO UPDATE SET "
                          "qty = paper_positions.qty + EXCLUDED.qty", [order.symbol, order.side * order.qty])
        return Fill(order.client_order_id, self.now(), order.symbol, order.side, order.qty, float(price),
                    self.costs.taker_fee_bps * 1e-4 * order.qty * float(price), float(mid), order.client_order_id)

    def positions(self) -> dict[str, float]:
        return {s: float(q) for s, q in self.conn.execute("SELECT symbol, qty FROM paper_positions").fetchall()}


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


def realised_pnl_today(conn: duckdb.DuckDBPyConnection, day: pd.Timestamp, marks: dict[str, float]) -> float:
    """Cash flow of today's fills plus today's net position valued at ``marks``, minus fees."""
    rows = conn.execute("SELECT symbol, sum(-side * qty * price) - sum(fee), sum(side * qty) FROM fills "
                        "WHERE ts >= ? AND ts < ? + INTERVAL 1 DAY GROUP BY symbol", [day, day]).fetchall()
    return float(sum(cash + qty * marks.get(symbol, 0.0) for symbol, cash, qty in rows))


def _record(conn, order: Order, status: str, reason: str, broker: str, fill: Fill | None, now) -> None:
    conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [order.client_order_id, now, order.decision_ts, order.symbol, order.model_id, order.side, order.qty,
                  status, reason, broker, fill.broker_order_id if fill else None])
    if fill:
        conn.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [fill.client_order_id, fill.ts, fill.symbol, fill.side, fill.qty, fill.price, fill.fee, fill.mid])


def _capped_qty(book: pd.Series, side: int, cap: float, penalty: float) -> float:
    """The largest quantity whose walk of ``book`` costs at most ``cap``: a quantity sized at the
    touch walks to a worse average price p, and ``cap / p`` then costs no more than ``cap``
    (a smaller order's average price is no worse)."""
    name = "ask" if side > 0 else "bid"
    px = book[[f"{name}_px_{i}" for i in range(LEVELS)]].to_numpy(dtype=float)
    sz = book[[f"{name}_sz_{i}" for i in range(LEVELS)]].to_numpy(dtype=float)
    first = cap / px[0]
    vwap, _ = walk_book(px, sz, first, penalty, float(side))
    return cap / max(vwap, px[0]) if side > 0 else cap / px[0]


def _settle(conn, order: Order, status: str, reason: str, fill: Fill | None) -> None:
    conn.execute("UPDATE orders SET status = ?, reason = ?, broker_order_id = ? WHERE client_order_id = ?",
                 [status, reason, fill.broker_order_id if fill else None, order.client_order_id])
    if fill:
        conn.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [fill.client_order_id, fill.ts, fill.symbol, fill.side, fill.qty, fill.price, fill.fee, fill.mid])


def execute_signals(conn: duckdb.DuckDBPyConnection, signals: pd.DataFrame, broker: Broker, approved_model: str | None,
                    limits: RiskLimits = RiskLimits(), now=None) -> dict:
    """Send the orders the ``signals`` ask for through ``broker`` behind the rails; return counts."""
    now = now or pd.Timestamp.now(tz="UTC").tz_localize(None)
    counts = {"filled": 0, "rejected": 0, "errors": 0, "already_sent": 0}
    errors_in_row = 0
    if kill_switch_tripped(conn):
        return {**counts, "halted": "kill switch tripped: waiting for a person's reset"}
    for s in signals.sort_values(["decision_ts", "symbol"]).itertuples():
        position = ledger_positions(conn, broker.name).get(s.symbol, 0.0)
        book = latest_book(conn, s.symbol)
        if book is None:
            continue
        mid = float((book["bid_px_0"] + book["ask_px_0"]) / 2)
        target = s.side * min(s.size_notional, limits.max_position_notional) / mid if s.side != 0 else 0.0
        delta = target - position
        if abs(delta) * mid < 1e-9:
            continue
        penalty = getattr(broker, "costs", CostSettings()).beyond_book_penalty_bps * 1e-4
        qty = min(abs(delta), _capped_qty(book, int(np.sign(delta)), limits.max_order_notional, penalty))
        order = Order(client_order_id(s.model_id, s.symbol, s.decision_ts), s.symbol, int(np.sign(delta)), qty,
                      pd.Timestamp(s.decision_ts), s.model_id)
        previous = conn.execute("SELECT status FROM orders WHERE client_order_id = ?", [order.client_order_id]).fetchall()
        if previous and previous[0][0] != "error":
            counts["already_sent"] += 1
            continue
        if previous:  # the broker refused it (outage): send again under the same id, which the exchange dedups
            conn.execute("DELETE FROM orders WHERE client_order_id = ?", [order.client_order_id])
        reason = None
        if s.model_id != approved_model:
            reason = f"model {s.model_id} is not the approved model {approved_model}"
        elif (now - pd.Timestamp(book["ts"])).total_seconds() > limits.max_data_age_s:
            reason = f"stale data: newest {s.symbol} snapshot {book['ts']} older than {limits.max_data_age_s} s"
        if reason:
            _record(conn, order, "rejected", reason, broker.name, None, now)
            risk_event(conn, "stale_data" if reason.startswith("stale") else "limit", reason, s.symbol, now)
            counts["rejected"] += 1
            continue
        # the order is in the ledger before it goes out: a run that dies after sending finds it
        # 'pending' and does not send it again (reconciliation then shows what the broker did)
        _record(conn, order, "pending", "", broker.name, None, now)
        try:
            fill = broker.place(order)
        except BrokerError as error:
            errors_in_row += 1
            counts["errors"] += 1
            _settle(conn, order, "error", str(error), None)
            if errors_in_row >= limits.max_consecutive_errors:
                risk_event(conn, "circuit_breaker", f"{errors_in_row} broker errors in a row: stopped sending", None, now)
                counts["halted"] = "circuit breaker"
                break
            continue
        errors_in_row = 0
        _settle(conn, order, "filled", "", fill)
        counts["filled"] += 1
        marks = {sym: float((b["bid_px_0"] + b["ask_px_0"]) / 2) for sym in ledger_positions(conn, broker.name)
                 if (b := latest_book(conn, sym)) is not None}
        pnl = realised_pnl_today(conn, now.normalize(), marks)
        if pnl < -limits.max_daily_loss:
            risk_event(conn, "kill_switch_tripped", f"day P&L {pnl:.2f} below -{limits.max_daily_loss}", None, now)
            counts["flattened"] = flatten(conn, broker, now)
            counts["halted"] = "kill switch tripped"
            break
    return counts


def flatten(conn: duckdb.DuckDBPyConnection, broker: Broker, now) -> int:
    """Close every open position (orders ``kill`` purpose); returns how many were closed."""
    closed = 0
    for symbol, qty in ledger_positions(conn, broker.name).items():
        if abs(qty) < 1e-12:
            continue
        order = Order(client_order_id("kill", symbol, now, "flatten"), symbol, -int(np.sign(qty)), abs(qty), now, "kill")
        try:
            fill = broker.place(order)
        except BrokerError as error:
            _record(conn, order, "error", str(error), broker.name, None, now)
            continue
        _record(conn, order, "filled", "kill switch: flatten", broker.name, fill, now)
        closed += 1
    return closed


def reconcile(conn: duckdb.DuckDBPyConnection, broker: Broker, tolerance: float = 1e-9) -> dict[str, tuple[float, float]]:
    """Positions where the ledger and the broker disagree: ``{symbol: (ledger, broker)}``; empty = reconciled."""
    ours, theirs = ledger_positions(conn, broker.name), broker.positions()
    return {s: (ours.get(s, 0.0), theirs.get(s, 0.0)) for s in set(ours) | set(theirs)
            if abs(ours.get(s, 0.0) - theirs.get(s, 0.0)) > tolerance}


def limit_audit(conn: duckdb.DuckDBPyConnection, broker: str, limits: RiskLimits) -> dict:
    """The largest filled order and the largest open position (at its last fill's mid) of
    ``broker``'s ledger against the limits; ``passed`` when neither breaks one (the kill switch's
    flattening orders excepted: closing is always allowed)."""
    worst = conn.execute("SELECT coalesce(max(f.qty * f.price), 0) FROM fills AS f JOIN orders AS o USING (client_order_id) "
                         "WHERE o.broker = ? AND o.model_id <> 'kill'", [broker]).fetchall()[0][0]
    positions = conn.execute("SELECT sum(f.side * f.qty) AS qty, last(f.mid ORDER BY f.ts) AS mid FROM fills AS f "
                             "JOIN orders AS o USING (client_order_id) WHERE o.broker = ? GROUP BY f.symbol",
                             [broker]).fetchdf()
    largest = float((positions["qty"].abs() * positions["mid"]).max()) if len(positions) else 0.0
    return {"passed": bool(worst <= limits.max_order_notional * (1 + 1e-6) and largest <= limits.max_position_notional * 1.01),
            "largest_order_notional": float(worst), "largest_position_notional": largest}
