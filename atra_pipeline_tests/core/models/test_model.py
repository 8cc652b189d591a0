"""The meta-label model: metrics by hand, PBO on constructed performance matrices, a leakage
test (noise labels stay at AUC 0.5 under purged CV, while a shuffled k-fold finds a fake edge),
a planted signal found, resumable studies, and the registry round trip."""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.backtest.metrics import probability_of_backtest_overfitting
from atra_pipeline.core.errors import DataError
from atra_pipeline.core.labels.partition import LabelSettings
from atra_pipeline.core.models.cv import leakage
from atra_pipeline.core.models.registry import decide, latest, load_model, register_candidate
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.models.training import (
    TrainingSet,
    TrainingSettings,
    auc_standard_error,
    effective_events,
    log_loss,
    prior_log_loss,
    roc_auc,
    study_name,
    train_candidate,
)
from atra_pipeline.core.strategy.rules import StrategySettings

T0 = pd.Timestamp("2024-08-01")


def test_metrics_by_hand():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)  # ties: half credit
    p = np.array([0.2, 0.4, 0.6, 0.9])
    expected = -(math.log(0.8) + math.log(0.6) + math.log(0.6) + math.log(0.9)) / 4
    assert log_loss(y, p) == pytest.approx(expected)
    w = np.array([1.0, 1.0, 1.0, 3.0])  # weighted class shares 2/6 and 4/6
    assert prior_log_loss(y, w) == pytest.approx(-(2 * math.log(1 / 3) + 4 * math.log(2 / 3)) / 6)


def test_auc_standard_error_by_hand_and_against_simulation():
    # Hanley & McNeil (1982) at A = 0.75, 10 positives and 20 negatives: Q1 = 0.75 / 1.25 = 0.6,
    # Q2 = 2 * 0.5625 / 1.75 = 0.642857...; SE^2 = (0.1875 + 9 * 0.0375 + 19 * 0.080357...) / 200
    q2 = 2 * 0.75**2 / 1.75
    expected = math.sqrt((0.75 * 0.25 + 9 * (0.6 - 0.5625) + 19 * (q2 - 0.5625)) / 200)
    assert auc_standard_error(0.75, 10, 20) == pytest.approx(expected, rel=1e-12)
    # at 0.5 it is the Mann-Whitney null variance (n1 + n2 + 1) / (12 n1 n2)
    for n1, n2 in ((5, 7), (100, 300)):
        assert auc_standard_error(0.5, n1, n2) ** 2 == pytest.approx((n1 + n2 + 1) / (12 * n1 * n2), rel=1e-12)
    assert math.isnan(auc_standard_error(0.6, 0, 10))
    # the AUC of 2000 independent no-skill samples of 80 + 120 events spreads by the standard error
    rng = np.random.default_rng(11)
    y = np.r_[np.ones(80), np.zeros(120)]
    aucs = [roc_auc(y, rng.random(200)) for _ in range(2000)]
    assert np.std(aucs) == pytest.approx(auc_standard_error(0.5, 80, 120), rel=0.08)


def test_effective_events_count_overlapping_labels_once():
    index = pd.date_range(T0, periods=4, freq="10min")
    apart = pd.Series(index + pd.Timedelta(minutes=5), index=index)  # no two labels overlap
    assert effective_events(apart, np.array(["A"] * 4)) == pytest.approx(4)
    same = pd.Series([index[-1]] * 4, index=index)  # all four alive at the end: they share it
    assert effective_events(same, np.array(["A"] * 4)) < 4
    # other symbols' labels do not overlap these
    assert effective_events(same, np.array(["A", "B", "C", "D"])) == pytest.approx(4)


def test_pbo_on_constructed_performance():
    rng = np.random.default_rng(0)
    # configuration 0 is best on every block: the in-sample winner is also best out of sample
    dominant = rng.normal(0, 0.01, (6, 5))
    dominant[:, 0] += 1.0
    assert probability_of_backtest_overfitting(dominant) == 0.0
    # configurations that swap: each is best on half of the blocks and worst on the others
    swap = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    # choices of 3 in-sample blocks: the in-sample winner loses out of sample unless the split is balanced
    assert probability_of_backtest_overfitting(swap) == pytest.approx(1.0)
    assert math.isnan(probability_of_backtest_overfitting(np.ones((4, 1))))


def synthetic_events(n: int = 3000, signal: float = 0.0, hold: int = 30, seed: int = 1) -> TrainingSet:
    """Events every minute with labels over the next ``hold`` minutes (heavily overlapping); the
    features are slow random walks, unrelated to the labels unless ``signal`` > 0."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(T0, periods=n, freq="1min")
    noise = rng.normal(size=n + hold)
    future = np.convolve(noise, np.ones(hold), "valid")[1:n + 1]  # sum over (i, i + hold]
    X = pd.DataFrame(np.cumsum(rng.normal(size=(n, 6)), axis=0) / 30, index=index,
                     columns=[f"f{i}" for i in range(6)])
    X["planted"] = rng.normal(size=n)
    y = ((future + signal * hold**0.5 * X["planted"].to_numpy()) > 0).astype(int)
    return TrainingSet(X, y, np.ones(n), pd.Series(index + pd.Timedelta(minutes=hold), index=index),
                       np.where(y == 1, 0.001, -0.001), np.array(["BTCUSDT"] * n))


def test_noise_labels_stay_at_auc_one_half_walking_forward_but_not_under_a_shuffled_kfold():
    data = synthetic_events(n=5000, hold=10)
    result = train_candidate(data, TrainingSettings(trials=4, n_splits=5, embargo=0.01, max_estimators=200))
    m = result.metrics
    # the standard error counts the labels' effective number (10-minute labels every minute: about
    # a tenth of the rows), so noise stays within it
    assert m["auc_effective_events"] == pytest.approx(m["events"] / 10, rel=0.1)
    assert abs(m["auc"] - 0.5) < 3 * m["auc_se"] and abs(m["auc_z"]) < 3, m
    assert leakage(data.X.index, data.t1, result.folds) == {"trained_and_tested": 0, "overlapping_labels": 0}
    # the same model under a shuffled 5-fold: neighbours share label windows and feature values
    n_eff = len(data.y) / 10
    noise = math.sqrt((n_eff + 1) / (12 * (n_eff / 2) ** 2))
    rng = np.random.default_rng(0)
    folds = np.array_split(rng.permutation(len(data.y)), 5)
    oof = np.empty(len(data.y))
    for test in folds:
        train = np.setdiff1d(np.arange(len(data.y)), test)
        booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "num_leaves": 31},
                            lgb.Dataset(data.X.iloc[train], data.y[train]), num_boost_round=200)
        oof[test] = booster.predict(data.X.iloc[test])
    assert roc_auc(data.y, oof) > 0.5 + 10 * noise  # the leak the purged CV closes (0.84 measured)


def test_a_planted_signal_is_found_and_ranked_first():
    data = synthetic_events(signal=0.5, seed=2)
    result = train_candidate(data, TrainingSettings(trials=4, max_estimators=200))
    assert result.metrics["auc"] > 0.6 and result.metrics["log_loss"] < result.metrics["prior_log_loss"]
    assert result.metrics["auc_z"] > 2
    assert result.importance.index[0] == "planted"
    # every event from the first walk-forward period on is predicted once, by one of the periods
    first = pd.Timestamp(result.metrics["walk_forward_first_test"])
    assert len(result.oof) == (data.X.index >= first).sum() == result.metrics["oof_events_expected"]
    assert result.oof["ts"].is_unique and set(result.oof["fold"]) == set(range(result.metrics["walk_forward_periods"]))
    # the study tuned only before the walk-forward: its trials scored no later event
    assert result.trial_scores["ts"].max() < first and result.trial_scores["trial"].nunique() == 4


def test_walk_forward_predictions_do_not_change_when_the_future_does():
    """A period's predictions depend on earlier labels only: rewriting every label from the
    second period on leaves the first period's predictions exactly as they were."""
    data = synthetic_events(n=2000, signal=0.5, seed=7)
    settings = TrainingSettings(trials=2, max_estimators=60)
    before = train_candidate(data, settings, lookback_s=300)
    second = pd.Timestamp(before.fold_metrics.loc[1, "test_start"])
    changed = data.subset(np.arange(len(data.y)))
    changed.y = np.where(changed.X.index >= second, 1 - changed.y, changed.y)
    after = train_candidate(changed, settings, lookback_s=300)
    np.testing.assert_array_equal(before.oof[before.oof["fold"] == 0]["probability"],
                                  after.oof[after.oof["fold"] == 0]["probability"])
    assert not np.array_equal(before.oof["probability"], after.oof["probability"])  # the later periods did change
    # each period trained on labels ended before it and on events a look-back before it
    for train, test in before.folds[-before.metrics["walk_forward_periods"]:]:
        start = data.X.index[test[0]]
        assert data.t1.iloc[train].max() < start and data.X.index[train].max() < start - pd.Timedelta(seconds=300)


@pytest.mark.parametrize("cv, splits", [("cpcv", 6), ("walk_forward", 4)])
def test_other_cv_kinds_choose_the_hyperparameters(cv, splits):
    data = synthetic_events(n=2400, signal=0.5, seed=3)
    settings = TrainingSettings(trials=2, cv=cv, n_splits=splits, n_test_splits=2, max_estimators=100)
    result = train_candidate(data, settings)
    assert leakage(data.X.index, data.t1, result.folds) == {"trained_and_tested": 0, "overlapping_labels": 0}
    study_folds = len(result.folds) - result.metrics["walk_forward_periods"]
    # C(6, 2) CPCV splits, or the walk-forward windows (the last may hold the last events alone)
    assert study_folds == 15 if cv == "cpcv" else study_folds in (splits, splits + 1)
    assert result.oof["ts"].is_unique and result.metrics["auc"] > 0.6  # the planted signal, found walking forward
    if cv == "cpcv":  # C(5, 1) = 5 complete paths, each predicting every tuning event once
        paths = result.cpcv_paths
        assert paths["path"].nunique() == 5 and paths.groupby("path").size().eq(result.metrics["tuning_events"]).all()
        assert paths["probability"].between(0, 1).all()
        # the 5 paths of an event take the 5 different splits that test it: 5 different models
        distinct = paths.groupby("ts")["probability"].nunique()
        assert (distinct == 5).mean() > 0.95
    else:
        assert result.cpcv_paths.empty


def test_a_stored_study_resumes_with_more_trials(tmp_path):
    data = synthetic_events(n=600, seed=4)
    storage = f"sqlite:///{tmp_path / 'optuna.sqlite3'}"
    first = train_candidate(data, TrainingSettings(trials=2, max_estimators=50), storage=storage)
    again = train_candidate(data, TrainingSettings(trials=5, max_estimators=50), storage=storage)
    assert first.study_summary["study_name"] == again.study_summary["study_name"]
    assert (first.study_summary["trials_this_run"], again.study_summary["trials_this_run"]) == (2, 3)
    assert again.study_summary["trials_total"] == 5
    # the trials of the first run are scored again (deterministically): all five can be backtested
    assert again.trial_scores["trial"].nunique() == 5
    np.testing.assert_allclose(first.trial_scores.query("trial == 0")["probability"],
                               again.trial_scores.query("trial == 0")["probability"])
    other = study_name(data, TrainingSettings(n_splits=4), "label")
    assert other != study_name(data, TrainingSettings(), "label")  # a different setup, a different study


def test_registry_round_trip_and_decisions(conn):
    data = synthetic_events(n=800, signal=0.5, seed=5)
    settings = TrainingSettings(trials=2, max_estimators=60)
    spec = ModelSpec(("BTCUSDT",), step_s=30, labels=LabelSettings(pt_sl=(2.0, 1.0), cusum_k=0.7),
                     strategy=StrategySettings(min_edge_bps=1.5))
    first_id = register_candidate(conn, train_candidate(data, settings), settings, "2024-08-01", "2024-08-01",
                                  ["2024-08-01|BTCUSDT"], spec)
    record = load_model(conn, first_id)
    assert record.status == "candidate" and record.features == list(data.X.columns)
    assert record.require_spec() == spec  # the whole configuration, read back as registered
    trained = train_candidate(data, settings)
    second_id = register_candidate(conn, trained, settings, "2024-08-01", "2024-08-01", ["2024-08-01|BTCUSDT"], spec)
    np.testing.assert_array_equal(load_model(conn, second_id).booster().predict(data.X),
                                  trained.booster.predict(data.X))
    stored = conn.execute("SELECT count(*) FROM oof_predictions WHERE model_id = ?", [second_id]).fetchall()[0][0]
    assert stored == len(trained.oof) == trained.metrics["oof_events_expected"]
    trials = conn.execute("SELECT count(DISTINCT trial), count(*) FROM trial_predictions WHERE model_id = ?",
                          [second_id]).fetchall()[0]
    assert trials == (2, len(trained.trial_scores))

    assert decide(conn, first_id, True, "ok") == first_id
    assert decide(conn, second_id, False, "auc too low") == first_id  # rejected: the first stays live
    assert load_model(conn, second_id).reason == "auc too low" and latest(conn, "approved") == first_id
    third_id = register_candidate(conn, trained, settings, "2024-08-01", "2024-08-01", ["2024-08-01|BTCUSDT"], spec)
    decide(conn, third_id, True, "ok")
    assert load_model(conn, first_id).status == "retired" and latest(conn, "approved") == third_id
    with pytest.raises(KeyError, match="not in the registry"):
        load_model(conn, "nope")

    # a damaged stored model is refused with an error naming it, never a process abort (LightGBM
    # terminates on a cut model string: exit 134)
    text = load_model(conn, third_id).model_text
    conn.execute("UPDATE model_registry SET model_text = ? WHERE model_id = ?", [text[: len(text) // 2], third_id])
    with pytest.raises(DataError, match=f"model_registry, model {third_id}, column 'model_text': the stored model "
                                        "text is damaged"):
        load_model(conn, third_id).booster()
    conn.execute("UPDATE model_registry SET model_sha256 = NULL WHERE model_id = ?", [third_id])  # an older model
    for cut in (len(text) // 2, len(text) - 40, text.index("end of trees")):
        conn.execute("UPDATE model_registry SET model_text = ? WHERE model_id = ?", [text[:cut], third_id])
        with pytest.raises(DataError, match="cut short"):
            load_model(conn, third_id).booster()


def test_multiclass_on_barrier_outcomes():
    data = synthetic_events(n=1500, signal=0.5, seed=6)
    data.y = np.where(data.y == 1, 2, np.where(np.arange(len(data.y)) % 5 == 0, 1, 0))  # tp / vertical / sl
    result = train_candidate(data, TrainingSettings(trials=2, objective="multiclass", max_estimators=60))
    assert result.booster.predict(data.X.iloc[:3]).shape == (3, 3)
    assert result.metrics["log_loss"] < result.metrics["prior_log_loss"] and result.metrics["auc"] > 0.6
    assert result.oof["probability"].between(0, 1).all()  # P(take-profit)
    # the column ranks the take-profit events (class 2) high and the stop-losses (class 0) low, by
    # the labels of the events themselves, not the ones copied into the OOF frame
    y = pd.Series(data.y, index=data.X.index).loc[result.oof["ts"]].to_numpy()
    p = result.oof["probability"].to_numpy()
    assert roc_auc((y == 2).astype(int), p) > 0.6 and roc_auc((y == 0).astype(int), p) < 0.5
