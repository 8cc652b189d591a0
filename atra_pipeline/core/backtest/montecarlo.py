"""Monte Carlo of a backtest's trade sequence: bootstrap the per-trade returns into many equity
paths, for the spread of the final return and the max drawdown and the probability of ruin."""

from __future__ import annotations

import numpy as np
import pandas as pd


def bootstrap_paths(trade_returns: np.ndarray, n_paths: int = 1000, block: int = 1, seed: int = 7) -> np.ndarray:
    """``(n_paths, n)`` resampled sequences of the ``n`` per-trade returns (returns on equity).

    ``block`` = 1 draws trades independently (i.i.d. bootstrap); ``block`` > 1 draws runs of
    ``block`` consecutive trades from random starts (moving-block bootstrap, Kuensch 1989), which
    keeps the serial dependence of streaks within a block.
    """
    r = np.asarray(trade_returns, dtype=float)
    n = len(r)
    if n == 0:
        return np.zeros((n_paths, 0))
    rng = np.random.default_rng(seed)
    block = max(1, min(block, n))
    starts = rng.integers(0, n - block + 1, size=(n_paths, -(-n // block)))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_paths, -1)[:, :n]
    return r[idx]


def monte_carlo(trade_returns: np.ndarray, n_paths: int = 1000, block: int = 1, ruin_drawdown: float = 0.2,
                seed: int = 7) -> dict:
    """Distribution of the compounded final return and of the max drawdown over bootstrapped
    paths (5/50/95 percentiles), and the share of paths whose drawdown reaches ``ruin_drawdown``."""
    paths = bootstrap_paths(trade_returns, n_paths, block, seed)
    wealth = np.cumprod(1 + paths, axis=1)
    wealth = np.concatenate([np.ones((n_paths, 1)), wealth], axis=1)
    drawdown = (wealth / np.maximum.accumulate(wealth, axis=1) - 1).min(axis=1)
    final = wealth[:, -1] - 1
    pct = [5, 50, 95]
    return {
        "paths": n_paths, "trades": int(paths.shape[1]), "block": block,
        **{f"final_return_p{p}": float(np.percentile(final, p)) for p in pct},
        **{f"max_drawdown_p{p}": float(np.percentile(drawdown, p)) for p in pct},
        "probability_of_ruin": float((drawdown <= -ruin_drawdown).mean()), "ruin_drawdown": ruin_drawdown,
        "fan": pd.DataFrame(np.percentile(wealth, [5, 25, 50, 75, 95], axis=0).T,
                            columns=["p5", "p25", "p50", "p75", "p95"]),
    }
