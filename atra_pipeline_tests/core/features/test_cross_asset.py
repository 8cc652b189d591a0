"""Cross-asset family: the reference's returns and OFI by hand (one peer and the aggregate of
several), exact beta and correlation on a constructed pair, agreement with the reference's own
features and with a pandas brute force on synthetic days, warm-up and look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.features.build import build_features, data_start, lookahead_mismatches
from atra_pipeline.core.features.checks import warmup_mask
from atra_pipeline.core.features.registry import cross_asset_peers, feature_columns
from atra_pipeline.core.raw.schema import L2_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, replace_partition
from atra_pipeline_tests.conftest import DAY, make_book
from atra_pipeline_tests.core.features.conftest import ETH_PEERS

CROSS = feature_columns("cross_asset")


def moving_book(symbol: str, mids, step_s: float = 10.0) -> pd.DataFrame:
    """``make_book`` whose whole ladder is shifted so snapshot k has mid ``mids[k]``."""
    book = make_book(len(mids), step_s=step_s, symbol=symbol)
    shift = np.asarray(mids, dtype=float) - 100.0
    for side in ("bid", "ask"):
        for i in range(10):
            book[f"{side}_px_{i}"] = book[f"{side}_px_{i}"] + shift
    return book


def _store(conn, *books) -> None:
    for book in books:
        replace_partition(conn, "raw_l2_snapshots", book, L2_COLUMNS,
                          PartitionWindow.for_day(book["symbol"].iloc[0], DAY))


def _features(conn, symbol: str, peers, step_s: int = 60) -> pd.DataFrame:
    build_features(conn, PartitionWindow.for_day(symbol, DAY), step_s=step_s, peers=peers)
    return conn.execute("SELECT * FROM fx_features").fetchdf().set_index("ts")


def test_peers_are_the_reference_or_for_the_reference_all_the_others():
    universe = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert cross_asset_peers("ETHUSDT", universe) == ["BTCUSDT"]
    assert cross_asset_peers("BTCUSDT", universe) == ["ETHUSDT", "SOLUSDT"]
    assert cross_asset_peers("BTCUSDT", ["BTCUSDT"]) == []
    with pytest.raises(ValueError, match="reference symbol BTCUSDT"):
        cross_asset_peers("ETHUSDT", ["ETHUSDT", "SOLUSDT"])


def test_reference_returns_and_ofi_by_hand(conn):
    # snapshots every 10 s from midnight; every snapshot moves the whole ladder up (BTC by 1, ETH by 0.5)
    k = np.arange(40)
    _store(conn, moving_book("BTCUSDT", 100.0 + k), moving_book("ETHUSDT", 50.0 + 0.5 * k),
           moving_book("SOLUSDT", np.full(40, 20.0)))
    eth = _features(conn, "ETHUSDT", ["BTCUSDT"]).loc[pd.Timestamp(f"{DAY} 00:05:00")]
    # at 00:05:00 (k = 30): BTC mid 130, 124 a minute before, 118 two minutes before, 100 five before
    assert eth["xa_ref_ret_1m"] == pytest.approx(math.log(130 / 124), rel=1e-12)
    assert eth["xa_ref_ret_1m_prev"] == pytest.approx(math.log(124 / 118), rel=1e-12)
    assert eth["xa_ref_ret_5m"] == pytest.approx(math.log(130 / 100), rel=1e-12)
    # the ladder moving up: the bid term adds the new best bid size (1), the ask term the old best
    # ask size (1): e = 2 per snapshot, 6 snapshots in (t - 60 s, t], mean best-level depth 1
    assert eth["xa_ref_ofi_norm_1m"] == pytest.approx(12.0)
    btc = _features(conn, "BTCUSDT", ["ETHUSDT", "SOLUSDT"]).loc[pd.Timestamp(f"{DAY} 00:05:00")]
    # BTC's reference: the equal-weighted mean of ETH (mid 65 at k = 30, 62 at k = 24) and flat SOL
    assert btc["xa_ref_ret_1m"] == pytest.approx(math.log(65 / 62) / 2, rel=1e-12)
    assert btc["xa_ref_ofi_norm_1m"] == pytest.approx((12.0 + 0.0) / 2)


def test_exact_beta_and_correlation_on_a_constructed_pair(conn):
    # ETH's log mid is 2x BTC's: every 10-second return is twice BTC's, so beta 2 and correlation 1
    rng = np.random.default_rng(3)
    log_btc = np.cumsum(rng.normal(0, 1e-3, 480))
    _store(conn, moving_book("BTCUSDT", 100.0 * np.exp(log_btc)), moving_book("ETHUSDT", 100.0 * np.exp(2 * log_btc)))
    eth = _features(conn, "ETHUSDT", ["BTCUSDT"])
    at = eth.loc[pd.Timestamp(f"{DAY} 01:05:00")]
    assert at["xa_beta_1h"] == pytest.approx(2.0, rel=1e-9)
    assert at["xa_corr_1h"] == pytest.approx(1.0, rel=1e-9)
    assert at["xa_resid_ret_1m"] == pytest.approx(0.0, abs=1e-12)
    # 360 complete 10-second returns exist from 01:00:00 on (the first needs the mid at midnight)
    assert np.isnan(eth.loc[pd.Timestamp(f"{DAY} 00:59:00"), "xa_corr_1h"])
    assert not np.isnan(eth.loc[pd.Timestamp(f"{DAY} 01:00:00"), "xa_corr_1h"])


def test_a_missing_peer_leaves_the_family_null_and_marked_as_warm_up(conn):
    _store(conn, moving_book("ETHUSDT", 50.0 + 0.5 * np.arange(40)))
    window = PartitionWindow.for_day("ETHUSDT", DAY)
    eth = _features(conn, "ETHUSDT", ["BTCUSDT"])
    assert eth[CROSS].isna().all().all()
    assert data_start(conn, window, ["BTCUSDT"])["cross_asset"] is None
    assert warmup_mask(eth.reset_index(), data_start(conn, window, ["BTCUSDT"]))[CROSS].all().all()
    assert eth["ret_1m"].notna().any()  # the symbol's own families do not need the peer


def test_reference_columns_equal_the_reference_symbols_own_features(two_days):
    eth = _features(two_days, "ETHUSDT", ETH_PEERS)
    btc = _features(two_days, "BTCUSDT", ["ETHUSDT"])
    pd.testing.assert_series_equal(eth["xa_ref_ret_1m"], btc["ret_1m"], check_names=False, rtol=1e-12)
    pd.testing.assert_series_equal(eth["xa_ref_ret_5m"], btc["ret_5m"], check_names=False, rtol=1e-12)
    pd.testing.assert_series_equal(eth["xa_ref_ret_1m_prev"], btc["ret_1m_lag1"], check_names=False, rtol=1e-12)
    pd.testing.assert_series_equal(eth["xa_ref_ofi_norm_1m"], btc["ofi_norm_1m"], check_names=False, rtol=1e-9)
    # correlation is symmetric; the betas multiply to the squared correlation
    pd.testing.assert_series_equal(eth["xa_corr_1h"], btc["xa_corr_1h"], check_names=False, rtol=1e-9)
    np.testing.assert_allclose(eth["xa_beta_1h"] * btc["xa_beta_1h"], eth["xa_corr_1h"] ** 2, rtol=1e-9)


def test_correlation_and_beta_match_a_pandas_brute_force(two_days):
    eth = _features(two_days, "ETHUSDT", ETH_PEERS)
    bars = pd.date_range(pd.Timestamp(DAY) - pd.Timedelta(hours=2), f"{DAY} 23:59:50", freq="10s")
    returns = {}
    for symbol in ("ETHUSDT", "BTCUSDT"):
        book = two_days.execute("SELECT ts, (bid_px_0 + ask_px_0) / 2 AS mid FROM raw_l2_snapshots WHERE symbol = $s "
                                "ORDER BY ts", {"s": symbol}).fetchdf().set_index("ts")["mid"]
        mid_asof = book.reindex(book.index.union(bars)).ffill().loc[bars]  # last mid at or before each bar
        returns[symbol] = np.log(mid_asof).diff()
    x, y = returns["BTCUSDT"], returns["ETHUSDT"]
    corr = y.rolling(360).corr(x)
    beta = y.rolling(360).cov(x) / x.rolling(360).var()
    times = eth.index[::37]
    np.testing.assert_allclose(eth.loc[times, "xa_corr_1h"], corr.loc[times], rtol=1e-7)
    np.testing.assert_allclose(eth.loc[times, "xa_beta_1h"], beta.loc[times], rtol=1e-7)
    assert eth[CROSS].notna().all().all()  # the previous day covers every window


def test_cross_asset_has_no_lookahead(two_days):
    times = pd.to_datetime([f"{DAY} 00:00", f"{DAY} 00:59", f"{DAY} 17:33"])
    mismatches = lookahead_mismatches(two_days, PartitionWindow.for_day("ETHUSDT", DAY), times, peers=ETH_PEERS)
    assert [m for m in mismatches if m["column"] in CROSS] == []


def test_a_step_that_is_not_a_bar_multiple_reads_the_last_complete_bar(two_days):
    every_5s = _features(two_days, "ETHUSDT", ETH_PEERS, step_s=5)
    t = pd.Timestamp(f"{DAY} 12:00:05")  # between bars: the bar ending 12:00:00 is the last complete one
    assert every_5s.loc[t, "xa_corr_1h"] == every_5s.loc[t - pd.Timedelta(seconds=5), "xa_corr_1h"]
    assert every_5s.loc[t, "xa_corr_1h"] != every_5s.loc[t + pd.Timedelta(seconds=5), "xa_corr_1h"]
