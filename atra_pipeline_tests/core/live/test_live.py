"""The live path: collected rows seen through the research SQL give the same feature row as the
stored partition would; decision by decision the event filter, barrier width, side and
probability are research's; a model whose settings cannot be honoured is refused; signals are
written once."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.features.build import FEATURES_STAGE, build_features
from atra_pipeline.core.features.registry import feature_columns
from atra_pipeline.core.labels.methods import flow_momentum_side
from atra_pipeline.core.labels.partition import event_filter, mid_path
from atra_pipeline.core.live.scoring import latest_decision_time, live_view, score, write_signals
from atra_pipeline.core.models.spec import ModelSpec, SpecError
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import PartitionWindow, replace_partition
from atra_pipeline.core.strategy.fills import CostSettings
from atra_pipeline.core.strategy.rules import StrategySettings
from atra_pipeline_tests.support.models import register_random_model

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
DAY, PREVIOUS = "2024-08-08", "2024-08-07"
LIVE_UNTIL = pd.Timestamp(f"{DAY} 02:01:30")  # decision time 02:01, where the primary side bets on both symbols


@pytest.fixture(scope="module")
def market():
    return {(s, d): generate_market_day(s, d) for s in SYMBOLS for d in (PREVIOUS, DAY)}


def _store(conn, market, live_in_raw: bool) -> None:
    for symbol in SYMBOLS:
        for day in (PREVIOUS, DAY):
            book, trades = market[(symbol, day)]
            if day == DAY:  # today: only what the collector has seen so far
                book, trades = book[book["ts"] <= LIVE_UNTIL], trades[trades["ts"] <= LIVE_UNTIL]
                if not live_in_raw:
                    conn.execute("INSERT INTO collected_l2_snapshots SELECT * FROM book")
                    conn.execute("INSERT INTO collected_trades SELECT * FROM trades")
                    continue
            window = PartitionWindow.for_day(symbol, day)
            replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS, window)
            replace_partition(conn, "raw_trades", trades, TRADE_COLUMNS, window)


def _model(conn):
    """A confident model over SYMBOLS whose strategy pays no fee (so its events clear the costs and trade)."""
    return register_random_model(conn, win_rate=0.9, approve=False, spec=ModelSpec(
        tuple(SYMBOLS), strategy=StrategySettings(costs=CostSettings(taker_fee_bps=0.0))))


def test_live_features_are_the_research_features_of_the_same_data(conn, market):
    _store(conn, market, live_in_raw=False)
    decision = latest_decision_time(conn, SYMBOLS, 60)
    assert decision == pd.Timestamp(f"{DAY} 02:01:00")
    window = PartitionWindow.for_day("ETHUSDT", DAY)
    with live_view(conn):
        build_features(conn, window, 60, cutoff=decision, peers=["BTCUSDT"])
        live = conn.execute(f"SELECT * FROM {FEATURES_STAGE} WHERE ts = $t", {"t": decision}).fetchdf()
    assert conn.execute("SELECT count(*) FROM raw_l2_snapshots WHERE ts >= DATE '2024-08-08'").fetchall()[0][0] == 0
    _store(conn, market, live_in_raw=True)  # the same rows as a stored raw partition
    build_features(conn, window, 60, cutoff=decision, peers=["BTCUSDT"])
    research = conn.execute(f"SELECT * FROM {FEATURES_STAGE} WHERE ts = $t", {"t": decision}).fetchdf()
    pd.testing.assert_frame_equal(live, research)
    assert live[feature_columns()].notna().all(axis=1).iloc[0]


@pytest.mark.slow  # a day of live scoring beside the labels
def test_live_signals_are_the_labels_events_sides_and_widths(conn, market):
    """Scored decision time by decision time on collected data, the event filter fires where the
    labels' filter fires on the stored path, with the same barrier width, and at each event the
    side and probability are the research feature row's."""
    _store(conn, market, live_in_raw=False)
    model = _model(conn)
    spec, labels = model.require_spec(), model.require_spec().labels
    times = pd.date_range(f"{DAY} 01:41", LIVE_UNTIL.floor("min"), freq="1min")
    signals = pd.concat([score(conn, t, model, now=t) for t in times], ignore_index=True)
    assert write_signals(conn, signals) == len(times) * len(SYMBOLS)
    assert write_signals(conn, signals) == 0  # a retried run writes nothing twice
    _store(conn, market, live_in_raw=True)
    booster = model.booster()
    for symbol, live in signals.groupby("symbol"):
        window = PartitionWindow.for_day(symbol, DAY)
        path = mid_path(conn, window, window.start - pd.Timedelta(seconds=labels.warmup_s), LIVE_UNTIL)
        _, width, events = event_filter(path, pd.Timedelta(minutes=1), LIVE_UNTIL, labels)
        live = live.set_index("decision_ts")
        assert list(live["event"]) == [t in events for t in times], symbol
        np.testing.assert_allclose(live["barrier_width"], width.reindex(times), rtol=1e-12)
        assert live["event"].any() and (live.loc[~live["event"], "side"] == 0).all()
        build_features(conn, window, 60, peers=spec.peers(symbol))
        research = conn.execute(f"SELECT * FROM {FEATURES_STAGE}").fetchdf().set_index("ts")
        sides = flow_momentum_side(research, labels.z_threshold, labels.primary_signal)
        for t in live.index[live["event"]]:
            assert live.loc[t, "side"] == sides[t], (symbol, t)
            if sides[t] != 0:
                expected = booster.predict(research.loc[[t]].assign(side=float(sides[t]))[model.features])[0]
                assert live.loc[t, "probability"] == pytest.approx(expected, rel=1e-9)
    assert signals["probability"].notna().any()  # some events had a side and were scored


def test_a_model_whose_settings_cannot_be_honoured_is_refused(conn, market):
    _store(conn, market, live_in_raw=False)
    three = register_random_model(conn, approve=False)  # trained on BTC, ETH and SOL: SOL was never collected
    with pytest.raises(SpecError, match=rf"model {three.model_id}: no book of \['SOLUSDT'\]"):
        score(conn, LIVE_UNTIL.floor("min"), three)
    assert conn.execute("SELECT kind, symbol FROM risk_events").fetchall() == [("model_settings", "SOLUSDT")]
    bare = replace(_model(conn), spec_json=None)
    with pytest.raises(SpecError, match=f"model {bare.model_id} has no registered configuration"):
        score(conn, LIVE_UNTIL.floor("min"), bare)
