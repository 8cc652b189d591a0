"""Backtest engine, Monte Carlo and the report: fees and spread per leg, the cost-aware entry and
its decision records, marked-to-market equity by hand; closed-form equity when costs are zero
and every trade takes profit; one position per symbol; the engine against a pure-Python
reference on random decisions (hypothesis); the HTML report holds every chart."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atra_pipeline.core.backtest.engine import BacktestSettings, equity_curve, run_backtest
from atra_pipeline.core.backtest.metrics import trade_summary
from atra_pipeline.core.backtest.montecarlo import bootstrap_paths, monte_carlo
from atra_pipeline.core.backtest.report import CHARTS, render_report
from atra_pipeline.core.strategy.fills import CostSettings
from atra_pipeline.core.strategy.rules import StrategySettings
from atra_pipeline.core.strategy.sizing import SizingSettings
from atra_pipeline_tests.core.backtest.backtest_reference import reference_backtest

T0 = pd.Timestamp("2024-08-08")
NAN = float("nan")
LOOSE = StrategySettings(max_notional=1e12)


def _book_columns(frame: pd.DataFrame, leg: str, mid: np.ndarray, half_spread, depth) -> pd.DataFrame:
    columns = {}
    for i in range(10):
        columns[f"{leg}_bid_px_{i}"] = mid - half_spread - 0.01 * i
        columns[f"{leg}_ask_px_{i}"] = mid + half_spread + 0.01 * i
        columns[f"{leg}_bid_sz_{i}"] = np.broadcast_to(depth, np.shape(mid)).ravel() * np.ones(len(frame))
        columns[f"{leg}_ask_sz_{i}"] = columns[f"{leg}_bid_sz_{i}"]
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def candidates(n: int, side: int = 1, gain: float = 0.01, spacing_min: int = 10, hold_min: int = 5,
               half_spread: float = 0.0, depth: float = 1e9, symbol: str = "BTCUSDT", probability: float = 0.6,
               target: float = 0.01) -> pd.DataFrame:
    ts = pd.date_range(T0, periods=n, freq=f"{spacing_min}min")
    entry_mid = np.full(n, 100.0)
    exit_mid = entry_mid * (1 + side * gain)
    frame = pd.DataFrame({"ts": ts, "symbol": symbol, "probability": probability, "side": side,
                          "t1": ts + pd.Timedelta(minutes=hold_min), "target": target, "barrier": "pt", "ret": gain,
                          "entry_mid": entry_mid, "exit_mid": exit_mid, "entry_fill_ts": ts,
                          "exit_fill_ts": ts + pd.Timedelta(minutes=hold_min)})
    for leg, mid in (("dec", entry_mid), ("entry", entry_mid), ("exit", exit_mid)):
        frame = _book_columns(frame, leg, mid, half_spread, depth)
    return frame


def test_zero_costs_and_every_take_profit_give_the_closed_form_equity():
    # sized by the 2% risk cap: notional 2% / (1 x 1%) = 2x equity, capped at 1x by the symbol exposure:
    # each trade earns 1% of equity at mids, no costs -> equity compounds by 1.01 per trade
    free = CostSettings(taker_fee_bps=0.0, latency_ms=0.0, beyond_book_penalty_bps=0.0)
    settings = BacktestSettings(strategy=replace(LOOSE, costs=free, sizing=SizingSettings(kelly_multiplier=1.0,
                                                                                            vol_target=10.0)))
    decisions, ledger, report = run_backtest(candidates(12), settings)
    assert report["trades"] == 12 and decisions["taken"].all()
    assert ledger["equity_after"].iloc[-1] == pytest.approx(100_000 * 1.01**12, rel=1e-12)
    assert (ledger["slippage_cost"].abs() < 1e-9).all() and (ledger["fee_cost"] == 0).all()
    assert (ledger["exit_reason"] == "pt").all() and (ledger["expected_cost_bps"] == 0).all()
    _, shorts, _ = run_backtest(candidates(12, side=-1), settings)  # a short whose mid falls 1% earns the same
    assert shorts["equity_after"].iloc[-1] == pytest.approx(100_000 * 1.01**12, rel=1e-12)


def test_fees_and_spread_are_charged_per_leg():
    settings = BacktestSettings(strategy=replace(LOOSE, sizing=SizingSettings(kelly_multiplier=1.0, vol_target=10.0)))
    decisions, ledger, _ = run_backtest(candidates(1, half_spread=0.05), settings)
    t = ledger.iloc[0]
    assert t["entry_px"] == pytest.approx(100.05) and t["exit_px"] == pytest.approx(101 - 0.05)
    assert t["notional"] == pytest.approx(100_000 * 100.05 / 100)  # 1x equity at the entry mid, paid at the ask
    assert t["slippage_cost"] == pytest.approx(t["qty"] * 0.10)
    assert t["fee_cost"] == pytest.approx(4e-4 * t["qty"] * (100.05 + 100.95))
    assert t["net_pnl"] == pytest.approx(t["qty"] * (100.95 - 100.05) - t["fee_cost"])
    # the decision expected 10 bp of spread and 8 bp of fees: c = 18 bp, e = 0.6 (1% - c) - 0.4 (1% + c)
    d = decisions.iloc[0]
    assert d["expected_cost_bps"] == pytest.approx(10 + 4 * (100.05 + 99.95) / 100)
    assert d["expected_edge_bps"] == pytest.approx(1e4 * (0.6 * (0.01 - 0.0018) - 0.4 * (0.01 + 0.0018)))


def test_decisions_without_a_positive_net_edge_are_skipped_and_counted():
    # 5 bp barriers against a 10 bp spread plus 8 bp of fees: every decision would lose
    frame = candidates(5, half_spread=0.05, target=0.0005, probability=0.65)
    decisions, ledger, report = run_backtest(frame, BacktestSettings())
    assert ledger.empty and report == {"decisions": 5, "trades": 0, "skipped_edge_below_min": 5}
    assert (decisions["reason_not_taken"] == "edge_below_min").all() and (decisions["expected_edge_bps"] < 0).all()
    assert (decisions["size_notional"] == 0).all()


def test_one_position_per_symbol_and_signals_while_open_are_skipped():
    frame = candidates(6, spacing_min=2, hold_min=5)  # a new signal every 2 min, each held 5 min
    decisions, ledger, report = run_backtest(frame, BacktestSettings())
    assert list(ledger["decision_ts"]) == [T0, T0 + pd.Timedelta(minutes=6)]  # 2 and 4 skipped, 6 after the exit at 5
    assert report["skipped_position_open"] == 4
    assert list(decisions["reason_not_taken"]) == ["", "position_open", "position_open", "", "position_open",
                                                   "position_open"]
    other = candidates(6, spacing_min=2, hold_min=5, symbol="ETHUSDT")
    _, both, _ = run_backtest(pd.concat([frame, other]), BacktestSettings())
    assert both.groupby("symbol").size().to_dict() == {"BTCUSDT": 2, "ETHUSDT": 2}


def test_equity_is_marked_to_market_at_each_decision():
    # BTC opens at 00:00 (fills at 100.00, 4 bp fee); at 00:02 ETH decides while BTC is open and BTC's
    # mid is 101: equity = 100k + qty x (101 - 100) - fee. Sized by the 2% risk cap (no notional cap),
    # ETH's size follows that equity.
    btc = candidates(1, hold_min=10)
    eth = candidates(1, symbol="ETHUSDT").assign(ts=T0 + pd.Timedelta(minutes=2))
    eth["entry_fill_ts"], eth["t1"], eth["exit_fill_ts"] = eth["ts"], eth["ts"] + pd.Timedelta(minutes=5), \
        eth["ts"] + pd.Timedelta(minutes=5)
    marks = pd.DataFrame({"BTCUSDT": [100.0, 101.0], "ETHUSDT": [100.0, 100.0]},
                         index=[T0, T0 + pd.Timedelta(minutes=2)])
    risk_sized = BacktestSettings(strategy=replace(LOOSE, sizing=SizingSettings(max_symbol_exposure=10.0,
                                                                                max_gross_exposure=10.0)))
    decisions, ledger, _ = run_backtest(pd.concat([btc, eth]), risk_sized, marks)
    q = ledger.set_index("symbol")["qty"]
    loss = 0.01 + 8e-4  # the stop at 1 x 1% plus the round trip's 8 bp of fees (no spread, a deep book)
    assert q["BTCUSDT"] * 100 == pytest.approx(0.02 * 100_000 / loss)
    marked = 100_000 + q["BTCUSDT"] * 1.0 - 4e-4 * q["BTCUSDT"] * 100.0
    assert decisions["equity"].iloc[0] == 100_000 and decisions["equity"].iloc[1] == pytest.approx(marked)
    assert q["ETHUSDT"] * 100 == pytest.approx(0.02 * marked / loss)
    _, unmarked, _ = run_backtest(pd.concat([btc, eth]), risk_sized)  # without marks: at the entry price
    assert unmarked.set_index("symbol")["qty"]["ETHUSDT"] * 100 == pytest.approx(
        0.02 * (100_000 - 4e-4 * q["BTCUSDT"] * 100.0) / loss)


def _random_candidates(data) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = []
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT")[:data.draw(st.integers(1, 3))]:
        n = data.draw(st.integers(1, 12))
        starts = np.cumsum(data.draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)))
        holds = np.array(data.draw(st.lists(st.integers(1, 9), min_size=n, max_size=n)))
        seed = data.draw(st.integers(0, 10**6))
        rng = np.random.default_rng(seed)
        ts = T0 + pd.to_timedelta(starts, unit="min")
        mid = 100 * np.exp(rng.normal(0, 0.002, n))
        exit_mid = mid * np.exp(rng.normal(0, 0.01, n))
        frame = pd.DataFrame({"ts": ts, "symbol": symbol, "probability": rng.uniform(0.4, 0.9, n),
                              "side": rng.choice([-1, 1], n), "t1": ts + pd.to_timedelta(holds, unit="min"),
                              "target": rng.uniform(0.001, 0.02, n), "barrier": "vertical", "ret": 0.0,
                              "entry_mid": mid, "exit_mid": exit_mid,
                              "entry_fill_ts": ts + pd.Timedelta(milliseconds=250),
                              "exit_fill_ts": ts + pd.to_timedelta(holds, unit="min") + pd.Timedelta(milliseconds=250)})
        depth = rng.uniform(1, 800, n)
        for leg, m in (("dec", mid), ("entry", mid * np.exp(rng.normal(0, 5e-4, n))), ("exit", exit_mid)):
            frame = _book_columns(frame, leg, m, rng.uniform(0.005, 0.05, n), depth)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    times = frame["ts"].drop_duplicates().sort_values()
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    marks = pd.DataFrame({s: 100 * np.exp(rng.normal(0, 0.005, len(times))) for s in frame["symbol"].unique()},
                         index=pd.DatetimeIndex(times))
    return frame, marks


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_engine_agrees_with_a_pure_python_reference(data):
    frame, marks = _random_candidates(data)
    strategy = StrategySettings(max_notional=data.draw(st.sampled_from([2e4, 5e4, 1e12])),
                                min_edge_bps=data.draw(st.sampled_from([0.0, 2.0])),
                                sizing=SizingSettings(max_gross_exposure=data.draw(st.sampled_from([0.5, 2.0]))))
    settings = BacktestSettings(strategy=strategy)
    decisions, ledger, _ = run_backtest(frame, settings, marks)
    ref_decisions, ref_trades = reference_backtest(frame, settings, marks)
    assert list(decisions["reason_not_taken"]) == list(ref_decisions["reason"].replace("taken", ""))
    np.testing.assert_allclose(decisions["equity"], ref_decisions["equity"], rtol=1e-9)
    np.testing.assert_allclose(decisions["size_notional"] / frame.sort_values(["ts", "symbol"], kind="stable")[
        "entry_mid"].to_numpy(), ref_decisions["qty"], rtol=1e-9)
    assert len(ledger) == len(ref_trades)
    if len(ledger):
        ours = ledger.sort_values(["decision_ts", "symbol"]).reset_index(drop=True)
        ref = ref_trades.sort_values(["decision_ts", "symbol"]).reset_index(drop=True)
        np.testing.assert_allclose(ours["net_pnl"], ref["net_pnl"], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(ours["equity_after"], ref["equity_after"], rtol=1e-9)


def test_equity_curve_starts_the_day_before():
    _, ledger, _ = run_backtest(candidates(3), BacktestSettings())
    equity = equity_curve(ledger, 100_000, T0, T0)
    assert list(equity.index) == [T0 - pd.Timedelta(days=1), T0] and equity.iloc[0] == 100_000
    assert equity.iloc[-1] == pytest.approx(100_000 + ledger["net_pnl"].sum())


def test_hourly_equity_and_trade_figures_by_hand():
    ledger = pd.DataFrame({"exit_ts": pd.to_datetime(["2024-08-01 10:30", "2024-08-01 12:10", "2024-08-01 12:50"]),
                           "entry_ts": pd.to_datetime(["2024-08-01 10:00", "2024-08-01 12:00", "2024-08-01 12:20"]),
                           "net_pnl": [100.0, -50.0, 20.0], "gross_pnl": [110.0, -40.0, 30.0],
                           "slippage_cost": 5.0, "fee_cost": 5.0, "funding_cost": 0.0,
                           "notional": [1000.0, 2000.0, 1000.0], "symbol": "BTCUSDT"})
    equity = equity_curve(ledger, 1_000.0, "2024-08-01 10:05", "2024-08-01 13:00", freq="h")
    # the hour before the first, then 10:00 .. 13:00; P&L booked in the hour of its exit
    assert list(equity.index.hour) == [9, 10, 11, 12, 13]
    assert equity.tolist() == [1_000.0, 1_100.0, 1_100.0, 1_070.0, 1_070.0]
    figures = trade_summary(ledger, equity)
    # 4 hours covered (9:00 .. 13:00) = 1/6 day: turnover 2 x 4,000 over mean equity, per day
    days = 4 / 24
    assert figures["turnover_per_day"] == pytest.approx(2 * 4000 / equity.mean() / days)
    assert figures["exposure"] == pytest.approx((30 + 10 + 30) * 60 / (days * 86400))
    assert figures["win_rate"] == pytest.approx(2 / 3) and figures["profit_factor"] == pytest.approx(120 / 50)


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
    _, ledger, _ = run_backtest(candidates(30, spacing_min=60), BacktestSettings())
    ledger["mae"], ledger["mfe"] = -0.001, 0.002
    equity = equity_curve(ledger, 100_000, T0, T0 + pd.Timedelta(days=1))
    mc = monte_carlo((ledger["net_pnl"] / 100_000).to_numpy(), n_paths=50)
    path = render_report(tmp_path / "r.html", "Risk report m1", "| a | b |", equity, ledger, mc,
                         {"stress": pd.DataFrame({"scenario": ["base"], "trades": [30]})},
                         pd.Series({"pressure_imbalance_5": 0.2, "ret_1m": 0.1}))
    text = path.read_text()
    images = re.findall(r'<img alt="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert [name for name, _ in images] == list(CHARTS)
    assert all(data.startswith("iVBORw0KGgo") for _, data in images)  # PNG signature
    assert "<table" in text and "Risk report m1" in text and math.isfinite(equity.iloc[-1])
