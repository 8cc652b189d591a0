"""The live path: collected rows seen through the research SQL give the same feature row as the
stored partition would, scoring uses only the approved model's features, and signals are
written once."""

from __future__ import annotations

import pandas as pd
import pytest

from atra_pipeline.core.features.build import FEATURES_STAGE, build_features
from atra_pipeline.core.features.registry import feature_columns
from atra_pipeline.core.labelling import LabelSettings
from atra_pipeline.core.labels import flow_momentum_side
from atra_pipeline.core.live import latest_decision_time, live_view, score, write_signals
from atra_pipeline.core.schema import L2_COLUMNS, TRADE_COLUMNS
from atra_pipeline.core.storage import PartitionWindow, replace_partition
from atra_pipeline.core.synthetic import generate_market_day
from atra_pipeline.testing.models import register_random_model

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
    return register_random_model(conn, win_rate=0.9, approve=False)  # confident: its bets get sized


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


def test_scoring_writes_one_signal_per_symbol_once(conn, market):
    _store(conn, market, live_in_raw=False)
    model = _model(conn)
    decision = latest_decision_time(conn, SYMBOLS, 60)
    signals = score(conn, decision, SYMBOLS, model)
    assert list(signals["symbol"]) == SYMBOLS and (signals["model_id"] == model.model_id).all()
    bets = signals[signals["side"] != 0]
    assert bets["probability"].between(0, 1).all() and (bets["size_notional"] >= 0).all()
    assert signals.loc[signals["side"] == 0, "size_notional"].eq(0).all()
    assert (signals["data_ts"] <= decision).all()  # nothing after the decision time was read
    assert write_signals(conn, signals) == len(SYMBOLS)
    assert write_signals(conn, signals) == 0  # a retried run writes nothing twice
    assert len(bets) > 0 and (bets["size_notional"] > 0).any()  # the fixture's decision time places sized bets
    # each bet's probability is the model's prediction on the research feature row of the same data
    # (stored raw partitions, no live view) with the signal's side, in the model's column order
    _store(conn, market, live_in_raw=True)
    labels = LabelSettings()
    for bet in bets.itertuples():
        build_features(conn, PartitionWindow.for_day(bet.symbol, DAY), 60, cutoff=decision,
                       peers=[s for s in SYMBOLS if s != bet.symbol])
        research = conn.execute(f"SELECT * FROM {FEATURES_STAGE} WHERE ts = $t", {"t": decision}).fetchdf().set_index("ts")
        assert len(research) == 1
        assert flow_momentum_side(research, labels.z_threshold, labels.primary_signal).iloc[0] == bet.side
        expected = model.booster().predict(research.assign(side=float(bet.side))[model.features])[0]
        assert bet.probability == pytest.approx(expected, rel=1e-12), bet.symbol
