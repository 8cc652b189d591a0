"""Labels: hand-built price paths for every barrier, ties, disabled barriers, sides and the end
of data; a property test against a brute-force path scan; uniqueness and weights by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atra_pipeline.core.labels.methods import (
    average_uniqueness,
    cusum_events,
    daily_volatility,
    flow_momentum_side,
    meta_labels,
    sample_weights,
    triple_barrier_labels,
)

T0 = pd.Timestamp("2024-08-08")


def path(prices, step_s: float = 1.0) -> pd.Series:
    return pd.Series(np.asarray(prices, dtype=float),
                     index=T0 + pd.to_timedelta(np.arange(len(prices)) * step_s, unit="s"))


def at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def label_one(close, event_s=0.0, width=0.01, pt_sl=(1, 1), hold_s=10, **kw) -> pd.Series:
    out = triple_barrier_labels(close, pd.DatetimeIndex([at(event_s)]), pd.Series(width, index=close.index),
                                pt_sl, pd.Timedelta(seconds=hold_s), **kw)
    assert len(out) == 1, out.attrs
    return out.iloc[0]


# -- triple barrier by hand ----------------------------------------------------------------------

def test_take_profit_first():
    row = label_one(path([100, 100.5, 101.2, 98.0]))  # +1.19% at 2 s touches the 1% take-profit
    assert (row["barrier"], row["label"], row["t1"]) == ("pt", 1, at(2))
    assert row["ret"] == pytest.approx(math.log(101.2 / 100))


def test_stop_loss_first():
    row = label_one(path([100, 99.5, 98.9, 102.0]))
    assert (row["barrier"], row["label"], row["t1"]) == ("sl", -1, at(2))
    assert row["ret"] == pytest.approx(math.log(98.9 / 100))


def test_vertical_barrier_when_nothing_is_touched():
    row = label_one(path([100, 100.4, 99.7, 100.2, 100.3, 99.9]), hold_s=3)
    assert (row["barrier"], row["label"], row["t1"]) == ("vertical", 0, at(3))
    assert row["ret"] == pytest.approx(math.log(100.2 / 100))  # the last price at or before t0 + 3 s


def test_a_price_exactly_on_a_barrier_touches_it():
    width = float(np.log(101.0) - np.log(100.0))  # the return of 100 -> 101, exactly as computed
    row = label_one(path([100, 101.0]), width=width)
    assert row["barrier"] == "pt"


def test_both_barriers_inside_one_bar_are_resolved_by_the_tick_path():
    # one-second "bar" [1 s, 2 s) holds a dip to -1.5% at 1.2 s and a spike to +1.5% at 1.7 s:
    # on the tick path the stop-loss came first
    ticks = pd.Series([100, 100.1, 98.5, 101.5, 100.0],
                      index=[at(0), at(1), at(1.2), at(1.7), at(2)])
    assert label_one(ticks)["barrier"] == "sl"
    assert label_one(ticks)["t1"] == at(1.2)
    # the same bar sampled at its close alone touches neither
    assert label_one(ticks.iloc[[0, 1, 4]], hold_s=2)["barrier"] == "vertical"


def test_prices_sharing_a_timestamp_are_taken_in_the_given_order():
    ticks = pd.Series([100, 102.0, 98.0], index=[at(0), at(1), at(1)])
    assert label_one(ticks)["barrier"] == "pt"
    assert label_one(ticks.iloc[[0, 2, 1]])["barrier"] == "sl"


def test_disabled_barriers():
    prices = path([100, 102, 97, 100])
    assert label_one(prices, pt_sl=(0, 1))["barrier"] == "sl"  # no take-profit: the +2% passes
    assert label_one(prices, pt_sl=(1, 0))["barrier"] == "pt"
    row = label_one(prices, pt_sl=(0, 0), hold_s=3)
    assert (row["barrier"], row["t1"]) == ("vertical", at(3))


def test_side_signs_the_return_and_gives_the_meta_label():
    prices = path([100, 99.5, 98.9, 102.0])  # falls 1.1% first
    short = label_one(prices, side=pd.Series([-1.0], index=[at(0)]))
    assert (short["barrier"], short["label"]) == ("pt", 1)  # the short's take-profit, it made money
    assert short["ret"] == pytest.approx(-math.log(98.9 / 100))
    long = label_one(prices, side=pd.Series([1.0], index=[at(0)]))
    assert (long["barrier"], long["label"]) == ("sl", 0)
    # asymmetric barriers follow the side: a short's take-profit is below the entry
    asym = label_one(prices, pt_sl=(2, 0.5), side=pd.Series([-1.0], index=[at(0)]))
    assert (asym["barrier"], asym["t1"]) == ("sl", at(3))  # +2% against the short beyond 0.5%
    vertical_loss = label_one(path([100, 100.2, 100.1]), hold_s=2, side=pd.Series([-1.0], index=[at(0)]))
    assert (vertical_loss["barrier"], vertical_loss["label"]) == ("vertical", 0)


def test_events_near_the_end_of_data_are_left_out_and_counted_unless_touched():
    prices = path([100, 100.2, 100.1, 101.5, 100.0, 100.1])  # last price at 5 s
    events = pd.DatetimeIndex([at(0), at(2), at(4)])
    out = triple_barrier_labels(prices, events, pd.Series(0.01, index=prices.index), (1, 1), pd.Timedelta(seconds=3))
    # 0 s: vertical at 3 s, within the data; 2 s: touched at 3 s; 4 s: vertical at 7 s > 5 s, untouched
    assert list(out.index) == [at(0), at(2)] and list(out["barrier"]) == ["pt", "pt"]
    assert out.attrs["incomplete"] == 1
    # told the path is complete until 8 s (e.g. a stale feed), the last event gets its vertical label
    out = triple_barrier_labels(prices, events, pd.Series(0.01, index=prices.index), (1, 1), pd.Timedelta(seconds=3),
                                path_end=at(8))
    assert out.loc[at(4), "barrier"] == "vertical" and out.loc[at(4), "t1"] == at(7)


def test_entry_is_the_last_price_at_or_before_the_event_and_min_return_filters():
    prices = path([100, 101, 100.2, 102.5], step_s=2)  # prices at 0, 2, 4, 6 s
    row = label_one(prices, event_s=3)  # entry 101 (at 2 s)
    assert (row["barrier"], row["t1"]) == ("pt", at(6)) and row["ret"] == pytest.approx(math.log(102.5 / 101))
    out = triple_barrier_labels(prices, pd.DatetimeIndex([at(1), at(3)]),
                                pd.Series([0.001, 0.01], index=[at(0), at(2)]), (1, 1), pd.Timedelta(seconds=10),
                                min_return=0.005)
    assert list(out.index) == [at(3)] and out.attrs["below_min_return"] == 1


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="prices must be finite and > 0"):
        label_one(path([100, -1]))
    with pytest.raises(ValueError, match="pt_sl"):
        label_one(path([100, 101]), pt_sl=(-1, 1))


# -- property test against a brute-force scan ----------------------------------------------------

def brute_force(close: pd.Series, events, width, pt_sl, hold: pd.Timedelta, side=None) -> dict:
    out = {}
    for t0 in events:
        before = close[close.index <= t0]
        if before.empty:
            continue
        p0 = before.iloc[-1]
        s = 1.0 if side is None else float(side[t0])
        up = pt_sl[0] * width if pt_sl[0] > 0 else np.inf
        down = -pt_sl[1] * width if pt_sl[1] > 0 else -np.inf
        future = close[(close.index > t0) & (close.index <= t0 + hold)]
        result = None
        for t, p in future.items():
            r = s * (math.log(p) - math.log(p0))
            if r >= up:
                result = (t, r, "pt")
                break
            if r <= down:
                result = (t, r, "sl")
                break
        if result is None:
            if t0 + hold > close.index[-1]:
                continue  # incomplete
            last = close[close.index <= t0 + hold].iloc[-1]
            result = (t0 + hold, s * (math.log(last) - math.log(p0)), "vertical")
        out[t0] = result
    return out


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(-3, 3), min_size=2, max_size=400), seed=st.integers(0, 10**6),
       pt=st.sampled_from([0.0, 0.5, 1.0, 2.0]), sl=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
       hold=st.integers(1, 150), with_side=st.booleans(),
       offsets_ms=st.lists(st.integers(-2500, 2500), min_size=1, max_size=20), early_ms=st.integers(1, 5000))
def test_labels_match_a_brute_force_path_scan(steps, seed, pt, sl, hold, with_side, offsets_ms, early_ms):
    # integer ticks of 0.1%: exact ties with the barriers happen often
    close = pd.Series(100 * np.exp(0.001 * np.cumsum(steps)),
                      index=T0 + pd.to_timedelta(np.cumsum(np.random.default_rng(seed).integers(1, 3, len(steps))),
                                                 unit="s"))
    rng = np.random.default_rng(seed)
    # events at prices, between prices (entry: the last price before), after the last price and
    # before the first one (no entry price: left out); prices are 1-2 s apart
    anchors = close.index[rng.integers(0, len(close), len(offsets_ms))]
    between = anchors + pd.to_timedelta(offsets_ms, unit="ms")
    events = pd.DatetimeIndex(sorted(set(close.index[rng.integers(0, len(close), 20)]) | {close.index[-1]}
                                     | set(between) | {close.index[0] - pd.Timedelta(milliseconds=early_ms)}))
    assert not events.isin(close.index).all() and events[0] < close.index[0]
    width = 0.002
    side = pd.Series(rng.choice([-1.0, 1.0], len(events)), index=events) if with_side else None
    got = triple_barrier_labels(close, events, pd.Series(width, index=close.index), (pt, sl),
                                pd.Timedelta(seconds=hold), side=side)
    expected = brute_force(close, events, width, (pt, sl), pd.Timedelta(seconds=hold), side)
    assert set(got.index) == set(expected)
    for t0, (t1, ret, barrier) in expected.items():
        row = got.loc[t0]
        assert (row["t1"], row["barrier"]) == (t1, barrier), t0
        assert row["ret"] == pytest.approx(ret, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(200, 3000), seed=st.integers(0, 10**6))
def test_the_block_skipping_scan_agrees_with_brute_force_on_long_quiet_paths(n, seed):
    rng = np.random.default_rng(seed)
    close = path(100 * np.exp(np.cumsum(rng.normal(0, 2e-4, n))))
    events = close.index[rng.integers(0, n, 15)].unique()
    got = triple_barrier_labels(close, events, pd.Series(0.004, index=close.index), (1, 1.5), pd.Timedelta(seconds=700))
    expected = brute_force(close, events, 0.004, (1, 1.5), pd.Timedelta(seconds=700))
    assert {t: (r["t1"], r["barrier"]) for t, r in got.iterrows()} == {t: (v[0], v[2]) for t, v in expected.items()}


# -- CUSUM and volatility ------------------------------------------------------------------------

def test_cusum_by_hand():
    # log returns 0, +1%, +1%, +1%, -0.5%, -2%, -0.5%: S+ 0.01, 0.02 > 0.015 -> event at 2, reset;
    # S+ 0.01 at 3; S+ 0.005 at 4 (S- -0.005); 5: S- -0.025 < -0.015 -> event, S+ 0 ; 6: S- -0.005
    r = [0.0, 0.01, 0.01, 0.01, -0.005, -0.02, -0.005]
    close = path(100 * np.exp(np.cumsum(r)))
    assert list(cusum_events(close, 0.015)) == [at(2), at(5)]
    threshold = pd.Series([0.05, 0.05, 0.05, 0.005, 0.005, 0.005, 0.005], index=close.index)
    # with a threshold falling to 0.5% at 3 s: S+ 0.03 > 0.005 at 3 (event), then 5 (S- -0.025)
    assert list(cusum_events(close, threshold)) == [at(3), at(5)]


@settings(max_examples=50, deadline=None)
@given(r=st.lists(st.floats(-0.02, 0.02), min_size=2, max_size=200), h=st.floats(0.001, 0.05))
def test_cusum_matches_the_afml_loop(r, h):
    close = path(100 * np.exp(np.cumsum(r)))
    diff = np.log(close).diff().fillna(0.0)
    s_pos = s_neg = 0.0
    expected = []
    for t, x in diff.iloc[1:].items():
        s_pos, s_neg = max(0.0, s_pos + x), min(0.0, s_neg + x)
        if s_neg < -h:
            s_neg = 0.0
            expected.append(t)
        elif s_pos > h:
            s_pos = 0.0
            expected.append(t)
    assert list(cusum_events(close, h)) == expected


def test_daily_volatility_is_the_ewm_std_of_lookback_returns():
    close = path(100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 1e-3, 50))))
    vol = daily_volatility(close, span=10, lookback=pd.Timedelta(seconds=5))
    ret = np.log(close / close.shift(5))  # 1-second path: the price 5 s back is 5 rows back
    pd.testing.assert_series_equal(vol, ret.ewm(span=10).std(), check_names=False)
    assert vol.iloc[:5].isna().all()


# -- meta-labels ---------------------------------------------------------------------------------

def test_flow_momentum_side_and_meta_labels():
    times = pd.DatetimeIndex([at(0), at(2), at(4)])
    features = pd.DataFrame({"pressure_imbalance_5": [0.3, -0.2, 0.4],
                             "pressure_imbalance_5_step_zscore_1h": [1.5, -2.0, 0.5],
                             "ofi_norm_1m": [-5.0, np.nan, 4.0], "ofi_norm_1m_step_zscore_1h": [-1.5, np.nan, 3.0]},
                            index=times)
    side = flow_momentum_side(features, threshold=1.0)
    assert list(side) == [1.0, -1.0, 0.0]  # the last z-score is too small: no bet
    assert list(flow_momentum_side(features, 1.0, signal="ofi_norm_1m")) == [-1.0, 0.0, 1.0]  # NaN: no bet
    close = path([100, 101.5, 101.0, 99.0, 99.2, 99.0, 99.0])
    out = meta_labels(close, features, times, pd.Series(0.01, index=close.index), (1, 1), pd.Timedelta(seconds=2))
    assert list(out.index) == [at(0), at(2)] and out.attrs["no_side"] == 1
    assert list(out["side"]) == [1, -1] and list(out["label"]) == [1, 1]  # long up, short down: both won
    assert list(out["outcome"]) == [1, 1]


# -- uniqueness and weights ----------------------------------------------------------------------

def test_average_uniqueness_by_hand():
    # bars 0..5; A spans [0, 2], B [1, 3], C [4, 5]: concurrency 1, 2, 2, 1, 1, 1
    index = pd.DatetimeIndex([at(i) for i in range(6)])
    t1 = pd.Series([at(2), at(3), at(5)], index=[at(0), at(1), at(4)])
    u = average_uniqueness(t1, index)
    assert list(u) == pytest.approx([(1 + 0.5 + 0.5) / 3, (0.5 + 0.5 + 1) / 3, 1.0])


def test_sample_weights_by_hand():
    index = pd.DatetimeIndex([at(i) for i in range(6)])
    close = pd.Series(100 * np.exp(np.array([0, 0.01, 0.03, 0.02, 0.02, 0.05])), index=index)
    labels = pd.DataFrame({"t1": [at(2), at(3), at(5)], "label": [1, 0, 1]}, index=[at(0), at(1), at(4)])
    # returns r_1..r_5 = .01, .02, -.01, 0, .03; concurrency 1, 2, 2, 1, 1, 1
    # attribution A: |.01/2 + .02/2| = .015; B: |.02/2 - .01/1| = 0 -> floor; C: |.03| = .03
    u = np.array([2 / 3, 2 / 3, 1.0])
    a = np.array([0.015, 0.0, 0.03])
    a = np.maximum(a, 0.01 * a.mean())
    raw = u * a
    np.testing.assert_allclose(sample_weights(labels, close), raw * 3 / raw.sum())
    w = sample_weights(labels, close, balanced=True)
    assert w.sum() == pytest.approx(3.0)
    assert w[labels["label"] == 0].sum() == pytest.approx(w[labels["label"] == 1].sum())
    decayed = sample_weights(labels, close, decay=0.5)
    assert (decayed > 0).all() and decayed.iloc[0] / decayed.iloc[2] < (raw[0] / raw[2])  # older counts less
    with pytest.raises(ValueError, match="decay"):
        sample_weights(labels, close, decay=0.0)
