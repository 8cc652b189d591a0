"""Live latency: from the snapshot that completes a decision time landing in DuckDB to that
decision's signal rows being written, with the collector polling the local fake exchange.

Run: ``.venv/bin/python benchmarks/live_latency.py [--seconds 120] [--step 10]``.
The collector runs in a thread on the real clock (1 poll a second per symbol); the main loop
watches the collected table every 20 ms and, when every symbol has data past a new decision time,
scores it with an approved model through the research feature SQL (core/live.py) and writes
the signals. Prints the median, p90 and max of the latency over the decision times of the run
(the sensor's own interval, 10 s at the least in Dagster, comes on top in production).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.collector import CollectedStore, Collector, CollectorSettings, async_exchange
from atra_pipeline.core.live import latest_decision_time, score, write_signals
from atra_pipeline.core.storage import prepare
from atra_pipeline.testing.fake_binance import FakeBinance
from atra_pipeline.testing.models import register_random_model

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--step", type=int, default=10, help="decision step, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeBinance() as fake:
        path = str(Path(tmp) / "atra.duckdb")
        conn = duckdb.connect(path)
        prepare(conn)
        model = register_random_model(conn)

        def connect():  # a connection per batch, closed after it, as the resource gives one per step
            return closing(duckdb.connect(path))

        async def collect():
            exchange = async_exchange("binance", base_url=fake.url)
            try:
                settings = CollectorSettings(symbols=tuple(SYMBOLS), interval_s=1.0, batch_rows=len(SYMBOLS))
                await Collector(exchange, CollectedStore(connect), settings).run(duration_s=args.seconds)
            finally:
                await exchange.close()

        thread = threading.Thread(target=lambda: asyncio.run(collect()), daemon=True)
        thread.start()
        done, latencies, compute = None, [], []
        while thread.is_alive():
            decision = latest_decision_time(conn, SYMBOLS, args.step)
            if decision is not None and decision != done:
                # the decision time is complete when the last symbol's first snapshot past it lands
                landed = pd.Timestamp(conn.execute(
                    "SELECT max(first) FROM (SELECT symbol, min(ts) AS first FROM collected_l2_snapshots "
                    "WHERE ts >= $t GROUP BY symbol)", {"t": decision.to_pydatetime()}).fetchall()[0][0])
                start = time.perf_counter()
                signals = score(conn, decision, SYMBOLS, model, args.step)
                write_signals(conn, signals)
                compute.append(time.perf_counter() - start)
                if done is not None:  # the first decision time was already complete at start
                    latencies.append((signals["created_at"].max() - landed).total_seconds())
                done = decision
            time.sleep(0.02)
        conn.close()
    lat = np.array(latencies)
    print(f"Live latency over {args.seconds:.0f} s of collection ({len(SYMBOLS)} symbols, 1 poll/s, decision step "
          f"{args.step} s): {len(lat)} decision times")
    if len(lat):
        print(f"snapshot landing -> signal rows written: median {np.median(lat):.3f} s, p90 {np.percentile(lat, 90):.3f} s, "
              f"max {lat.max():.3f} s")
        print(f"of which scoring {len(SYMBOLS)} symbols (feature SQL + model): median {np.median(compute):.3f} s")


if __name__ == "__main__":
    main()
