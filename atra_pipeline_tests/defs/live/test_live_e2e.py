"""The live path end to end against the local fake exchange: collect for a bounded time through an
API outage, the sensor fires for the new decision time, the live asset scores it with the
approved model, execution trades on paper within the limits, and a broker outage trips the
circuit breaker; nothing is lost or doubled on the way."""

from __future__ import annotations

import asyncio
import time

import dagster as dg
import duckdb
import pandas as pd
import pytest

from atra_pipeline.core.execution.brokers import BrokerError, PaperBroker, reconcile
from atra_pipeline.core.execution.executor import trade_step
from atra_pipeline.core.execution.rails import RiskLimits, SendState
from atra_pipeline.core.labels.partition import LabelSettings
from atra_pipeline.core.models.registry import load_model
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.raw.collector import CollectedStore, Collector, CollectorSettings, async_exchange
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import PartitionWindow, prepare, replace_partition
from atra_pipeline.core.strategy.fills import CostSettings
from atra_pipeline.core.strategy.rules import StrategySettings
from atra_pipeline.defs import live
from atra_pipeline.defs.common.resources import AtraDuckDB
from atra_pipeline.defs.live.sensors import DECISION_TAG, live_sensor
from atra_pipeline.testing.fake_binance import FakeBinance
from atra_pipeline_tests.support.materialize import check_results
from atra_pipeline_tests.support.models import register_random_model

pytestmark = pytest.mark.slow  # a replayed clock of seconds, the fake exchange, the collector and the live job

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
START = pd.Timestamp("2024-08-08 02:00:00.5")  # the replayed clock: collection continues the stored day
# replayed seconds per real second: the faults below cost about 1 s of real time, 10 s replayed,
# a hole in the feed well under the features' staleness bound (30 s) even when a loaded machine
# doubles it (at 20x a CI run once stalled past the bound: every window NULL, nothing to trade)
SPEED = 10.0


def _history(conn) -> dict[str, float]:
    last = {}
    for symbol in SYMBOLS:
        for day in ("2024-08-07", "2024-08-08"):
            book, trades = generate_market_day(symbol, day)
            if day == "2024-08-08":
                book, trades = book[book["ts"] < START], trades[trades["ts"] < START]
                last[symbol] = float((book["bid_px_0"].iloc[-1] + book["ask_px_0"].iloc[-1]) / 2)
            window = PartitionWindow.for_day(symbol, day)
            replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
            replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)
    return last


class OutageBroker(PaperBroker):
    """The paper broker behind an API that is down for its first ``down`` calls."""

    def __init__(self, conn, down: int, now):
        super().__init__(conn, now=now)
        self.down = down

    def place(self, order):
        if self.down > 0:
            self.down -= 1
            raise BrokerError("503 Service Unavailable")
        return super().place(order)


def test_collect_score_and_trade_through_outages(tmp_path, monkeypatch):
    monkeypatch.setenv("ATRA_SYMBOLS", ",".join(SYMBOLS))
    path = tmp_path / "atra.duckdb"
    resources = {"duckdb": AtraDuckDB(database=str(path))}
    with duckdb.connect(str(path)) as conn:
        prepare(conn)
        last = _history(conn)
        # confident, an event at every decision time the mid moved (CUSUM threshold 0), no fees and
        # positions within the order limit below: the decision time collected here trades
        spec = ModelSpec(tuple(SYMBOLS), labels=LabelSettings(cusum_k=0.0),
                         strategy=StrategySettings(max_notional=30_000, costs=CostSettings(taker_fee_bps=0.0)))
        model_id = register_random_model(conn, win_rate=0.9, spec=spec).model_id

    # 1. collect for a bounded time, through 5xx, 429, a timeout and a malformed reply
    began = time.monotonic()
    clock = lambda: (START + pd.Timedelta(seconds=SPEED * (time.monotonic() - began))).floor("us")  # noqa: E731
    with FakeBinance(slow_s=1.0, prices=last, bid_size_factor=20.0) as fake:  # buyers lean on the book
        fake.fail_next("500", "429", "timeout", "malformed", "503")

        async def collect():
            exchange = async_exchange("binance", timeout_ms=300, base_url=fake.url)
            try:
                settings = CollectorSettings(symbols=tuple(SYMBOLS), interval_s=0.1, timeout_s=0.6, backoff_s=0.01)
                return await Collector(exchange, CollectedStore(resources["duckdb"].get_connection), settings,
                                       clock=clock).run(duration_s=7.0)  # to 02:01:10 replayed
            finally:
                await exchange.close()

        stats = asyncio.run(collect())
        printed = {(s, str(t["id"])) for s, trades in fake.trades.items() if s in SYMBOLS for t in trades}
    assert stats.failed_calls == 0 and stats.retries >= 5
    with duckdb.connect(str(path), read_only=True) as conn:
        books = conn.execute("SELECT count(*), count(DISTINCT (symbol, ts)), max(ts) "
                             "FROM collected_l2_snapshots").fetchall()[0]
        trades = set(conn.execute("SELECT symbol, trade_id FROM collected_trades").fetchall())
    assert books[0] == books[1] == stats.polls * len(SYMBOLS)  # every poll landed once
    assert trades == printed  # every trade, once
    assert pd.Timestamp(books[2]) >= pd.Timestamp("2024-08-08 02:01:00")

    # 2. the sensor fires for the new decision time; the live asset scores it with the approved model
    with dg.DagsterInstance.ephemeral() as instance:
        request = live_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(request, dg.RunRequest) and request.tags[DECISION_TAG] == "2024-08-08T02:01:00"
    scored = dg.materialize(live.assets, resources=resources, run_config=request.run_config, selection=["live_signals"])
    assert scored.success and all(e.passed for e in scored.get_asset_check_evaluations())
    assert check_results(scored) == {"live_signals.signals_use_the_approved_model": True}
    with duckdb.connect(str(path)) as conn:
        signals = conn.execute("SELECT * FROM live_signals").fetchdf()
        assert set(signals["model_id"]) == {model_id} and len(signals) == len(SYMBOLS)
        bets = signals[signals["event"] & (signals["side"] != 0)]
        assert len(bets) >= 1, signals[["symbol", "event", "probability", "side", "barrier_width"]].to_string()

        # 3. execution on paper: an API outage trips the circuit breaker, then the orders go once
        now = pd.Timestamp(books[2])  # the replayed clock's "now"
        record = load_model(conn, model_id)
        limits = RiskLimits(max_consecutive_errors=1, max_order_notional=30_000, max_position_notional=50_000,
                            breaker_cooldown_s=0.0)  # the next run may try again at once (half-open)
        down = OutageBroker(conn, down=1, now=lambda: now)
        halted = trade_step(conn, down, record, signals, now, limits, model_id, SendState())
        assert halted.halted == "circuit breaker" and halted.entries == 0
        assert conn.execute("SELECT count(*) FROM risk_events WHERE kind = 'circuit_breaker'").fetchall()[0][0] == 1
        broker = PaperBroker(conn, now=lambda: now)
        resumed = trade_step(conn, broker, record, signals, now, limits, model_id)
        again = trade_step(conn, broker, record, signals, now, limits, model_id)  # a retried run
        taken = conn.execute("SELECT count(*) FILTER (taken), count(*) FROM live_decisions").fetchall()[0]
        assert resumed.entries == taken[0] >= 1 and again.entries == 0 and taken[1] == len(SYMBOLS)
        orders = conn.execute("SELECT count(*), count(DISTINCT client_order_id) FROM orders").fetchall()[0]
        fills = conn.execute("SELECT max(qty * price) FROM fills").fetchall()[0][0]
        detail = conn.execute("SELECT o.symbol, o.side, o.qty, f.price, f.qty * f.price, f.mid "
                              "FROM orders o JOIN fills f USING (client_order_id)").fetchall()
        events = conn.execute("SELECT kind, detail FROM risk_events").fetchall()
        assert orders[0] == orders[1] == taken[0], (detail, events)
        assert fills <= 30_000 * (1 + limits.notional_tolerance), (detail, events)
        assert reconcile(conn, broker) == {}
