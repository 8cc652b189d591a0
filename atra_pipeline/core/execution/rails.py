"""The safety rails: risk limits, the kill switch and the circuit breaker, and the one way an order
goes out, behind them (:func:`send_order`); each refusal or trip is a ``risk_events`` row.

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

from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.execution.brokers import Broker, BrokerError, BrokerRejected, latest_book, mid_of
from atra_pipeline.core.execution.orders import Fill, Order, record_order, recorded_fill, settle_order


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
        return "already_sent", recorded_fill(conn, order)
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
            settle_order(conn, order, "filled", "recovered: the broker had it", fill)
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
        record_order(conn, order, status, reason, broker.name, now)
        risk_event(conn, kind, reason, order.symbol, now, broker.name)
        return status, None
    # the order is in the ledger before it goes out: a run that dies after sending finds it
    # 'pending' and asks the broker before doing anything else with it
    record_order(conn, order, "pending", "", broker.name, now)
    try:
        fill = broker.place(order)
    except BrokerRejected as error:
        status, message = "rejected", BROKER_REFUSED + str(error)
    except Exception as error:  # noqa: BLE001 - whatever the broker raised, the order must not stay pending
        status, message = "error", f"{BROKER_FAILED}{type(error).__name__}: {error}"
    else:
        state.errors_in_row = 0
        settle_order(conn, order, "filled", "", fill)
        return "filled", fill
    state.errors_in_row += 1
    settle_order(conn, order, status, message, None)
    risk_event(conn, "broker_" + status, message, order.symbol, now, broker.name)
    if state.errors_in_row >= limits.max_consecutive_errors:
        risk_event(conn, "circuit_breaker", f"{state.errors_in_row} broker failures in a row: stopped sending", None,
                   now, broker.name)
        state.halted = "circuit breaker"
    return status, None


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
