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

from atra_pipeline.core.backtest import metrics as m


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
    if m.max_drawdown(r) < -1e-6:  # a drawdown near rounding size makes the ratio ill-conditioned (1e22)
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


def test_minimum_track_record_length_by_hand_and_where_the_psr_reaches_its_confidence():
    # Bailey & Lopez de Prado (2012): MinTRL = 1 + (1 - g3 SR + (g4 - 1) / 4 SR^2) (z / (SR - SR*))^2
    r = series([0.01, 0.03, -0.02, 0.02, 0.01, 0.00, 0.04, -0.01])
    x = r.to_numpy()
    sr = x.mean() / x.std(ddof=1)
    g3 = ((x - x.mean()) ** 3).mean() / x.std() ** 3
    g4 = ((x - x.mean()) ** 4).mean() / x.std() ** 4
    expected = 1 + (1 - g3 * sr + (g4 - 1) / 4 * sr**2) * (norm.ppf(0.95) / (sr - 0.1)) ** 2
    assert m.minimum_track_record_length(r, 0.1, 0.95) == pytest.approx(expected, rel=1e-12)
    assert m.minimum_track_record_length(r, sr + 0.01) == math.inf  # no length proves a Sharpe below the bar
    assert math.isnan(m.minimum_track_record_length(series([0.01, 0.02])))  # too few returns to say


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-0.05, 0.08), min_size=6, max_size=200).filter(lambda v: np.std(v) > 1e-4),
       bar=st.floats(-0.5, 0.5))
def test_the_psr_of_a_track_record_of_exactly_min_trl_returns_is_the_confidence(values, bar):
    """Brute force: a series with the same moments and MinTRL returns has PSR = confidence."""
    r = series(values)
    need = m.minimum_track_record_length(r, bar, 0.9)
    sr, g3, g4, _ = m._sr_moments(r)
    if not np.isfinite(need):
        assert need == math.inf and sr <= bar
        return
    denom = 1 - g3 * sr + (g4 - 1) / 4 * sr**2
    assert norm.cdf((sr - bar) * math.sqrt(need - 1) / math.sqrt(denom)) == pytest.approx(0.9, abs=1e-9)


def test_too_few_returns_give_nan_never_a_number_that_means_nothing():
    one_loss = series([-0.01])
    assert math.isnan(m.sortino_ratio(one_loss))  # was -sqrt(365) for any losing day
    two = series([0.004, 0.006])
    assert math.isnan(m.sharpe_ratio(two)) and math.isnan(m.probabilistic_sharpe_ratio(two))
    # two good days no longer give a DSR of 0.9998
    assert math.isnan(m.deflated_sharpe_ratio(two, [0.1, 0.2, 0.3]))
    # one trial with a Sharpe ratio: the trials' spread, so the bar, is unknown (was silently 0)
    assert math.isnan(m.expected_max_sharpe([0.3, float("nan"), float("nan")]))


def test_every_trial_run_raises_the_bar():
    sharpes = [0.02, 0.05, -0.01, 0.03, 0.00]
    assert m.expected_max_sharpe(sharpes, n_trials=5) == pytest.approx(m.expected_max_sharpe(sharpes))
    # 20 trials run, 15 of them pruned: the bar is that of the best of 20 with the same spread
    n = 20
    expected = np.std(sharpes, ddof=1) * ((1 - m.EULER_GAMMA) * norm.ppf(1 - 1 / n)
                                          + m.EULER_GAMMA * norm.ppf(1 - 1 / (n * math.e)))
    assert m.expected_max_sharpe(sharpes, n_trials=20) == pytest.approx(expected)
    r = series(np.random.default_rng(2).normal(0.003, 0.02, 300))
    assert m.deflated_sharpe_ratio(r, sharpes, 20) < m.deflated_sharpe_ratio(r, sharpes)


def test_cscv_needs_an_even_number_of_blocks_and_each_block_has_its_sharpe():
    with pytest.raises(ValueError, match="even"):
        m.probability_of_backtest_overfitting(np.ones((5, 3)))
    assert [m.cscv_blocks(n) for n in (3, 4, 18, 100)] == [0, 2, 8, 16]
    returns = np.array([[0.01, 0.0], [0.03, 0.0], [-0.01, 0.02], [0.01, 0.02]])
    block = m.block_sharpe_ratios(returns, 2)
    assert block[0, 0] == pytest.approx(0.02 / np.std([0.01, 0.03], ddof=1)) and block[0, 1] == 0.0  # flat: 0
    assert block[1, 1] == 0.0 and block[1, 0] == pytest.approx(0.0)


def test_return_frequency_is_hourly_below_thirty_days():
    assert m.return_frequency(29.9) == "h" and m.return_frequency(30) == "D"
    assert m.PERIODS_PER_YEAR == {"D": 365, "h": 8760}


def test_probability_of_loss_and_pbo_by_hand():
    # config 0 swings (+1, +1, -1, -1), config 1 earns 0.5 on every block. Of the 6 halves, the
    # in-sample winner loses out of sample once (in-sample {0, 1}: config 0, out of sample -1);
    # it ranks below the other out of sample twice ({0, 1}: -1 < 0.5; {2, 3}: 0.5 < 1)
    performance = np.array([[1.0, 0.5], [1.0, 0.5], [-1.0, 0.5], [-1.0, 0.5]])
    assert m.probability_of_loss(performance) == pytest.approx(1 / 6)
    assert m.probability_of_backtest_overfitting(performance) == pytest.approx(2 / 6)
    # alike configurations that all earn: the winner's rank is a coin flip, its loss never happens
    alike = [1.0 + np.random.default_rng(seed).normal(0, 0.1, (8, 6)) for seed in range(20)]
    assert all(m.probability_of_loss(p) == 0.0 for p in alike)
    assert 0.35 < np.mean([m.probability_of_backtest_overfitting(p) for p in alike]) < 0.65
    assert math.isnan(m.probability_of_loss(np.ones((0, 2))))
    with pytest.raises(ValueError, match="even"):
        m.probability_of_loss(np.ones((3, 2)))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), half=st.integers(1, 3), n_configs=st.integers(1, 4))
def test_probability_of_loss_against_a_brute_force_over_bit_masks(data, half, n_configs):
    blocks = 2 * half
    values = data.draw(st.lists(st.floats(-2, 2), min_size=blocks * n_configs, max_size=blocks * n_configs))
    performance = np.array(values).reshape(blocks, n_configs)
    losses = splits = 0
    for mask in range(1 << blocks):  # every subset of half the blocks, as a bit mask
        if bin(mask).count("1") != half:
            continue
        inside = np.array([(mask >> b) & 1 for b in range(blocks)], dtype=bool)
        winner = int(np.argmax(performance[inside].mean(axis=0)))
        losses += performance[~inside, winner].mean() <= 0
        splits += 1
    assert m.probability_of_loss(performance) == pytest.approx(losses / splits)
