"""Metrics of the live path (Prometheus), one registry for every process that serves them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
LIVE_FAILURES = Counter("atra_live_failures", "Failed live runs", registry=REGISTRY)
SIGNAL_LATENCY = Histogram("atra_signal_latency_seconds", "Newest snapshot read to signal written",
                           buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=REGISTRY)
ORDERS = Counter("atra_orders", "Orders sent to the broker", ["symbol", "status"], registry=REGISTRY)
REJECTIONS = Counter("atra_order_rejections", "Orders refused by a safety rail or the broker", ["reason"],
                     registry=REGISTRY)
PNL = Gauge("atra_pnl_quote", "Realised P&L of the day, quote currency", registry=REGISTRY)
KILL_SWITCH = Gauge("atra_kill_switch", "1 while the kill switch is tripped", registry=REGISTRY)
COLLECTOR_LAG = Gauge("atra_collector_lag_seconds", "Age of the newest collected snapshot", ["symbol"],
                      registry=REGISTRY)
METRIC_NAMES = ("atra_live_failures_total", "atra_signal_latency_seconds", "atra_orders_total",
                "atra_order_rejections_total", "atra_pnl_quote", "atra_kill_switch", "atra_collector_lag_seconds")
