"""Metrics refreshed from the tables, the Grafana dashboard querying exactly the declared metric
names, `atra monitor --once`, and JSON log lines carrying run id, symbol and model id."""

from __future__ import annotations

import json
import re

import pandas as pd
from prometheus_client import generate_latest

from atra_pipeline.core.execution.rails import risk_event
from atra_pipeline.core.live.observability import METRIC_NAMES, REGISTRY, live_logger, refresh
from atra_pipeline.core.storage.paths import PROJECT_ROOT

NOW = pd.Timestamp("2024-08-08 00:10:00")


def test_the_dashboard_queries_exactly_the_declared_metrics():
    dashboard = json.loads((PROJECT_ROOT / "deploy" / "grafana" / "atra-live.json").read_text())
    queried = {m for panel in dashboard["panels"] for target in panel["targets"]
               for m in re.findall(r"\batra_[a-z_]+", target["expr"])}
    assert queried == set(METRIC_NAMES)


def test_refresh_reads_the_tables(conn):
    conn.execute("INSERT INTO live_signals VALUES ('2024-08-08 00:09', 'BTCUSDT', 'm1', true, 1, 0.6, 0.002, 100.0, "
                 "'2024-08-08 00:09:00', '2024-08-08 00:09:00.25')")
    conn.execute("INSERT INTO collected_l2_snapshots (ts, symbol, exchange, bid_px_0, bid_sz_0, ask_px_0, ask_sz_0) "
                 "VALUES ('2024-08-08 00:09:55', 'BTCUSDT', 'binance', 99.49, 1, 99.51, 1)")
    conn.execute("INSERT INTO orders VALUES ('a', ?, ?, 'BTCUSDT', 'm1', 1, 1.0, 'filled', '', 'paper', 'a', 'entry')",
                 [NOW, NOW])
    conn.execute("INSERT INTO fills VALUES ('a', ?, 'BTCUSDT', 1, 1.0, 100.0, 0.04, 99.99)", [NOW])
    risk_event(conn, "kill_switch_tripped", "test", now=NOW)
    refresh(conn, NOW)
    text = generate_latest(REGISTRY).decode()
    assert 'atra_signal_latency_seconds{symbol="BTCUSDT"} 0.25' in text
    assert 'atra_collector_lag_seconds{symbol="BTCUSDT"} 5.0' in text
    assert 'atra_orders{status="filled"} 1.0' in text and "atra_kill_switch 1.0" in text
    # marked: bought 1 at 100 (fee 0.04), now worth the mid 99.50
    assert re.search(r"atra_pnl_quote -0\.54\d*\n", text), text


def test_monitor_once_prints_the_metrics(tmp_path, monkeypatch, capsys):
    import duckdb

    from atra_pipeline import cli
    from atra_pipeline.core.storage.database import prepare

    monkeypatch.setenv("ATRA_DUCKDB_PATH", str(tmp_path / "atra.duckdb"))
    with duckdb.connect(str(tmp_path / "atra.duckdb")) as conn:
        prepare(conn)
        # a symbol no other test uses (the registry is global): only this refresh can set its gauge
        conn.execute("INSERT INTO live_signals VALUES ('2024-08-08 00:09', 'SOLUSDT', 'm1', true, 1, 0.6, 0.002, "
                     "100.0, '2024-08-08 00:09:00', '2024-08-08 00:09:00.375')")
    assert cli.main(["monitor", "--once"]) == 0
    out = capsys.readouterr().out
    assert "atra_kill_switch" in out
    assert 'atra_signal_latency_seconds{symbol="SOLUSDT"} 0.375' in out  # refreshed from the database file


def test_live_log_lines_are_json_with_their_context(capfd):
    live_logger(run_id="r1", symbol="BTCUSDT", model_id="m1").info("signal", side=1)
    line = json.loads(capfd.readouterr().err.strip().splitlines()[-1])
    assert {k: line[k] for k in ("run_id", "symbol", "model_id", "event", "side")} == {
        "run_id": "r1", "symbol": "BTCUSDT", "model_id": "m1", "event": "signal", "side": 1}
