"""`atra trade --paper` against the local fake exchange, as a user runs it: a separate process that
collects, scores and trades until Ctrl-C, then stops cleanly. Its positions open on the strategy's
decisions and close by the barrier rules (re-judged here on the collected snapshots), and no
order is left pending."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.labels.partition import LabelSettings
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.storage.database import prepare
from atra_pipeline.core.strategy.fills import CostSettings
from atra_pipeline.core.strategy.rules import EXIT_REASONS, StrategySettings, first_exit
from atra_pipeline.testing.fake_binance import FakeBinance
from atra_pipeline_tests.support.models import register_random_model

pytestmark = pytest.mark.slow  # an `atra trade` process against the fake exchange

SYMBOLS = ("BTCUSDT", "ETHUSDT")
# seconds-scale settings so a short run opens and closes positions: 2-second decisions, an event at
# every move (CUSUM threshold 0), the primary side from the imbalance itself (no hour of history
# for its z-score), 6-second vertical barriers, no fee
SPEC = ModelSpec(SYMBOLS, step_s=2, labels=LabelSettings(cusum_k=0.0, primary_on_zscore=False, z_threshold=0.05,
                                                          max_holding_s=6, vol_span=5, warmup_s=60),
                 strategy=StrategySettings(costs=CostSettings(taker_fee_bps=0.0)))


def test_trade_on_paper_opens_and_closes_by_the_barriers_and_stops_on_ctrl_c(tmp_path):
    path = tmp_path / "atra.duckdb"
    with duckdb.connect(str(path)) as conn:
        prepare(conn)
        model_id = register_random_model(conn, win_rate=0.9, spec=SPEC).model_id
    env = {**os.environ, "ATRA_DUCKDB_PATH": str(path), "DAGSTER_HOME": str(tmp_path / "home")}
    with FakeBinance(bid_size_factor=3.0) as fake:
        process = subprocess.Popen([sys.executable, "-m", "atra_pipeline.cli", "trade", "--paper", "--duration", "5m",
                                    "--exchange-url", fake.url], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(30)
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, out
    assert "SIGINT: stopping after the step under way" in out and f"trade: model {model_id}" in out, out
    with duckdb.connect(str(path), read_only=True) as conn:
        positions = conn.execute("SELECT * FROM live_positions ORDER BY decision_ts, symbol").fetchdf()
        pending = conn.execute("SELECT count(*) FROM orders WHERE status = 'pending'").fetchall()[0][0]
        decisions = conn.execute("SELECT count(*), count(*) FILTER (taken) FROM live_decisions").fetchall()[0]
        mids = conn.execute("SELECT symbol, ts, (bid_px_0 + ask_px_0) / 2 AS mid FROM collected_l2_snapshots "
                            "ORDER BY symbol, ts").fetchdf()
    assert pending == 0 and decisions[1] == len(positions)
    closed = positions[positions["status"] == "closed"]
    assert len(closed) >= 1, out
    for p in closed.itertuples():  # each exit is the first barrier event on the snapshots after its decision
        m = mids[mids["symbol"] == p.symbol]
        times = pd.DatetimeIndex(m["ts"]).as_unit("ns").asi8
        code, at = first_exit(times, np.log(m["mid"].to_numpy()), pd.Timestamp(p.decision_ts).value,
                              float(np.log(p.entry_mid)), float(p.side), p.up, p.down,
                              pd.Timestamp(p.vertical_ts).value, pd.Timestamp(p.exit_event_ts).value)
        # the exit the loop took is the first barrier event: no snapshot was skipped
        assert EXIT_REASONS[code] == p.exit_reason and pd.Timestamp(at) == pd.Timestamp(p.exit_event_ts), p
    if (positions["status"] == "open").any():
        assert "positions still open" in out
    else:
        assert "no position open" in out
