"""Tests of the synthetic market (atra_pipeline.core.raw.synthetic) and market_stats.

Full 1-second days are generated once per (symbol, date, seed, interval) and cached for the
module; the cached frames are never mutated by a test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atra_pipeline.core.raw.market_stats import infer_tick, market_stats
from atra_pipeline.core.raw.schema import L2_COLUMNS, N_LEVELS, TRADE_COLUMNS
from atra_pipeline.core.raw.synthetic import (
    EPOCH,
    SYMBOL_SPECS,
    SymbolSpec,
    daily_open_price,
    generate_market_day,
    intraday_spread_profile,
    intraday_vol_profile,
    simulate_market_day,
    symbol_spec,
)
from atra_pipeline.core.storage.paths import PROJECT_ROOT

DAY = dt.date(2024, 3, 1)
SIGNAL_DAYS = [DAY + dt.timedelta(days=k) for k in range(4)]
BIDS_PX = [f"bid_px_{i}" for i in range(N_LEVELS)]
ASKS_PX = [f"ask_px_{i}" for i in range(N_LEVELS)]
BIDS_SZ = [f"bid_sz_{i}" for i in range(N_LEVELS)]
ASKS_SZ = [f"ask_sz_{i}" for i in range(N_LEVELS)]


@functools.cache
def sim(symbol: str, date: dt.date = DAY, seed: int = 7, interval_ms: int = 1000):
    return simulate_market_day(symbol, date, seed=seed, interval_ms=interval_ms)


def on_grid(values: np.ndarray, step: float) -> bool:
    k = values / step
    return bool(np.all(np.abs(k - np.rint(k)) < 1e-6))


def mid_of(book: pd.DataFrame) -> np.ndarray:
    return ((book["bid_px_0"] + book["ask_px_0"]) / 2).to_numpy()


def minute_returns(book: pd.DataFrame) -> pd.Series:
    last = pd.Series(np.log(mid_of(book)), index=book["ts"]).resample("1min").last()
    return last.diff().dropna()


def assert_invariants(book: pd.DataFrame, trades: pd.DataFrame, symbol: str, date: dt.date,
                      interval_ms: int, spec: SymbolSpec) -> None:
    """Schema and structural invariants every generated day must satisfy."""
    n = 86_400_000 // interval_ms
    start = np.datetime64(date.isoformat(), "us")
    # schema
    assert list(book.columns) == L2_COLUMNS
    assert list(trades.columns) == TRADE_COLUMNS
    assert book["ts"].dtype == np.dtype("datetime64[us]")
    assert trades["ts"].dtype == np.dtype("datetime64[us]")
    assert len(book) == n
    expected_ts = start + (np.arange(n, dtype=np.int64) * interval_ms * 1000).astype("timedelta64[us]")
    np.testing.assert_array_equal(book["ts"].to_numpy(), expected_ts)
    assert set(book["symbol"]) == {symbol} and set(book["exchange"]) == {"synthetic"}
    assert len(trades) == 0 or (set(trades["symbol"]) == {symbol} and set(trades["exchange"]) == {"synthetic"})

    bid_px, ask_px = book[BIDS_PX].to_numpy(), book[ASKS_PX].to_numpy()
    bid_sz, ask_sz = book[BIDS_SZ].to_numpy(), book[ASKS_SZ].to_numpy()
    for arr in (bid_px, ask_px, bid_sz, ask_sz):
        assert arr.dtype == np.float64 and np.isfinite(arr).all()
    # tick / lot grids
    assert on_grid(bid_px, spec.tick) and on_grid(ask_px, spec.tick)
    assert on_grid(bid_sz, spec.lot) and on_grid(ask_sz, spec.lot)
    assert (bid_sz > 0).all() and (ask_sz > 0).all()
    assert (bid_px > 0).all()
    # never crossed, levels strictly ordered with gaps of at least one tick
    eps = spec.tick * 1e-6
    assert (ask_px[:, 0] - bid_px[:, 0] >= spec.tick - eps).all()
    assert (bid_px[:, :-1] - bid_px[:, 1:] >= spec.tick - eps).all()
    assert (ask_px[:, 1:] - ask_px[:, :-1] >= spec.tick - eps).all()

    if len(trades) == 0:
        return
    t_us = (trades["ts"].to_numpy() - start).astype(np.int64)
    interval_us = interval_ms * 1000
    assert (np.diff(t_us) >= 0).all(), "trades sorted by ts"
    assert (t_us > 0).all() and (t_us < 86_400_000_000).all(), "strictly inside the day"
    assert (t_us % interval_us != 0).all(), "strictly between snapshots"
    assert trades["trade_id"].is_unique
    assert trades["trade_id"].str.startswith(f"{date:%Y%m%d}-").all()
    assert set(trades["side"]) <= {"buy", "sell"}
    price, amount = trades["price"].to_numpy(), trades["amount"].to_numpy()
    assert np.isfinite(price).all() and (amount > 0).all()
    assert on_grid(price, spec.tick) and on_grid(amount, spec.lot)
    # each trade hits one of the 10 levels of the prevailing snapshot
    g = t_us // interval_us
    buy = (trades["side"] == "buy").to_numpy()
    tol = spec.tick * 1e-6
    assert (price[buy] >= ask_px[g[buy], 0] - tol).all()
    assert (price[~buy] <= bid_px[g[~buy], 0] + tol).all()
    side_px = np.where(buy[:, None], ask_px[g], bid_px[g])
    assert (np.abs(side_px - price[:, None]) < tol).any(axis=1).all()


# --------------------------------------------------------------------------------------------
# schema and invariants
# --------------------------------------------------------------------------------------------
def test_schema_dtypes_and_row_count():
    book, trades = sim("BTCUSDT").book, sim("BTCUSDT").trades
    assert book.shape == (86_400, len(L2_COLUMNS))
    assert book["ts"].iloc[0] == pd.Timestamp("2024-03-01 00:00:00")
    assert book["ts"].iloc[-1] == pd.Timestamp("2024-03-01 23:59:59")
    assert pd.api.types.is_string_dtype(book["symbol"]) and pd.api.types.is_string_dtype(trades["side"])
    assert trades["price"].dtype == np.float64 and trades["amount"].dtype == np.float64
    assert 100_000 < len(trades) < 3_000_000


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
def test_structural_invariants_full_day(symbol):
    day = sim(symbol)
    assert_invariants(day.book, day.trades, symbol, DAY, 1000, SYMBOL_SPECS[symbol])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    symbol=st.one_of(st.sampled_from(sorted(SYMBOL_SPECS)),
                     st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=2, max_size=8)
                     .map(lambda s: s + "USDT")),
    seed=st.integers(0, 2**32 - 1),
    date=st.dates(EPOCH, dt.date(2040, 12, 31)),
    interval_ms=st.sampled_from([10_000, 20_000, 30_000, 60_000]),
)
def test_invariants_property(symbol, seed, date, interval_ms):
    # fewer trades keep each example fast; every code path (walks included) still runs
    spec = dataclasses.replace(symbol_spec(symbol), trades_per_min=min(symbol_spec(symbol).trades_per_min, 40.0))
    book, trades = generate_market_day(symbol, date, seed=seed, interval_ms=interval_ms, spec=spec)
    assert_invariants(book, trades, symbol, date, interval_ms, spec)


# --------------------------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------------------------
def test_deterministic_and_seed_and_date_sensitive():
    eth_first = generate_market_day("ETHUSDT", DAY, interval_ms=10_000)
    generate_market_day("BTCUSDT", DAY, interval_ms=10_000)  # no hidden state between calls
    eth_again = generate_market_day("ETHUSDT", DAY, interval_ms=10_000)
    pd.testing.assert_frame_equal(eth_first[0], eth_again[0])
    pd.testing.assert_frame_equal(eth_first[1], eth_again[1])
    # full-resolution day equals the cached one
    pd.testing.assert_frame_equal(generate_market_day("SOLUSDT", DAY)[0], sim("SOLUSDT").book)

    other_seed = generate_market_day("ETHUSDT", DAY, seed=8, interval_ms=10_000)
    other_date = generate_market_day("ETHUSDT", DAY + dt.timedelta(days=1), interval_ms=10_000)
    for other in (other_seed, other_date):
        assert not np.allclose(other[0]["bid_px_0"].to_numpy(), eth_first[0]["bid_px_0"].to_numpy())
        assert not np.array_equal(other[0]["ask_sz_0"].to_numpy(), eth_first[0]["ask_sz_0"].to_numpy())
        assert len(other[1]) != len(eth_first[1]) or not np.array_equal(other[1]["price"], eth_first[1]["price"])


_CROSS_PROCESS = """
import dataclasses, pandas as pd
from atra_pipeline.core.raw.synthetic import generate_market_day, symbol_spec
spec = dataclasses.replace(symbol_spec("XYZUSDT"), trades_per_min=20.0)
book, trades = generate_market_day("XYZUSDT", "2024-03-01", seed=11, interval_ms=60_000, spec=spec)
print(int(pd.util.hash_pandas_object(book).sum()), int(pd.util.hash_pandas_object(trades).sum()))
"""


@pytest.mark.slow  # a second Python process
def test_deterministic_across_processes():
    """Same output under different PYTHONHASHSEEDs: no str hash() or other per-process state."""
    root = PROJECT_ROOT
    outs = {
        subprocess.run([sys.executable, "-c", _CROSS_PROCESS], cwd=root, capture_output=True, text=True,
                       check=True, env={**os.environ, "PYTHONHASHSEED": hs}).stdout.strip()
        for hs in ("1", "2")
    }
    spec = dataclasses.replace(symbol_spec("XYZUSDT"), trades_per_min=20.0)
    book, trades = generate_market_day("XYZUSDT", "2024-03-01", seed=11, interval_ms=60_000, spec=spec)
    local = f"{int(pd.util.hash_pandas_object(book).sum())} {int(pd.util.hash_pandas_object(trades).sum())}"
    assert outs == {local}


def test_market_factor_shared_across_symbols_but_not_dates():
    btc, eth = sim("BTCUSDT").latent, sim("ETHUSDT").latent
    assert (btc["regime"] == eth["regime"]).all()
    assert not np.array_equal(btc["flow"].to_numpy(), eth["flow"].to_numpy())
    nxt = sim("BTCUSDT", DAY + dt.timedelta(days=1)).latent
    assert (btc["regime"].to_numpy() != nxt["regime"].to_numpy()).any()


def test_unknown_symbol_spec_is_deterministic_and_sane():
    a, b, c = symbol_spec("FOOUSDT"), symbol_spec("FOOUSDT"), symbol_spec("BARUSDT")
    assert a == b and a != c
    for spec in (a, c):
        assert 1e4 <= spec.start_price / spec.tick <= 1e5 + 1
        assert np.isclose(np.log10(spec.tick), round(np.log10(spec.tick)))
        assert spec.daily_vol > spec.beta * 0.03
    assert symbol_spec("BTCUSDT") is SYMBOL_SPECS["BTCUSDT"]


@pytest.mark.parametrize("kwargs", [
    {"interval_ms": 7_000},                      # does not divide the day
    {"interval_ms": 10},                         # too fine
    {"seed": -1},
    {"date": dt.date(2014, 12, 31)},             # before EPOCH
    {"date": "2024-03-01 12:00"},                # not a calendar day
])
def test_invalid_arguments_raise(kwargs):
    args = {"date": DAY, **kwargs}
    with pytest.raises(ValueError):
        generate_market_day("BTCUSDT", args.pop("date"), **args)


# --------------------------------------------------------------------------------------------
# realism
# --------------------------------------------------------------------------------------------
def test_cross_asset_correlation():
    r = pd.DataFrame({s: minute_returns(sim(s).book) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")})
    c = r.corr()
    assert c.loc["ETHUSDT", "BTCUSDT"] > 0.5
    assert c.loc["SOLUSDT", "BTCUSDT"] > 0.5
    assert c.loc["SOLUSDT", "ETHUSDT"] < 0.95
    assert r["SOLUSDT"].std() > r["ETHUSDT"].std() > r["BTCUSDT"].std()  # beta / vol ordering


def _btc_signal_days():
    days = [sim("BTCUSDT", d) for d in SIGNAL_DAYS]
    book = pd.concat([d.book for d in days], ignore_index=True)
    trades = pd.concat([d.trades for d in days], ignore_index=True)
    latent = pd.concat([d.latent for d in days], ignore_index=True)
    return book, trades, latent


def test_regimes_drive_spread_volatility_and_activity():
    book, trades, latent = _btc_signal_days()
    spread_ticks = ((book["ask_px_0"] - book["bid_px_0"]) / 0.01).round()
    regime = latent["regime"].astype(str).to_numpy()
    calm, volatile = regime == "calm", regime == "volatile"
    assert calm.sum() > 3600 and volatile.sum() > 3600
    assert spread_ticks[volatile].mean() > 1.5 * spread_ticks[calm].mean()
    assert (spread_ticks[calm] <= 2).mean() > 0.85  # BTC spot: 1-2 ticks most of the time
    abs_ret = np.abs(np.diff(np.log(mid_of(book)), prepend=np.nan))
    assert np.nanmean(abs_ret[volatile]) > 1.5 * np.nanmean(abs_ret[calm])
    snap = ((trades["ts"] - trades["ts"].dt.normalize()) // pd.Timedelta("1s")).to_numpy()
    day_no = ((trades["ts"].dt.normalize() - pd.Timestamp(DAY)) // pd.Timedelta("1D")).to_numpy()
    trade_regime = regime[day_no * 86_400 + snap]
    rate = {k: (trade_regime == k).sum() / (regime == k).sum() for k in ("calm", "volatile")}
    assert rate["volatile"] > 1.5 * rate["calm"]


def test_intraday_seasonality():
    hours = np.linspace(0, 24, 24 * 60, endpoint=False)
    assert 13 <= hours[np.argmax(intraday_vol_profile(hours))] <= 16
    assert 13 <= hours[np.argmax(intraday_spread_profile(hours))] <= 16
    assert np.isclose(np.sqrt(np.mean(intraday_vol_profile(hours) ** 2)), 1, atol=1e-3)
    book, _, _ = _btc_signal_days()
    abs_ret = pd.Series(np.abs(np.diff(np.log(mid_of(book)), prepend=np.nan)))
    hour = book["ts"].dt.hour
    assert abs_ret[(hour >= 13) & (hour < 16)].mean() > 1.3 * abs_ret[(hour >= 3) & (hour < 6)].mean()


def test_depth_profile_depletion_and_replenishment():
    book, trades = sim("BTCUSDT").book, sim("BTCUSDT").trades
    mean_sz = book[BIDS_SZ].mean().to_numpy()
    assert mean_sz[0] > mean_sz[1]  # the touch queue is the deepest (as on Binance spot)
    assert mean_sz[9] > mean_sz[1] and (np.diff(mean_sz[1:]) > -0.1 * mean_sz[1:-1]).all()
    # big buy volume in (t-1, t) depletes the ask touch at t, which recovers within a minute
    snap = ((trades["ts"] - pd.Timestamp(DAY)) // pd.Timedelta("1s")).to_numpy()
    buy_vol = np.bincount(snap[trades["side"].to_numpy() == "buy"],
                          weights=trades["amount"].to_numpy()[trades["side"].to_numpy() == "buy"], minlength=86_400)
    hit = np.nonzero(buy_vol[:-120] > np.quantile(buy_vol, 0.995))[0]
    log_ask0 = np.log(book["ask_sz_0"].to_numpy())
    assert log_ask0[hit + 1].mean() < log_ask0.mean() - 0.1
    assert abs(log_ask0[hit + 90].mean() - log_ask0.mean()) < abs(log_ask0[hit + 1].mean() - log_ask0.mean()) / 2


@pytest.mark.slow  # two synthetic days
def test_continuity_across_midnight():
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for d in (DAY, DAY + dt.timedelta(days=1)):
            today, tomorrow = sim(symbol, d), sim(symbol, d + dt.timedelta(days=1))
            last, first = mid_of(today.book)[-1], mid_of(tomorrow.book)[0]
            step_sd = np.diff(np.log(mid_of(today.book)))[-3600:].std()
            tick = SYMBOL_SPECS[symbol].tick
            assert abs(np.log(first / last)) < 4 * step_sd + 2 * tick / last
            # the day's open is the daily sequence's open, continuous with the previous close
            assert np.isclose(tomorrow.latent["mid"].iloc[0], daily_open_price(symbol, d + dt.timedelta(days=1)))
    # coarser check over ten consecutive days: the midnight step is an ordinary step
    z = []
    for k in range(10):
        a = generate_market_day("SOLUSDT", DAY + dt.timedelta(days=k), interval_ms=60_000)[0]
        b = generate_market_day("SOLUSDT", DAY + dt.timedelta(days=k + 1), interval_ms=60_000)[0]
        steps = np.diff(np.log(mid_of(a)))
        z.append(np.log(mid_of(b)[0] / mid_of(a)[-1]) / steps[-120:].std())
    assert np.max(np.abs(z)) < 4.5


def test_predictive_signal_exists_but_is_small():
    book, trades, latent = _btc_signal_days()
    stats = market_stats(book, trades)
    assert stats["n_minutes_signal"] > 4 * 1400
    assert 0.0 < stats["imbalance_next_ret_corr"] < 0.2
    assert 0.0 < stats["ofi_next_ret_corr"] < 0.2
    # even the true latent flow predicts the next minute only weakly
    minute = book["ts"].dt.floor("1min").to_numpy()
    flow_1m = latent["flow"].groupby(minute).mean()
    last = pd.Series(np.log(mid_of(book))).groupby(minute).last()
    assert 0.0 < flow_1m.corr(last.shift(-1) - last) < 0.2


def test_signal_vanishes_without_designed_drift():
    null = dataclasses.replace(symbol_spec("BTCUSDT"), signal_snr=0.0)
    days = [simulate_market_day("BTCUSDT", d, spec=null) for d in SIGNAL_DAYS[:3]]
    book = pd.concat([d.book for d in days], ignore_index=True)
    trades = pd.concat([d.trades for d in days], ignore_index=True)
    stats = market_stats(book, trades)
    signal = market_stats(*_btc_signal_days()[:2])
    assert abs(stats["imbalance_next_ret_corr"]) < 0.045
    assert stats["imbalance_next_ret_corr"] < signal["imbalance_next_ret_corr"] - 0.02


def test_depth_imbalance_and_aggressor_side_follow_latent_flow():
    day = sim("ETHUSDT")
    b = day.book
    bid5, ask5 = b[BIDS_SZ[:5]].sum(axis=1), b[ASKS_SZ[:5]].sum(axis=1)
    imb = (bid5 - ask5) / (bid5 + ask5)
    assert np.corrcoef(imb, day.latent["flow"])[0, 1] > 0.3
    snap = ((day.trades["ts"] - pd.Timestamp(DAY)) // pd.Timedelta("1s")).to_numpy()
    flow_at_trade = day.latent["flow"].to_numpy()[snap]
    is_buy = (day.trades["side"] == "buy").to_numpy()
    assert is_buy[flow_at_trade > 1].mean() > 0.55 > 0.45 > is_buy[flow_at_trade < -1].mean()


# --------------------------------------------------------------------------------------------
# market_stats
# --------------------------------------------------------------------------------------------
def test_market_stats_on_handmade_book():
    ts = pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:00:01", "2024-01-01 00:00:02"]).astype("datetime64[us]")
    rows = {"ts": ts, "symbol": "X", "exchange": "e"}
    for i in range(N_LEVELS):
        rows[f"bid_px_{i}"] = [99.9 - i * 0.1, 99.9 - i * 0.1, 99.8 - i * 0.1]
        rows[f"bid_sz_{i}"] = [1.0, 1.0, 1.0]
        rows[f"ask_px_{i}"] = [100.1 + i * 0.1, 100.0 + i * 0.1, 100.1 + i * 0.1]
        rows[f"ask_sz_{i}"] = [2.0, 2.0, 2.0]
    book = pd.DataFrame(rows)[L2_COLUMNS]
    trades = pd.DataFrame({"ts": ts + pd.Timedelta("500ms"), "symbol": "X", "exchange": "e",
                           "price": [100.1, 99.9, 99.8], "amount": [1.0, 2.0, 3.0],
                           "side": ["buy", "sell", "sell"], "trade_id": ["1", "2", "3"]})
    s = market_stats(book, trades)
    assert np.isclose(infer_tick(book), 0.1) and np.isclose(s["tick"], 0.1)
    assert np.isclose(s["spread_ticks_median"], 2.0) and np.isclose(s["spread_1tick_share"], 1 / 3)
    assert np.isclose(s["spread_bps_mean"], np.mean([0.2 / 100.0, 0.1 / 99.95, 0.3 / 99.95]) * 1e4)
    assert np.isclose(s["depth1_bid_quote_median"], 99.9) and np.isclose(s["depth1_ask_quote_median"], 200.2)
    assert np.isclose(s["depth10_ask_quote_median"], sum(2 * (100.1 + i * 0.1) for i in range(10)))
    assert np.isclose(s["buy_share"], 1 / 3) and np.isclose(s["trades_per_min"], 3 / (3 / 60))
    assert np.isclose(s["trade_quote_median"], 199.8)
    assert np.isclose(s["ret_std_1s_bps"], np.std(np.diff(np.log([100.0, 99.95, 99.95])) * 1e4, ddof=1))
    assert np.isnan(s["imbalance_next_ret_corr"])  # one minute: no forecast pair


def test_market_stats_on_synthetic_day_look_like_binance_spot():
    s = market_stats(sim("BTCUSDT").book, sim("BTCUSDT").trades)
    assert s["tick"] == pytest.approx(0.01)
    assert s["spread_ticks_median"] == 1.0 and 0.7 < s["spread_1tick_share"] < 0.98
    assert 0.5 < s["ret_std_1s_bps"] < 3 and 3 < s["ret_std_1m_bps"] < 25
    assert s["ret_kurt_1m"] > 1
    assert 300 < s["trades_per_min"] < 3000 and 0.45 < s["buy_share"] < 0.55
    assert 10 < s["trade_quote_median"] < 200
    assert s["depth1_bid_quote_median"] > 0.3 * s["depth10_bid_quote_median"]
    assert s["n_snapshots"] == 86_400 and s["minutes"] == 1440
