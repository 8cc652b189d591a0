"""Backtest speed: 1,000,000 decisions over 3 symbols with book-walk slippage and the cost-aware
entry through the numba engine, against the tests' pure-Python reference loop (the usual
per-trade shape) run on a sample and scaled; and the metrics of 10 years of daily returns plus a
1,000-path Monte Carlo.

Run: ``.venv/bin/python benchmarks/backtest.py [--decisions 1000000] [--sample 2000]``.
Data: constructed candidates in the engine's input layout (``sql/backtest/candidates.sql``): one
decision a minute per symbol, random sides and probabilities, 5-minute holds, 10-level books at the
decision, entry and exit with sizes that the orders sometimes walk through. Goals: < 3 s for the
million and >= 50x the loop; metrics + Monte Carlo < 2 s. Also checks the loop's sample agrees.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from timing import best_of

from atra_pipeline.core.backtest import metrics
from atra_pipeline.core.backtest.engine import BacktestSettings, run_backtest
from atra_pipeline.core.backtest.montecarlo import monte_carlo
from atra_pipeline_tests.core.backtest.backtest_reference import reference_backtest

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
LEVELS = 10


def make_candidates(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per = n // len(SYMBOLS)
    frames = []
    for k, symbol in enumerate(SYMBOLS):
        ts = pd.date_range("2022-01-01", periods=per, freq="1min")
        mid = 100.0 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 5e-4, per)))
        hold = pd.to_timedelta(rng.integers(1, 6, per), unit="min")
        exit_mid = mid * np.exp(rng.normal(0, 1.5e-3, per))
        frame = pd.DataFrame({"ts": ts, "symbol": symbol, "probability": rng.uniform(0.5, 0.7, per),
                              "side": rng.choice([-1, 1], per), "t1": ts + hold,
                              "target": rng.uniform(0.002, 0.02, per),
                              "barrier": "vertical", "ret": 0.0, "entry_mid": mid, "exit_mid": exit_mid,
                              "entry_fill_ts": ts + pd.Timedelta(milliseconds=250),
                              "exit_fill_ts": ts + hold + pd.Timedelta(milliseconds=250)})
        columns = {}
        for leg, m in (("dec", mid), ("entry", mid), ("exit", exit_mid)):
            tick = m * 1e-4
            for i in range(LEVELS):
                columns[f"{leg}_bid_px_{i}"] = m - tick * (0.5 + i)
                columns[f"{leg}_ask_px_{i}"] = m + tick * (0.5 + i)
                columns[f"{leg}_bid_sz_{i}"] = rng.uniform(20, 60, per) / (k + 1)
                columns[f"{leg}_ask_sz_{i}"] = rng.uniform(20, 60, per) / (k + 1)
        frames.append(pd.concat([frame, pd.DataFrame(columns)], axis=1))
    return pd.concat(frames, ignore_index=True).sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    c = make_candidates(args.decisions)
    settings = BacktestSettings()
    run_backtest(c.head(1000), settings)  # numba compilation (cached on disk afterwards)
    engine_s = best_of(args.repeat, lambda: run_backtest(c, settings))
    decisions, ledger, report = run_backtest(c, settings)

    sample = c.head(args.sample)
    start = time.perf_counter()
    ref_decisions, loop = reference_backtest(sample, settings)
    loop_s = time.perf_counter() - start
    loop_scaled = loop_s * len(c) / len(sample)
    _, ours, _ = run_backtest(sample, settings)
    ours = ours.sort_values(["decision_ts", "symbol"]).reset_index(drop=True)
    loop = loop.sort_values(["decision_ts", "symbol"]).reset_index(drop=True)
    n = min(len(ours), len(loop))
    agree = len(ours) == len(loop) and np.allclose(ours["net_pnl"].to_numpy()[:n], loop["net_pnl"].to_numpy()[:n],
                                                   rtol=1e-9)

    rng = np.random.default_rng(3)
    daily = pd.Series(rng.normal(4e-4, 0.02, 3650), index=pd.date_range("2015-01-01", periods=3650, freq="D"))
    trade_returns = rng.normal(2e-4, 4e-3, 5000)

    def risk():
        metrics.summary(daily)
        metrics.deflated_sharpe_ratio(daily, rng.normal(0, 0.02, 50))
        monte_carlo(trade_returns, n_paths=1000)

    risk_s = best_of(args.repeat, risk)
    print(f"Backtest: {len(c):,} decisions over {len(SYMBOLS)} symbols with book-walk fills and the cost-aware entry "
          f"({report['trades']:,} trades, {report.get('skipped_position_open', 0):,} skipped while a position was "
          f"open, {report.get('skipped_edge_below_min', 0):,} for cost); best of {args.repeat}")
    print(f"{'figure':64s} {'seconds':>9s} {'ratio':>14s}")
    print(f"{'(a) numba engine, all decisions':64s} {engine_s:9.3f} {'1.0x':>14s}")
    print(f"{f'(b) pure-Python reference loop (tests), first {len(sample):,} decisions':64s} {loop_s:9.3f}")
    print(f"{'(b) scaled to all decisions':64s} {loop_scaled:9.1f} {f'{loop_scaled / engine_s:,.0f}x slower':>14s}")
    print(f"{'(c) metrics of 10 years of daily returns + DSR + 1,000 Monte Carlo paths':64s} {risk_s:9.3f}")
    print(f"goals: engine < 3 s ({'met' if engine_s < 3 else 'NOT met'}), >= 50x the loop "
          f"({'met' if loop_scaled / engine_s >= 50 else 'NOT met'}), metrics + Monte Carlo < 2 s "
          f"({'met' if risk_s < 2 else 'NOT met'})")
    print(f"the loop and the engine agree on the sample: {agree} ({len(loop)} vs {len(ours)} trades)")


if __name__ == "__main__":
    main()
