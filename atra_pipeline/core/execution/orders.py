"""Order state and the ledger the orders leave: an order, its fill, its client order id, and the
``orders`` / ``fills`` rows that record it.

An order is written to ``orders`` before it goes out (:func:`record_order`, 'pending'), and its
outcome is written together with its fill (:func:`settle_order`): an order is never 'filled'
without its fill row. The ids are idempotent, ``atra-<hash of model, symbol, decision time,
purpose>`` (:func:`client_order_id`), so a retried run finds the order it sent. Sending, behind
the rails, is :func:`atra_pipeline.core.execution.rails.send_order`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import pandas as pd

from atra_pipeline.core.storage.database import transaction


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


def client_order_id(model_id: str, symbol: str, decision_ts: pd.Timestamp, purpose: str = "signal") -> str:
    digest = hashlib.sha1(f"{model_id}|{symbol}|{pd.Timestamp(decision_ts).isoformat()}|{purpose}".encode()).hexdigest()
    return f"atra-{digest[:20]}"


def ledger_positions(conn: duckdb.DuckDBPyConnection, broker: str) -> dict[str, float]:
    rows = conn.execute("SELECT f.symbol, sum(f.side * f.qty) FROM fills AS f JOIN orders AS o USING (client_order_id) "
                        "WHERE o.broker = ? GROUP BY f.symbol", [broker]).fetchall()
    return {s: float(q) for s, q in rows}


def record_order(conn, order: Order, status: str, reason: str, broker: str, now) -> None:
    conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [order.client_order_id, now, order.decision_ts, order.symbol, order.model_id, order.side, order.qty,
                  status, reason, broker, None, order.purpose])


def settle_order(conn, order: Order, status: str, reason: str, fill: Fill | None) -> None:
    """The order's outcome and its fill, together: never 'filled' without its fill row."""
    with transaction(conn):
        conn.execute("UPDATE orders SET status = ?, reason = ?, broker_order_id = ? WHERE client_order_id = ?",
                     [status, reason, fill.broker_order_id if fill else None, order.client_order_id])
        if fill:
            conn.execute("INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [fill.client_order_id, fill.ts, fill.symbol, fill.side, fill.qty, fill.price, fill.fee,
                          fill.mid])


def recorded_fill(conn, order: Order) -> Fill | None:
    row = conn.execute("SELECT f.ts, f.side, f.qty, f.price, f.fee, f.mid, o.broker_order_id FROM fills AS f "
                       "JOIN orders AS o USING (client_order_id) WHERE client_order_id = ?",
                       [order.client_order_id]).fetchall()
    if not row:
        return None
    ts, side, qty, price, fee, mid, broker_id = row[0]
    return Fill(order.client_order_id, pd.Timestamp(ts), order.symbol, int(side), float(qty), float(price), float(fee),
                float(mid), broker_id or "")
