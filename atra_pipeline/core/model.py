"""Meta-label model: Optuna-tuned LightGBM under purged cross-validation, out-of-fold predictions,
the metrics a quant reads, and the probability of backtest overfitting.

Each trial trains one LightGBM per fold, with early stopping on the latest part of the fold's
training events (never on the test fold), and is scored by the weighted out-of-fold log-loss;
the median pruner stops a trial whose running score after a fold is worse than the median of
earlier trials at that fold. Every fold's ``lgb.Dataset`` (binned
features, labels, weights) is built once and reused by all trials. After the study, the best
parameters are re-run over the folds for the out-of-fold predictions and the fold metrics, and a
final model is fitted on every event with the median of the folds' best iteration counts.

Choosing among trials by their out-of-fold score still flatters the best one; the gate's
overfitting statistics (:func:`probability_of_backtest_overfitting`, and the Deflated Sharpe
Ratio over the trials' Sharpe ratios) account for that selection.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Literal

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from scipy.stats import rankdata

from atra_pipeline.core.cv import CombinatorialPurgedKFold, PurgedKFold, purged_train, walk_forward_splits
from atra_pipeline.core.features.registry import feature_columns
from atra_pipeline.core.sql import bind, load_sql

CvKind = Literal["purged_kfold", "cpcv", "walk_forward"]
EPS = 1e-15


def model_features() -> list[str]:
    """The meta-model's inputs: the registry's feature columns, then the primary model's side."""
    return [*feature_columns(), "side"]


def training_frame(conn, symbols: list[str], start_date: str = "", end_date: str = "") -> tuple[pd.DataFrame, str, str]:
    """The labelled events of ``symbols`` from ``start_date`` to ``end_date`` (inclusive; empty: the
    first / last stored label) joined to their feature rows (``sql/models/training_set.sql``), and
    the dates used. Raises ``ValueError`` when there are no labels or no events in the range."""
    first, last = conn.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM labels").fetchall()[0]
    if first is None:
        raise ValueError("the labels table is empty; materialise labels first")
    start, end = start_date or str(first), end_date or str(last)
    sql = load_sql("models/training_set.sql")
    frame = conn.execute(sql, bind(sql, {"start_date": start, "end_date": end, "symbols": list(symbols)})).fetchdf()
    if frame.empty:
        raise ValueError(f"no labelled events with features in {start} .. {end}")
    return frame, start, end


@dataclass(frozen=True)
class TrainingSettings:
    """How a candidate is tuned and validated (the ``model_candidate`` asset's config)."""

    trials: int = 20
    """Optuna trials in the study in total; a re-run with more resumes the stored study."""
    cv: CvKind = "purged_kfold"
    n_splits: int = 5
    """Folds (purged k-fold), groups (CPCV) or, for walk-forward, test windows over the span."""
    n_test_splits: int = 2
    """CPCV: groups per test set."""
    embargo: float = 0.01
    """Fraction of the events' time span embargoed after each test block."""
    objective: Literal["binary", "multiclass"] = "binary"
    """binary: the meta-label; multiclass: the barrier outcome (-1, 0, 1)."""
    threshold: float = 0.5
    """Probability above which the meta-model takes a trade (precision and hit rate)."""
    seed: int = 7
    early_stopping_rounds: int = 30
    early_stopping_fraction: float = 0.2
    """The latest share of each fold's training events held out for early stopping (never the test fold)."""
    max_estimators: int = 400
    reuse_datasets: bool = True
    """Build each fold's lgb.Dataset once for all trials (off: rebuilt every trial, for the benchmark)."""
    num_threads: int = 1
    """LightGBM threads; on a busy 2-core machine 2 threads spin-wait (measured ~40x slower on small folds)."""


@dataclass
class TrainingSet:
    """Events in time order: features ``X`` (indexed by event time), targets and label spans."""

    X: pd.DataFrame
    y: np.ndarray
    weight: np.ndarray
    t1: pd.Series
    ret: np.ndarray
    symbol: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, features: list[str], target: str = "label") -> TrainingSet:
        """From rows with ``ts, symbol, t1, ret, weight, <target>`` and the feature columns."""
        frame = frame.sort_values(["ts", "symbol"], kind="stable")
        index = pd.DatetimeIndex(frame["ts"]).rename("event")
        X = pd.DataFrame(frame[features].to_numpy(dtype=float), index=index, columns=features)
        y = frame[target].to_numpy()
        if target == "outcome":  # classes -1, 0, 1 -> 0, 1, 2
            y = y + 1
        return cls(X, y.astype(int), frame["weight"].to_numpy(dtype=float),
                   pd.Series(pd.DatetimeIndex(frame["t1"]).to_numpy(), index=index),
                   frame["ret"].to_numpy(dtype=float), frame["symbol"].to_numpy())


@dataclass
class TrainingResult:
    booster: lgb.Booster
    best_params: dict
    oof: pd.DataFrame
    fold_metrics: pd.DataFrame
    metrics: dict
    study_summary: dict
    importance: pd.Series
    trial_fold_losses: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    timings: dict = field(default_factory=dict)


# -- metrics -------------------------------------------------------------------------------------

def log_loss(y: np.ndarray, p: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Weighted mean cross-entropy; ``p`` is P(y=1) (binary) or an (n, k) class matrix."""
    p = np.clip(p, EPS, 1 - EPS)
    ll = -(y * np.log(p) + (1 - y) * np.log(1 - p)) if p.ndim == 1 else -np.log(p[np.arange(len(y)), y])
    return float(np.average(ll, weights=weight))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney rank sum (ties get half credit)."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = y.sum(), (~y).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def prior_log_loss(y: np.ndarray, weight: np.ndarray, n_classes: int = 2) -> float:
    """Log-loss of always predicting the weighted class shares: the baseline a model must beat."""
    shares = np.array([weight[y == k].sum() for k in range(n_classes)]) / weight.sum()
    p = shares[1] * np.ones(len(y)) if n_classes == 2 else np.tile(shares, (len(y), 1))
    return log_loss(y, p, weight)


def classification_report(y, p, weight, ret, threshold: float) -> dict:
    """AUC, weighted log-loss against the class-prior baseline, and the trades the model takes:
    precision (label 1 among them), hit rate (positive return) and mean side-signed return."""
    binary = np.ndim(p) == 1
    score = p if binary else p[:, 2]  # multiclass: P(take-profit)
    take = score > threshold
    y_pos = y == 1 if binary else y == 2
    return {
        "auc": roc_auc(y_pos, score),
        "log_loss": log_loss(y, p, weight),
        "prior_log_loss": prior_log_loss(y, weight, 2 if binary else 3),
        "events": int(len(y)),
        "trades_taken": int(take.sum()),
        "precision": float(y_pos[take].mean()) if take.any() else float("nan"),
        "hit_rate": float((ret[take] > 0).mean()) if take.any() else float("nan"),
        "mean_ret_taken": float(ret[take].mean()) if take.any() else float("nan"),
        "base_rate": float(y_pos.mean()),
    }


def probability_of_backtest_overfitting(performance: np.ndarray) -> float:
    """PBO by combinatorially symmetric cross-validation (Bailey, Borwein, Lopez de Prado & Zhu 2017).

    ``performance[s, n]``: the score (higher is better) of configuration ``n`` on block ``s``.
    For every choice of half the blocks as in-sample, pick the configuration best in-sample and
    take its relative rank :math:`\\omega` among all configurations out of sample; PBO is the share
    of choices with logit :math:`\\ln(\\omega / (1 - \\omega)) \\le 0`, i.e. where the in-sample
    winner is at or below the out-of-sample median. NaN with fewer than 2 configurations or blocks.
    """
    n_blocks, n_configs = performance.shape
    if n_configs < 2 or n_blocks < 2:
        return float("nan")
    logits = []
    for in_sample in combinations(range(n_blocks), n_blocks // 2):
        out = [s for s in range(n_blocks) if s not in in_sample]
        best = int(np.argmax(performance[list(in_sample)].mean(axis=0)))
        oos = performance[out].mean(axis=0)
        omega = rankdata(oos)[best] / (n_configs + 1)
        logits.append(np.log(omega / (1 - omega)))
    return float(np.mean(np.asarray(logits) <= 0))


def trial_sharpe(data: TrainingSet, scores: np.ndarray, threshold: float) -> float:
    """Per-day Sharpe ratio (not annualised) of a trial's cost-free strategy: the daily sum of the
    side-signed returns of the events whose out-of-fold score exceeds ``threshold``, every day of
    the data counted. The trials' spread of these is what the Deflated Sharpe Ratio deflates by."""
    days = data.X.index.normalize()
    taken = np.nan_to_num(scores, nan=0.0) > threshold
    daily = pd.Series(np.where(taken, data.ret, 0.0), index=days).groupby(level=0).sum()
    sd = daily.std(ddof=1)
    return float(daily.mean() / sd) if len(daily) > 1 and sd > 0 else float("nan")


# -- cross-validation and the study --------------------------------------------------------------

def make_folds(data: TrainingSet, settings: TrainingSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) positions of the configured CV kind."""
    if settings.cv == "purged_kfold":
        return list(PurgedKFold(settings.n_splits, data.t1, settings.embargo).split(data.X))
    if settings.cv == "cpcv":
        return list(CombinatorialPurgedKFold(settings.n_splits, settings.n_test_splits, data.t1,
                                             settings.embargo).split(data.X))
    if settings.cv == "walk_forward":
        span = data.X.index[-1] - data.X.index[0]
        test = span / (settings.n_splits + 1)
        embargo = span * settings.embargo
        return list(walk_forward_splits(data.X.index, None, test, None, data.t1, embargo))
    raise ValueError(f"cv={settings.cv!r}: one of purged_kfold, cpcv, walk_forward")


class _Fold:
    """One fold's LightGBM datasets, built once (``reuse``) or on every request.

    Early stopping must not see the test fold (choosing the round count on it inflates the
    out-of-fold scores: on shuffled labels the OOF AUC of 20 trials came out 3-4 sd above 0.5).
    So the latest ``valid_fraction`` of the fold's training events is the early-stopping set, the
    rest, purged and embargoed around it like a test block, is fitted, and the test fold is only
    predicted.
    """

    def __init__(self, data: TrainingSet, train: np.ndarray, test: np.ndarray, reuse: bool,
                 valid_fraction: float = 0.2, embargo_ns: int = 0):
        self.data, self.test, self.reuse = data, test, reuse
        self.train = train  # every training event of the fold (what the leakage audit sees)
        train = np.sort(train)
        n_valid = max(1, int(round(len(train) * valid_fraction)))
        self.stop_set = train[-n_valid:]
        t0 = data.X.index.as_unit("ns").asi8
        t1 = pd.DatetimeIndex(data.t1.to_numpy()).as_unit("ns").asi8
        self.fit_set = np.intersect1d(purged_train(t0, t1, self.stop_set, embargo_ns), train[:-n_valid])
        self._sets = self._build() if reuse else None

    def _build(self) -> tuple[lgb.Dataset, lgb.Dataset]:
        d = self.data
        params = {"feature_pre_filter": False, "verbose": -1}  # min_data_in_leaf varies by trial
        train = lgb.Dataset(d.X.iloc[self.fit_set], d.y[self.fit_set], weight=d.weight[self.fit_set],
                            params=params, free_raw_data=False)
        valid = lgb.Dataset(d.X.iloc[self.stop_set], d.y[self.stop_set], weight=d.weight[self.stop_set],
                            params=params, reference=train, free_raw_data=False)
        train.construct()
        valid.construct()
        return train, valid

    def sets(self) -> tuple[lgb.Dataset, lgb.Dataset]:
        return self._sets if self.reuse else self._build()


def _params(trial: optuna.Trial, settings: TrainingSettings, n_classes: int) -> tuple[dict, int]:
    params = {
        "objective": "binary" if n_classes == 2 else "multiclass",
        "verbosity": -1, "seed": settings.seed, "num_threads": settings.num_threads, "deterministic": True,
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 400, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "bagging_freq": 1,
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
    }
    if n_classes > 2:
        params["num_class"] = n_classes
    return params, trial.suggest_int("n_estimators", 20, settings.max_estimators, log=True)


def _fit_fold(fold: _Fold, sets: tuple[lgb.Dataset, lgb.Dataset], params: dict, n_estimators: int,
              rounds: int) -> tuple[lgb.Booster, np.ndarray, float]:
    train_set, valid_set = sets
    start = time.perf_counter()
    booster = lgb.train(params, train_set, num_boost_round=n_estimators, valid_sets=[valid_set],
                        callbacks=[lgb.early_stopping(rounds, verbose=False)])
    fit_s = time.perf_counter() - start
    X_test = fold.data.X.iloc[fold.test]
    return booster, booster.predict(X_test, num_iteration=booster.best_iteration), fit_s


def study_name(data: TrainingSet, settings: TrainingSettings, label: str) -> str:
    """A name fixed by what the study optimises over, so a re-run resumes the same study."""
    key = {"label": label, "events": len(data.y), "first": str(data.X.index[0]), "last": str(data.X.index[-1]),
           "features": list(data.X.columns), **{k: v for k, v in asdict(settings).items()
                                                if k not in ("trials", "reuse_datasets", "num_threads")}}
    return "atra-" + hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def train_candidate(data: TrainingSet, settings: TrainingSettings = TrainingSettings(),
                    storage: str | None = None, label: str = "") -> TrainingResult:
    """Tune, cross-validate and fit the meta-label model; see the module docstring.

    ``storage``: an Optuna storage URL (e.g. ``sqlite:///data/optuna.sqlite3``) where the study
    persists; a re-run with a larger ``settings.trials`` resumes it. ``None``: in memory.
    """
    n_classes = 2 if settings.objective == "binary" else 3
    folds_pos = make_folds(data, settings)
    if not folds_pos:
        raise ValueError("no cross-validation fold: too few events for the configured splits")
    timings = {"trial_datasets_s": 0.0, "lightgbm_train_s": 0.0}
    start = time.perf_counter()
    embargo_ns = int((data.X.index[-1] - data.X.index[0]).value * settings.embargo)
    folds = [_Fold(data, tr, te, settings.reuse_datasets, settings.early_stopping_fraction, embargo_ns)
             for tr, te in folds_pos]
    timings["initial_datasets_s"] = time.perf_counter() - start  # once, before the study (with reuse)

    def objective(trial: optuna.Trial) -> float:
        params, n_estimators = _params(trial, settings, n_classes)
        losses, weights, best_iters = [], [], []
        scores = np.full(len(data.y), np.nan)
        for k, fold in enumerate(folds):
            t = time.perf_counter()
            sets = fold.sets()
            timings["trial_datasets_s"] += time.perf_counter() - t
            booster, p, fit_s = _fit_fold(fold, sets, params, n_estimators, settings.early_stopping_rounds)
            timings["lightgbm_train_s"] += fit_s
            losses.append(log_loss(data.y[fold.test], p, data.weight[fold.test]))
            scores[fold.test] = p if n_classes == 2 else p[:, 2]
            weights.append(data.weight[fold.test].sum())
            best_iters.append(booster.best_iteration or n_estimators)
            trial.report(float(np.average(losses, weights=weights)), k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("fold_losses", losses)
        trial.set_user_attr("best_iterations", best_iters)
        trial.set_user_attr("sharpe", trial_sharpe(data, scores, settings.threshold))
        return float(np.average(losses, weights=weights))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name(data, settings, label) if storage else None,
                                load_if_exists=storage is not None, direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=settings.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
    remaining = max(0, settings.trials - len(study.trials))
    t = time.perf_counter()
    if remaining:
        study.optimize(objective, n_trials=remaining)
    timings["study_s"] = time.perf_counter() - t
    timings["trials_run"] = remaining
    complete = [tr for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError("no Optuna trial completed")

    best = study.best_trial
    params, n_estimators = _params(optuna.trial.FixedTrial(best.params), settings, n_classes)
    oof_rows, fold_rows, best_iters = [], [], []
    for k, fold in enumerate(folds):
        booster, p, _ = _fit_fold(fold, fold.sets(), params, n_estimators, settings.early_stopping_rounds)
        best_iters.append(booster.best_iteration or n_estimators)
        te = fold.test
        score = p if n_classes == 2 else p[:, 2]
        oof_rows.append(pd.DataFrame({"ts": data.X.index[te], "symbol": data.symbol[te], "probability": score,
                                      "fold": k, "label": data.y[te], "weight": data.weight[te], "ret": data.ret[te]}))
        fold_rows.append({"fold": k, "train_events": len(fold.train), "test_events": len(te),
                          "test_start": str(data.X.index[te[0]]), "test_end": str(data.X.index[te[-1]]),
                          "best_iteration": best_iters[-1],
                          **classification_report(data.y[te], p, data.weight[te], data.ret[te], settings.threshold)})
    oof = pd.concat(oof_rows, ignore_index=True)
    oof_p = oof["probability"].to_numpy()
    y_oof = oof["label"].to_numpy() if n_classes == 2 else (oof["label"].to_numpy() == 2).astype(int)
    metrics = classification_report(y_oof, oof_p, oof["weight"].to_numpy(), oof["ret"].to_numpy(), settings.threshold)
    # every event is predicted out of fold; walk-forward: every event from the first test window on
    first_tested = min(te.min() for _, te in folds_pos) if settings.cv == "walk_forward" else 0
    metrics["oof_events_expected"] = int(len(data.y) - first_tested)
    if n_classes > 2:  # the multiclass log-loss is the study's objective value
        metrics["log_loss"], metrics["prior_log_loss"] = best.value, prior_log_loss(data.y, data.weight, 3)

    full = lgb.Dataset(data.X, data.y, weight=data.weight, params={"verbose": -1})
    booster = lgb.train(params, full, num_boost_round=int(np.median(best_iters)))
    fold_losses = np.array([tr.user_attrs["fold_losses"] for tr in complete])  # trials x folds
    metrics["pbo"] = probability_of_backtest_overfitting(-fold_losses.T)
    metrics["trial_sharpes"] = [float(tr.user_attrs.get("sharpe", float("nan"))) for tr in complete]
    metrics["trials_complete"] = len(complete)
    summary = {
        "study_name": study.study_name, "trials_total": len(study.trials), "trials_this_run": remaining,
        "complete": len(complete), "pruned": sum(tr.state == optuna.trial.TrialState.PRUNED for tr in study.trials),
        "best_trial": best.number, "best_value": best.value, "folds": len(folds), "cv": settings.cv,
    }
    return TrainingResult(booster, {**best.params}, oof, pd.DataFrame(fold_rows), metrics, summary,
                          shap_importance(booster, data.X), fold_losses, folds_pos, timings)


def shap_importance(booster: lgb.Booster, X: pd.DataFrame, max_rows: int = 20_000) -> pd.Series:
    """Mean |SHAP value| per feature (LightGBM ``pred_contrib``), on up to ``max_rows`` events."""
    sample = X.iloc[np.linspace(0, len(X) - 1, min(len(X), max_rows)).astype(int)]
    contrib = booster.predict(sample, pred_contrib=True)
    n = X.shape[1]
    if contrib.shape[1] != n + 1:  # multiclass: one block of n + 1 per class
        contrib = np.abs(contrib.reshape(len(sample), -1, n + 1)).sum(axis=1)
    return pd.Series(np.abs(contrib[:, :n]).mean(axis=0), index=X.columns, name="mean_abs_shap").sort_values(ascending=False)
