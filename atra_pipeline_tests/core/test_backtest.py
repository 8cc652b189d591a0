"""Backtest engine, sizing, Monte Carlo and the report: book-walk fills, fees, Kelly and the 2%
cap by hand; closed-form equity when costs are zero and every trade takes profit; one position
per symbol; the HTML report holds every chart."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.backtest import BacktestSettings, CostSettings, daily_equity, run_backtest, walk_book
from atra_pipeline.core.montecarlo import bootstrap_paths, monte_carlo
from atra_pipeline.core.report import CHARTS, render_report
from atra_pipeline.core.sizing import SizingSettings, kelly_fraction, position_notional

T0 = pd.Timestamp("2024-08-08")
NAN = float("nan")


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


def test_kelly_and_the_risk_cap_by_hand():
    assert kelly_fraction(0.6, 1.0, 1.0) == pytest.approx(0.2)  # p - q/b = 0.6 - 0.4
    assert kelly_fraction(0.6, 2.0, 0.25) == pytest.approx(0.25 * (0.6 - 0.4 / 2))
    assert kelly_fraction(0.4, 1.0) == 0.0  # no edge, no stake
    loose = SizingSettings(kelly_multiplier=1.0, vol_target=10.0, max_risk_per_trade=1.0, max_symbol_exposure=100,
                           max_gross_exposure=100)
    # stop at 1 x 1% target: Kelly stakes 20% of 100k at risk -> notional 20k / 0.01 = 2M
    assert position_notional(100_000, 0.6, 1.0, 1.0, 0.01, loose) == pytest.approx(2_000_000)
    capped = replace(loose, max_risk_per_trade=0.02)  # at most 2% of equity lost at the stop: 2k / 0.01
    assert position_notional(100_000, 0.6, 1.0, 1.0, 0.01, capped) == pytest.approx(200_000)
    assert position_notional(100_000, 0.6, 1.0, 1.0, 0.01, replace(capped, max_symbol_exposure=1.0)) == pytest.approx(100_000)
    assert position_notional(100_000, 0.6, 1.0, 1.0, 0.01, replace(capped, max_gross_exposure=1.5),
                             gross_exposure=120_000) == pytest.approx(30_000)


def _book_columns(frame: pd.DataFrame, leg: str, mid: np.ndarray, half_spread: float, depth: float) -> None:
    for i in range(10):
        frame[f"{leg}_bid_px_{i}"] = mid - half_spread - 0.01 * i
        frame[f"{leg}_ask_px_{i}"] = mid + half_spread + 0.01 * i
        frame[f"{leg}_bid_sz_{i}"] = depth
        frame[f"{leg}_ask_sz_{i}"] = depth


def candidates(n: int, side: int = 1, gain: float = 0.01, spacing_min: int = 10, hold_min: int = 5,
               half_spread: float = 0.0, depth: float = 1e9, symbol: str = "BTCUSDT") -> pd.DataFrame:
    ts = pd.date_range(T0, periods=n, freq=f"{spacing_min}min")
    entry_mid = np.full(n, 100.0)
    exit_mid = entry_mid * (1 + side * gain)
    frame = pd.DataFrame({"ts": ts, "symbol": symbol, "probability": 0.6, "side": side,
                          "t1": ts + pd.Timedelta(minutes=hold_min), "target": 0.01, "barrier": "pt", "ret": gain,
                          "entry_mid": entry_mid, "exit_mid": exit_mid, "entry_fill_ts": ts,
                          "exit_fill_ts": ts + pd.Timedelta(minutes=hold_min)})
    _book_columns(frame, "entry", entry_mid, half_spread, depth)
    _book_columns(frame, "exit", exit_mid, half_spread, depth)
    return frame


def test_zero_costs_and_every_take_profit_give_the_closed_form_equity():
    # sized by the 2% risk cap: notional 2% / (1 x 1%) = 2x equity, capped at 1x by the symbol exposure:
    # each trade earns 1% of equity at mids, no costs -> equity compounds by 1.01 per trade
    settings = BacktestSettings(costs=CostSettings(taker_fee_bps=0.0, latency_ms=0.0, beyond_book_penalty_bps=0.0),
                                sizing=SizingSettings(kelly_multiplier=1.0, vol_target=10.0))
    ledger, report = run_backtest(candidates(12), settings)
    assert report["trades"] == 12
    assert ledger["equity_after"].iloc[-1] == pytest.approx(100_000 * 1.01**12, rel=1e-12)
    assert (ledger["slippage_cost"].abs() < 1e-9).all() and (ledger["fee_cost"] == 0).all()
    shorts, _ = run_backtest(candidates(12, side=-1), settings)  # a short whose mid falls 1% earns the same
    assert shorts["equity_after"].iloc[-1] == pytest.approx(100_000 * 1.01**12, rel=1e-12)


def test_fees_and_spread_are_charged_per_leg():
    settings = BacktestSettings(costs=CostSettings(taker_fee_bps=4.0, latency_ms=0.0),
                                sizing=SizingSettings(kelly_multiplier=1.0, vol_target=10.0))
    ledger, _ = run_backtest(candidates(1, half_spread=0.05), settings)
    t = ledger.iloc[0]
    assert t["entry_price"] == pytest.approx(100.05) and t["exit_price"] == pytest.approx(101 - 0.05)
    assert t["notional"] == pytest.approx(100_000 * 100.05 / 100)  # 1x equity at the entry mid, paid at the ask
    assert t["slippage_cost"] == pytest.approx(t["qty"] * 0.10)
    assert t["fee_cost"] == pytest.approx(4e-4 * t["qty"] * (100.05 + 100.95))
    assert t["net_pnl"] == pytest.approx(t["qty"] * (100.95 - 100.05) - t["fee_cost"])


def test_one_position_per_symbol_and_signals_while_open_are_skipped():
    frame = candidates(6, spacing_min=2, hold_min=5)  # a new signal every 2 min, each held 5 min
    ledger, report = run_backtest(frame, BacktestSettings())
    assert list(ledger["ts"]) == [T0, T0 + pd.Timedelta(minutes=6)]  # 2 and 4 skipped, 6 after the exit at 5
    assert report["skipped_position_open"] == 4
    other = candidates(6, spacing_min=2, hold_min=5, symbol="ETHUSDT")
    both, _ = run_backtest(pd.concat([frame, other]), BacktestSettings())
    assert both.groupby("symbol").size().to_dict() == {"BTCUSDT": 2, "ETHUSDT": 2}


def test_daily_equity_starts_the_day_before():
    ledger, _ = run_backtest(candidates(3), BacktestSettings())
    equity = daily_equity(ledger, 100_000, T0, T0)
    assert list(equity.index) == [T0 - pd.Timedelta(days=1), T0] and equity.iloc[0] == 100_000
    assert equity.iloc[-1] == pytest.approx(100_000 + ledger["net_pnl"].sum())


def test_monte_carlo_bootstrap():
    r = np.array([0.01, -0.02, 0.03, 0.0, -0.01])
    paths = bootstrap_paths(r, n_paths=200, seed=1)
    assert paths.shape == (200, 5) and set(np.unique(paths)) <= set(r)
    blocks = bootstrap_paths(np.arange(10.0), n_paths=50, block=5, seed=2)
    assert all((np.diff(p[:5]) == 1).all() for p in blocks)  # each block is a run of consecutive trades
    mc = monte_carlo(np.full(20, 0.01), n_paths=100)
    assert mc["final_return_p50"] == pytest.approx(1.01**20 - 1) and mc["probability_of_ruin"] == 0.0
    crash = monte_carlo(np.array([-0.1, -0.1, 0.05]), n_paths=500, ruin_drawdown=0.2)
    assert 0 < crash["probability_of_ruin"] < 1 and crash["max_drawdown_p5"] <= crash["max_drawdown_p95"]
    # by hand: each of the 3 draws is -10% with p = 2/3 and +5% with 1/3; a path's max drawdown
    # (from the starting equity 1 on) is -27.1% for (-,-,-) [8/27], -19% for (-,-,+) and (+,-,-)
    # [4/27 each], -14.95% for (-,+,-) [4/27], -10% with one loss [6/27], 0 for (+,+,+) [1/27]:
    # ruin (drawdown <= -20%) has probability 8/27, the worst 5% sit at 0.9^3 - 1, the median at -19%
    outcomes = {}
    for draws in itertools.product([-0.1, -0.1, 0.05], repeat=3):  # the 27 equally likely index sequences
        wealth = np.cumprod([1.0, *(1 + np.array(draws))])
        worst = min(w / max(wealth[:i + 1]) - 1 for i, w in enumerate(wealth))
        outcomes[round(worst, 6)] = outcomes.get(round(worst, 6), 0) + 1
    assert outcomes == {round(0.9**3 - 1, 6): 8, -0.19: 8, round(0.9 * 1.05 * 0.9 - 1, 6): 4, -0.1: 6, 0.0: 1}
    assert crash["max_drawdown_p5"] == pytest.approx(0.9**3 - 1)
    assert crash["max_drawdown_p50"] == pytest.approx(-0.19)
    # 500 bootstrapped paths: the share of ruined ones is within 3 sd (0.02 each) of 8/27
    assert crash["probability_of_ruin"] == pytest.approx(8 / 27, abs=3 * math.sqrt(8 / 27 * 19 / 27 / 500))


def test_the_report_renders_with_every_chart(tmp_path):
    ledger, _ = run_backtest(candidates(30, spacing_min=60), BacktestSettings())
    ledger["mae"], ledger["mfe"] = -0.001, 0.002
    equity = daily_equity(ledger, 100_000, T0, T0 + pd.Timedelta(days=1))
    mc = monte_carlo((ledger["net_pnl"] / 100_000).to_numpy(), n_paths=50)
    path = render_report(tmp_path / "r.html", "Risk report m1", "| a | b |", equity, ledger, mc,
                         {"stress": pd.DataFrame({"scenario": ["base"], "trades": [30]})},
                         pd.Series({"pressure_imbalance_5": 0.2, "ret_1m": 0.1}))
    text = path.read_text()
    images = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert [name for name, _ in images] == list(CHARTS)
    assert all(data.startswith("iVBORw0KGgo") for _, data in images)  # PNG signature
    assert "<table" in text and "Risk report m1" in text and math.isfinite(equity.iloc[-1])
