"""The strategy's rules by hand and by brute force: the round-trip cost from the book, the expected
net edge and its break-even probability, Kelly on the net pay-off (the log-growth optimum found
on a grid), the entry decision's reasons, and the exit rule against the labels' triple barrier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atra_pipeline.core.labels.methods import triple_barrier_labels
from atra_pipeline.core.strategy.fills import CostSettings, round_trip_cost, walk_book
from atra_pipeline.core.strategy.rules import (
    EDGE_BELOW_MIN,
    EXIT_REASONS,
    NO_EXIT,
    TAKEN,
    StrategySettings,
    barriers,
    entry_decision,
    expected_edge,
    first_exit,
)
from atra_pipeline.core.strategy.sizing import SizingSettings, kelly_fraction, notional_for

NAN = float("nan")


def book(mid=100.0, half_spread=0.05, tick=0.01, depth=1.0):
    bid_px = np.array([mid - half_spread - tick * i for i in range(10)])
    ask_px = np.array([mid + half_spread + tick * i for i in range(10)])
    return bid_px, np.full(10, depth), ask_px, np.full(10, depth)


def test_walk_book_by_hand():
    px = np.array([100.0, 100.5, 101.0] + [NAN] * 7)
    sz = np.array([1.0, 2.0, 3.0] + [NAN] * 7)
    assert walk_book(px, sz, 0.5, 0.001, 1.0) == (100.0, 0.0)
    vwap, beyond = walk_book(px, sz, 2.0, 0.001, 1.0)  # 1 @ 100 + 1 @ 100.5
    assert vwap == pytest.approx(100.25) and beyond == 0
    vwap, beyond = walk_book(px, sz, 8.0, 0.001, 1.0)  # 6 visible, 2 beyond at 101 * 1.001
    assert beyond == 2.0 and vwap == pytest.approx((100 + 201 + 303 + 2 * 101 * 1.001) / 8)
    bids = np.array([99.0, 98.0] + [NAN] * 8)
    vwap, beyond = walk_book(bids, np.array([1.0, 1.0] + [NAN] * 8), 3.0, 0.001, -1.0)  # selling: worse is lower
    assert vwap == pytest.approx((99 + 98 + 98 * 0.999) / 3)


def test_round_trip_cost_by_hand():
    bid_px, bid_sz, ask_px, ask_sz = book()
    # at the touch: buy 100.05, sell 99.95 -> spread 0.10 on mid 100 = 10 bp, plus 4 bp x (100.05 + 99.95) / 100
    touch = round_trip_cost(1.0, 0.0, 100.0, bid_px, bid_sz, ask_px, ask_sz, 4e-4, 0.0)
    assert touch == pytest.approx(0.001 + 4e-4 * 2.0)
    assert round_trip_cost(-1.0, 0.0, 100.0, bid_px, bid_sz, ask_px, ask_sz, 4e-4, 0.0) == pytest.approx(touch)
    # 2.5 units walk three levels each way: in at (100.05 + 100.06 + 0.5 x 100.07) / 2.5, out likewise
    into, out = (100.05 + 100.06 + 0.5 * 100.07) / 2.5, (99.95 + 99.94 + 0.5 * 99.93) / 2.5
    walked = round_trip_cost(1.0, 2.5, 100.0, bid_px, bid_sz, ask_px, ask_sz, 4e-4, 0.0)
    assert walked == pytest.approx((into - out + 4e-4 * (into + out)) / 100)
    assert walked > touch


def test_edge_and_break_even_probability():
    tau, c = 0.0018, 0.00136  # the make-run day: median width 18 bp, 13.6 bp round trip
    assert expected_edge(0.5 + c / (2 * tau), tau, 1.0, 1.0, c) == pytest.approx(0.0, abs=1e-15)
    assert 0.5 + c / (2 * tau) == pytest.approx(0.8778, abs=1e-4)
    assert expected_edge(0.6, tau, 1.0, 1.0, c) == pytest.approx(-0.001)  # 0.6 x 4.4 bp - 0.4 x 31.6 bp = -10 bp
    assert expected_edge(0.6, tau, 1.0, 1.0, c) < 0  # 0.60, the day's highest probability, loses


def test_net_kelly_by_hand():
    # W = L = 1%: f* = 0.6 / 0.01 - 0.4 / 0.01 = 20 (notional, x equity) -- the textbook (p - q/b) / (sl tau)
    assert kelly_fraction(0.6, 0.01, 0.01, 1.0) == pytest.approx(20.0)
    assert kelly_fraction(0.6, 0.01, 0.01, 1.0) == pytest.approx((0.6 - 0.4 / 1.0) / 0.01)
    # costs shrink the win and grow the loss: W = 0.8%, L = 1.2%
    assert kelly_fraction(0.6, 0.008, 0.012, 0.25) == pytest.approx(0.25 * (0.6 / 0.012 - 0.4 / 0.008))
    assert kelly_fraction(0.55, 0.008, 0.012, 0.25) == 0.0  # negative edge: nothing
    assert kelly_fraction(0.9, -0.001, 0.012, 0.25) == 0.0  # a take-profit that does not pay the costs: nothing


@settings(max_examples=200, deadline=None)
@given(p=st.floats(0.05, 0.95), win=st.floats(1e-4, 0.05), loss=st.floats(1e-4, 0.05))
def test_net_kelly_maximises_log_growth(p, win, loss):
    """Brute force: the stake maximising p ln(1 + f W) + (1 - p) ln(1 - f L) on a fine grid."""
    f_star = float(kelly_fraction(p, win, loss, 1.0))
    grid = np.linspace(0.0, 0.999 / loss, 200_001)
    growth = p * np.log1p(grid * win) + (1 - p) * np.log1p(-grid * loss)
    best = grid[np.argmax(growth)]
    assert f_star == pytest.approx(best, abs=2 * grid[1] + 1e-9)


def test_sizing_caps_by_hand():
    args = (0.25, 10.0, 0.02, 100.0, 100.0)  # kelly 1/4, loose vol target and exposure caps, 2% risk
    # Kelly: 0.25 x (0.6/0.012 - 0.4/0.008) = 0 (p = 0.6 at W 0.8%, L 1.2%: edge 0) -> nothing
    assert notional_for(100_000, 0.6, 0.008, 0.012, 0.01, *args, 0.0, 0.0) == pytest.approx(0.0, abs=1e-6)
    # p 0.7: Kelly 0.25 x (0.7/0.012 - 0.3/0.008) = 5.208x; risk cap 0.02 / 0.012 = 1.667x binds
    assert notional_for(100_000, 0.7, 0.008, 0.012, 0.01, *args, 0.0, 0.0) == pytest.approx(100_000 * 0.02 / 0.012)
    # gross cap 1.5x with 1.2x open leaves 0.3x
    tight = (0.25, 10.0, 0.02, 100.0, 1.5)
    assert notional_for(100_000, 0.7, 0.008, 0.012, 0.01, *tight, 0.0, 120_000) == pytest.approx(30_000)


def decide(p, side=1.0, tau=0.01, strategy=StrategySettings(max_notional=1e12), equity=100_000.0, **kw):
    bid_px, bid_sz, ask_px, ask_sz = book(**kw)
    return entry_decision(p, side, tau, 1.0, 1.0, 100.0, bid_px, bid_sz, ask_px, ask_sz, equity, 0.0, 0.0,
                          *strategy.kernel_args())


def test_entry_decision_skips_for_cost_and_records_why():
    qty, cost, edge, reason = decide(0.55, tau=0.001, depth=1e9)  # 10 bp barriers, 10 bp spread + 8 bp fees
    assert reason == EDGE_BELOW_MIN and qty == 0.0
    assert cost == pytest.approx(0.0018) and edge == pytest.approx(0.55 * (0.001 - 0.0018) - 0.45 * (0.001 + 0.0018))
    qty, cost, edge, reason = decide(0.7, tau=0.01, depth=1e9)
    assert reason == TAKEN and edge == pytest.approx(0.7 * (0.01 - 0.0018) - 0.3 * (0.01 + 0.0018))
    # sized at min(Kelly 0.25 x (0.7/0.0118 - 0.3/0.0082) = 5.68x, risk 0.02/0.0118 = 1.69x, symbol 1x) = 1x
    assert qty * 100.0 == pytest.approx(100_000)
    strict = StrategySettings(max_notional=1e12, min_edge_bps=edge * 1e4 + 1)
    assert decide(0.7, tau=0.01, strategy=strict, depth=1e9)[3] == EDGE_BELOW_MIN


def test_entry_cost_is_judged_at_the_intended_size():
    # a thin book: 1 unit per level; 1x equity (1,000 units) walks far beyond the book, so the
    # cost at the intended size shrinks the order until the edge at its own cost is positive
    qty, cost, edge, reason = decide(0.7, tau=0.01, depth=1.0)
    bid_px, bid_sz, ask_px, ask_sz = book(depth=1.0)
    assert reason == TAKEN and qty < 1000
    assert cost == pytest.approx(round_trip_cost(1.0, qty, 100.0, bid_px, bid_sz, ask_px, ask_sz, 4e-4, 1e-3))
    assert edge > 0


def test_order_cap_at_the_walked_price():
    qty, _, _, reason = decide(0.7, tau=0.01, strategy=StrategySettings(max_notional=30_000), depth=1e9)
    assert reason == TAKEN and qty * 100.05 == pytest.approx(30_000)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(-4, 4), min_size=5, max_size=200), side=st.sampled_from([-1.0, 1.0]),
       width=st.floats(0.0005, 0.01), pt=st.sampled_from([0.0, 0.5, 1.0, 2.0]), sl=st.sampled_from([0.0, 1.0, 1.5]),
       hold=st.integers(3, 150))
def test_first_exit_is_the_labels_barrier(steps, side, width, pt, sl, hold):
    """The live exit rule, fed the path tick by tick, ends where the labels' triple barrier does."""
    times = pd.date_range("2024-08-08", periods=len(steps) + 1, freq="1s")
    mids = pd.Series(100.0 * np.exp(np.cumsum([0, *steps]) * 5e-4), index=times)
    event = times[0]
    label = triple_barrier_labels(mids, pd.DatetimeIndex([event]), pd.Series(width, index=[event]), (pt, sl),
                                  pd.Timedelta(seconds=hold), side=pd.Series(side, index=[event]),
                                  path_end=times[-1] + pd.Timedelta(days=1))
    up, down = barriers(width, pt, sl)
    ns, logp = times.as_unit("ns").asi8, np.log(mids.to_numpy())
    vertical = (event + pd.Timedelta(seconds=hold)).value
    code, at = NO_EXIT, 0
    for now in [*ns[1:], vertical]:  # a tick per snapshot, then the timer at the vertical barrier
        code, at = first_exit(ns, logp, event.value, logp[0], side, up, down, vertical, now)
        if code != NO_EXIT:
            break
    assert EXIT_REASONS[code] == label["barrier"].iloc[0]
    assert pd.Timestamp(at) == label["t1"].iloc[0]


def test_settings_reach_the_kernel_in_its_order():
    s = StrategySettings(min_edge_bps=1.5, max_notional=7.0, costs=CostSettings(taker_fee_bps=3.0,
                                                                                  beyond_book_penalty_bps=20.0),
                         sizing=SizingSettings(0.5, 0.03, 0.01, 0.9, 1.8))
    assert s.kernel_args() == pytest.approx((3e-4, 2e-3, 1.5, 0.5, 0.03, 0.01, 0.9, 1.8, 7.0), rel=1e-12)
