"""The stability family (sql/features/stability.sql): hand-computed values on a small hand-built
book, warm-up NULLs exactly where a column's registered window is not covered, and on two synthetic
days: no look-ahead, no NaN after the warm-up, no dependence on data older than the window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.features import build as build_module
from atra_pipeline.core.features.build import build_features, data_start, lookahead_mismatches
from atra_pipeline.core.features.checks import check_features, warmup_mask
from atra_pipeline.core.features.registry import FEATURES, feature_columns
from atra_pipeline.core.raw.schema import L2_COLUMNS
from atra_pipeline.core.storage.database import PartitionWindow, replace_partition
from atra_pipeline_tests.conftest import DAY, make_book
from atra_pipeline_tests.core.features.conftest import ETH_PEERS

STABILITY = feature_columns("stability")
ONE, THREE = 1e4 * 0.01 / 100.0, 1e4 * 0.03 / 100.0  # spread in bps: 1 and 3 ticks around mid 100
WIDE_ASK = 1e4 * 0.02 / 100.005                      # bid 99.995, ask 100.015
T = f"{DAY} 01:05:00"                                 # the decision time checked by hand (3900 s)
DIP = 10 * 1.48                                       # top-5 depth at 3780


def stable_book() -> pd.DataFrame:
    """Snapshots every 10 s from midnight to 01:20:00 (4800 s); 1-tick spread around 100, top-5
    depth 2 x (1 + ... + 5) = 30, except for (times in seconds from midnight):

    * 0: the bid half a tick lower (it moves at 10 s, then not until 3720);
    * 3720, 3730, 3740: both sides 1 tick wider, spread 3 bps (bid and ask move at 3720 and 3750);
    * 3780: sizes of levels 0-4 all 1.48, top-5 depth 14.8 (prices unchanged): below half the
      prior 5-minute mean (15) but not below half a mean that included it (14.75);
    * 3870 on: the ask 1 tick higher, spread 2 ticks (the ask moves at 3870).
    """
    book = make_book(481, step_s=10.0)
    for i in range(1, 10):  # deeper levels far away: level 0 may move without crossing them
        book[f"bid_px_{i}"], book[f"ask_px_{i}"] = 91.0 - i, 109.0 + i
    sec = ((book["ts"] - pd.Timestamp(DAY)).dt.total_seconds()).astype(int)
    book.loc[sec == 0, "bid_px_0"] = 99.99
    wide = sec.isin([3720, 3730, 3740])
    book.loc[wide, "bid_px_0"], book.loc[wide, "ask_px_0"] = 99.985, 100.015
    for i in range(5):
        book.loc[sec == 3780, [f"bid_sz_{i}", f"ask_sz_{i}"]] = 1.48
    book.loc[sec >= 3870, "ask_px_0"] = 100.015
    return book


def _at(frame: pd.DataFrame, ts: str) -> pd.Series:
    return frame.loc[pd.Timestamp(ts)]


@pytest.fixture
def stable(conn, window) -> pd.DataFrame:
    replace_partition(conn, "raw_l2_snapshots", stable_book(), L2_COLUMNS, window)
    build_features(conn, window, step_s=10)
    return conn.execute("SELECT * FROM fx_features").fetchdf().set_index("ts")


def test_quote_drifts_and_best_price_changes_by_hand(stable):
    row = _at(stable, T)
    # (3600, 3900], 30 snapshots: the bid falls at 3720 and rises at 3750; the ask rises at 3720,
    # falls at 3750 and rises at 3870
    assert row["best_bid_drift_5m"] == 0
    assert row["best_ask_drift_5m"] == pytest.approx(1 / 30)
    assert row["best_changes_1m"] == 1  # (3840, 3900]: 3870
    assert row["best_changes_5m"] == 3  # (3600, 3900]: 3720 (both), 3750 (both), 3870 (ask)
    falling = _at(stable, f"{DAY} 01:02:30")  # (3450, 3750]: the bid's fall at 3720 and rise at 3750
    assert falling["best_bid_drift_5m"] == 0 and falling["best_ask_drift_5m"] == 0
    dipped = _at(stable, f"{DAY} 01:02:20")  # (3440, 3740]: the bid fell at 3720, the ask rose; neither back yet
    assert dipped["best_bid_drift_5m"] == pytest.approx(-1 / 30)
    assert dipped["best_ask_drift_5m"] == pytest.approx(1 / 30)
    first = _at(stable, f"{DAY} 00:05:00")  # (0, 300]: the bid's rise at 10 s
    assert first["best_bid_drift_5m"] == pytest.approx(1 / 30) and first["best_ask_drift_5m"] == 0
    assert first["best_changes_1m"] == 0 and first["best_changes_5m"] == 1


def test_spread_level_mean_std_and_zscores_by_hand(stable):
    row = _at(stable, T)
    last_5m = np.array([ONE] * 11 + [THREE] * 3 + [ONE] * 12 + [WIDE_ASK] * 4)  # snapshots 3610 .. 3900
    last_1h = np.array([ONE] * 353 + [THREE] * 3 + [WIDE_ASK] * 4)              # snapshots 310 .. 3900
    assert row["spread_bps"] == pytest.approx(WIDE_ASK)
    assert row["spread_bps_mean_5m"] == pytest.approx(last_5m.mean())
    assert row["spread_bps_std_5m"] == pytest.approx(last_5m.std())
    assert row["spread_bps_std_1h"] == pytest.approx(last_1h.std())
    assert row["spread_zscore_5m"] == pytest.approx((WIDE_ASK - last_5m.mean()) / last_5m.std())
    assert row["spread_zscore_1h"] == pytest.approx((WIDE_ASK - last_1h.mean()) / last_1h.std())
    calm = _at(stable, f"{DAY} 01:00:00")  # the same spread all along: sd exactly 0, z-scores 0
    assert calm["spread_bps_std_5m"] == 0 and calm["spread_bps_std_1h"] == 0
    assert calm["spread_zscore_5m"] == 0 and calm["spread_zscore_1h"] == 0
    # 01:07:10 .. 01:12:00 all 2 ticks: sd 0 although the spread varied before, so
    # the window's sums are differences of unequal cumulative sums that do not cancel exactly
    flat = _at(stable, f"{DAY} 01:12:00")
    assert flat["spread_bps_std_5m"] == 0 and flat["spread_zscore_5m"] == 0
    assert flat["spread_bps_mean_5m"] == pytest.approx(WIDE_ASK)


def test_depth_volatility_and_replenishment_by_hand(stable):
    row = _at(stable, T)
    last_5m = np.array([30.0] * 17 + [DIP] + [30.0] * 12)  # snapshots 3610 .. 3900, the dip at 3780
    assert row["depth5_std_1m"] == 0  # (3840, 3900]: 30 throughout
    assert row["depth5_std_5m"] == pytest.approx(last_5m.std())
    assert row["depth5_replenish_ratio_5m"] == pytest.approx(30.0 / last_5m.mean())
    during = _at(stable, f"{DAY} 01:03:00")  # the dip itself
    assert during["depth5_replenish_ratio_5m"] == pytest.approx(DIP / np.mean([30.0] * 29 + [DIP]))


def test_shock_ages_by_hand(stable):
    # spread shocks at 3720, 3730 and 3740 (3 bps > 2 x the prior 5-minute mean, 1, 31/29, 33/29);
    # 2 ticks from 3870 on is no shock (prior mean 35/29); depth shock at 3780 (14.8 < 30 / 2)
    row = _at(stable, T)
    assert row["spread_shock_age_s"] == pytest.approx(3900 - 3740)
    assert row["depth5_shock_age_s"] == pytest.approx(3900 - 3780)
    later = _at(stable, f"{DAY} 01:10:00")
    assert later["spread_shock_age_s"] == pytest.approx(4200 - 3740)
    assert later["depth5_shock_age_s"] == pytest.approx(4200 - 3780)
    assert _at(stable, f"{DAY} 00:15:00")[["spread_shock_age_s", "depth5_shock_age_s"]].tolist() == [600, 600]
    assert _at(stable, f"{DAY} 01:15:00")["spread_shock_age_s"] == 600  # capped
    # after the last snapshot (01:20:00) the book goes stale: no feature reads a frozen book
    assert np.isnan(_at(stable, f"{DAY} 01:21:00")["spread_shock_age_s"])


@pytest.mark.parametrize("name", STABILITY)
def test_warm_up_is_null_until_the_registered_window_is_covered(stable, name):
    """Data from 00:00:00: a column with window w is NULL at w - 10 s and set at w."""
    lookback = next(f.lookback_s for f in FEATURES if f.name == name)
    start = pd.Timestamp(DAY)
    if lookback:
        assert np.isnan(stable.at[start + pd.Timedelta(seconds=lookback - 10), name])
    assert not np.isnan(stable.at[start + pd.Timedelta(seconds=lookback), name])


def test_stability_has_no_lookahead_on_synthetic_data(two_days):
    # 00:00 and 00:07 read the previous day's last hour; the others are mid-day and the day's end
    times = pd.to_datetime([f"{DAY} 00:00", f"{DAY} 00:07", f"{DAY} 13:41", f"{DAY} 23:59"])
    mismatches = lookahead_mismatches(two_days, PartitionWindow.for_day("ETHUSDT", DAY), times, peers=ETH_PEERS)
    assert [m for m in mismatches if m["column"] in STABILITY] == []


def test_stability_warm_up_is_exactly_the_uncovered_windows_on_synthetic_data(two_days):
    first = PartitionWindow.for_day("ETHUSDT", "2024-08-07")
    build_features(two_days, first, peers=ETH_PEERS)
    frame = two_days.execute("SELECT * FROM fx_features").fetchdf()
    warm = warmup_mask(frame, data_start(two_days, first, ETH_PEERS))[STABILITY]
    assert (frame[STABILITY].isna() == warm).all().all()  # NULL in the warm-up, set everywhere else
    outcomes = check_features(frame, pd.date_range("2024-08-07", periods=1440, freq="60s"),
                              data_start(two_days, first, ETH_PEERS))
    assert not [c for o in outcomes for c in o.columns if c in STABILITY], [o.message() for o in outcomes]
    # the previous day's hour is loaded
    build_features(two_days, PartitionWindow.for_day("ETHUSDT", DAY), peers=ETH_PEERS)
    assert two_days.execute("SELECT * FROM fx_features").fetchdf()[STABILITY].notna().all().all()


def test_values_do_not_depend_on_history_beyond_the_window(two_days, monkeypatch):
    """Loading 2 h of the previous day instead of 1 h changes no value: no column reads further back
    than its registered window (a shock threshold or an uncapped age over the loaded data would)."""
    day = PartitionWindow.for_day("ETHUSDT", DAY)
    build_features(two_days, day, peers=ETH_PEERS)
    usual = two_days.execute("SELECT * FROM fx_features").fetchdf().set_index("ts")[STABILITY]
    monkeypatch.setattr(build_module, "max_lookback_s", lambda: 7200)
    build_features(two_days, day, peers=ETH_PEERS)
    longer = two_days.execute("SELECT * FROM fx_features").fetchdf().set_index("ts")[STABILITY]
    pd.testing.assert_frame_equal(usual, longer, rtol=1e-9, atol=1e-9)
