"""Live latency: from the snapshot that completes a decision time (entries) or that touches a
barrier (exits) landing in DuckDB, to the order reaching the broker, through ``atra trade``'s loop
(core/live/loop.py: the collector polling the local fake exchange in a thread, the main loop
scoring and stepping the executor).

Run: ``.venv/bin/python benchmarks/live_latency.py [--seconds 120] [--tick 0.05]``.
The model trades on a 2-second grid with 6-second barriers (an event at every move, the primary
side from the book's imbalance, no fee), so a run of two minutes opens and closes dozens of
positions. Entries: from the landing of the last symbol's first snapshot at or after the
decision time; exits: from the landing of the snapshot that touched a barrier (a vertical
barrier is a timer: from its time). The loop's tick (``--tick``) comes on top of the compute.
Prints the median and p99 of each, and the compute of a scoring step.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.execution.brokers import PaperBroker
from atra_pipeline.core.labels.partition import LabelSettings
from atra_pipeline.core.live.loop import trade_loop
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.storage.database import prepare
from atra_pipeline.core.strategy.fills import CostSettings
from atra_pipeline.core.strategy.rules import StrategySettings
from atra_pipeline.testing.fake_binance import FakeBinance
from atra_pipeline_tests.support.models import register_random_model

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SPEC = ModelSpec(SYMBOLS, step_s=2, labels=LabelSettings(cusum_k=0.0, primary_on_zscore=False, z_threshold=0.05,
                                                          max_holding_s=6, vol_span=5, warmup_s=60),
                 strategy=StrategySettings(costs=CostSettings(taker_fee_bps=0.0)))
SENT: dict[str, pd.Timestamp] = {}


class TimedPaperBroker(PaperBroker):
    """The paper broker, noting the wall-clock time each order reaches it."""

    def place(self, order):
        SENT[order.client_order_id] = pd.Timestamp.now(tz="UTC").tz_localize(None)
        return super().place(order)


def summary(name: str, seconds: list[float]) -> str:
    s = np.array(seconds)
    if not len(s):
        return f"{name}: none"
    return (f"{name}: {len(s)} orders, median {np.median(s):.3f} s, p99 {np.percentile(s, 99):.3f} s, "
            f"max {s.max():.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--tick", type=float, default=0.05, help="the loop's tick, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeBinance(bid_size_factor=3.0) as fake:
        path = str(Path(tmp) / "atra.duckdb")
        with duckdb.connect(path) as conn:
            prepare(conn)
            register_random_model(conn, win_rate=0.9, spec=SPEC)
        began = time.perf_counter()
        report = trade_loop(lambda: closing(duckdb.connect(path)), args.seconds, threading.Event(), fake.url,
                            tick_s=args.tick, say=lambda line: None, broker_class=TimedPaperBroker)
        elapsed = time.perf_counter() - began
        with duckdb.connect(path, read_only=True) as conn:
            positions = conn.execute("SELECT * FROM live_positions").fetchdf()
            firsts = conn.execute("SELECT d.decision_ts, max(c.first) AS landed FROM (SELECT DISTINCT decision_ts FROM "
                                  "live_positions) AS d, LATERAL (SELECT symbol, min(ts) AS first FROM "
                                  "collected_l2_snapshots WHERE ts >= d.decision_ts GROUP BY symbol) AS c "
                                  "GROUP BY d.decision_ts").fetchdf().set_index("decision_ts")["landed"]
    entries = [(SENT[p.position_id] - firsts[p.decision_ts]).total_seconds() for p in positions.itertuples()
               if p.position_id in SENT]
    exits = [(SENT[p.exit_order_id] - pd.Timestamp(p.exit_event_ts)).total_seconds() for p in positions.itertuples()
             if isinstance(p.exit_order_id, str) and p.exit_order_id in SENT]
    print(f"Live latency over {elapsed:.0f} s of `atra trade`'s loop ({len(SYMBOLS)} symbols, 1 poll/s, decisions "
          f"every {SPEC.step_s} s, loop tick {args.tick} s): {report.decisions} decisions, {report.entries} entries, "
          f"exits {report.exits}")
    print(summary("snapshot completing the decision -> entry order at the broker", entries))
    print(summary("snapshot touching a barrier (or the vertical timer) -> exit order at the broker", exits))


if __name__ == "__main__":
    main()
