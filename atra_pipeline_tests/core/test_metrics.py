"""Return metrics against empyrical on the same series (to 1e-9), by hand on tiny series, and
the Probabilistic / Deflated Sharpe Ratio by their formulas."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from atra_pipeline.core import metrics as m


def series(values) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="D"), dtype=float)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-0.2, 0.2), min_size=5, max_size=300).filter(lambda v: np.std(v) > 1e-6))
def test_agrees_with_empyrical(values):
    r = series(values)
    pairs = [
        (m.sharpe_ratio(r), empyrical.sharpe_ratio(r, annualization=365)),
        (m.sortino_ratio(r), empyrical.sortino_ratio(r, annualization=365)),
        (m.max_drawdown(r), empyrical.max_drawdown(r)),
        (m.annualized_return(r), empyrical.annual_return(r, annualization=365)),
        (m.annualized_volatility(r), empyrical.annual_volatility(r, annualization=365)),
        (m.value_at_risk(r, 0.95), empyrical.value_at_risk(r, cutoff=0.05)),
        (m.conditional_value_at_risk(r, 0.95), empyrical.conditional_value_at_risk(r, cutoff=0.05)),
        (m.total_return(r), empyrical.cum_returns_final(r)),
    ]
    if m.max_drawdown(r) < -1e-9:  # a drawdown of rounding size makes the ratio arbitrary
        pairs.append((m.calmar_ratio(r), empyrical.calmar_ratio(r, annualization=365)))
    if (r < 0).any():
        pairs.append((m.omega_ratio(r), empyrical.omega_ratio(r)))
    for ours, theirs in pairs:
        if not (math.isnan(ours) and math.isnan(theirs)):
            assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_by_hand():
    r = series([0.10, -0.20, 0.05, 0.10])
    # wealth 1.1, 0.88, 0.924, 1.0164: the peak 1.1 is never regained
    assert m.total_return(r) == pytest.approx(1.1 * 0.8 * 1.05 * 1.1 - 1)
    assert m.max_drawdown(r) == pytest.approx(0.88 / 1.1 - 1)
    assert m.max_drawdown_duration(r) == 3
    assert m.omega_ratio(r) == pytest.approx(0.25 / 0.20)
    assert m.sharpe_ratio(r, periods_per_year=1) == pytest.approx(np.mean(r) / np.std(r, ddof=1))


def test_probabilistic_and_deflated_sharpe_by_formula():
    r = series(np.random.default_rng(4).normal(0.002, 0.02, 400))
    x = r.to_numpy()
    sr = x.mean() / x.std(ddof=1)
    g3 = ((x - x.mean()) ** 3).mean() / x.std() ** 3
    g4 = ((x - x.mean()) ** 4).mean() / x.std() ** 4
    expected = norm.cdf((sr - 0.01) * math.sqrt(399) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert m.probabilistic_sharpe_ratio(r, 0.01) == pytest.approx(expected, rel=1e-12)
    trials = np.array([0.02, 0.05, -0.01, 0.03, 0.00])
    sr0 = trials.std(ddof=1) * ((1 - 0.5772156649015329) * norm.ppf(1 - 1 / 5)
                                + 0.5772156649015329 * norm.ppf(1 - 1 / (5 * math.e)))
    assert m.expected_max_sharpe(trials) == pytest.approx(sr0)
    assert m.deflated_sharpe_ratio(r, trials) == pytest.approx(m.probabilistic_sharpe_ratio(r, sr0))
    # more trials tried with the same spread: a higher bar, a lower probability
    many = np.random.default_rng(1).normal(0, trials.std(ddof=1), 200)
    assert m.deflated_sharpe_ratio(r, many) < m.deflated_sharpe_ratio(r, trials) <= m.probabilistic_sharpe_ratio(r)
    assert 0 <= m.deflated_sharpe_ratio(r, many) <= 1
