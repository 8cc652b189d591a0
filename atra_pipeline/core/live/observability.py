"""Observability of the live path: structured JSON logs and Prometheus metrics.

Metrics are declared once in :data:`METRICS`; ``atra monitor`` serves them, refreshed from the
database (:func:`refresh`), so they hold whatever process wrote the rows, and the Grafana
dashboard under ``deploy/grafana/`` queries exactly these names (a test checks it).
"""

from __future__ import annotations

import logging
import sys

import duckdb
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry()
METRICS = {
    "atra_signal_latency_seconds": Gauge("atra_signal_latency_seconds",
                                         "Newest snapshot read to signal written, latest decision time", ["symbol"],
                                         registry=REGISTRY),
    "atra_orders": Gauge("atra_orders", "Orders in the ledger by status", ["status"], registry=REGISTRY),
    "atra_order_rejections": Gauge("atra_order_rejections", "Risk events refusing or halting orders, by kind", ["kind"],
                                   registry=REGISTRY),
    "atra_pnl_quote": Gauge("atra_pnl_quote",
                            "Today's P&L, marked to market at the mid (fees included), quote currency",
                            registry=REGISTRY),
    "atra_kill_switch": Gauge("atra_kill_switch", "1 while the daily-loss kill switch is tripped", registry=REGISTRY),
    "atra_collector_lag_seconds": Gauge("atra_collector_lag_seconds", "Age of the newest collected snapshot",
                                        ["symbol"], registry=REGISTRY),
}
# counted where it happens (the run-failure sensor's process), not refreshed from the database
LIVE_FAILURES = Counter("atra_live_failures", "Failed live runs", registry=REGISTRY)
METRIC_NAMES = (*METRICS, "atra_live_failures_total")


def refresh(conn: duckdb.DuckDBPyConnection, now) -> None:
    """Set every gauge of :data:`METRICS` from the tables."""
    from atra_pipeline.core.execution.rails import kill_switch_tripped, marked_pnl_today
    from atra_pipeline.core.live.scoring import latest_signals

    signals = latest_signals(conn)
    for symbol, latency in zip(signals["symbol"], (signals["created_at"] - signals["data_ts"]).dt.total_seconds()):
        METRICS["atra_signal_latency_seconds"].labels(symbol=symbol).set(latency)
    for status, n in conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall():
        METRICS["atra_orders"].labels(status=status).set(n)
    for kind, n in conn.execute("SELECT kind, count(*) FROM risk_events GROUP BY kind").fetchall():
        METRICS["atra_order_rejections"].labels(kind=kind).set(n)
    brokers = [b for (b,) in conn.execute("SELECT DISTINCT broker FROM orders WHERE broker <> 'replay'").fetchall()]
    METRICS["atra_pnl_quote"].set(sum(marked_pnl_today(conn, b, now) for b in brokers))
    METRICS["atra_kill_switch"].set(1.0 if kill_switch_tripped(conn) else 0.0)
    for symbol, newest in conn.execute("SELECT symbol, max(ts) FROM collected_l2_snapshots GROUP BY symbol").fetchall():
        METRICS["atra_collector_lag_seconds"].labels(symbol=symbol).set((now - newest).total_seconds())


def live_logger(**context) -> structlog.stdlib.BoundLogger:
    """A JSON logger bound to ``context`` (run id, symbol, model id ...) for every line it writes."""
    if not structlog.is_configured():
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                        structlog.processors.JSONRenderer()],
            # the stream is looked up per logger, not fixed at configuration (it may be replaced since)
            logger_factory=lambda *args: structlog.PrintLogger(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        )
    return structlog.get_logger("atra.live").bind(**context)
