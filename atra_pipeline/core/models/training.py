"""Meta-label model: Optuna-tuned LightGBM under purged cross-validation on the earliest part of
the data, walk-forward predictions of the rest, and the metrics a quant reads.

Each trial trains one LightGBM per fold, with early stopping on the latest part of the fold's
training events (never on the test fold), and is scored by the weighted out-of-fold log-loss;
the median pruner stops a trial whose running score after a fold is worse than the median of
earlier trials at that fold. Every fold's ``lgb.Dataset`` (binned features, labels, weights) is
built once and reused by all trials. The study only chooses hyperparameters, on the tuning
window (:mod:`atra_pipeline.core.models.walk_forward`); the predictions that are judged come from the
walk-forward after it, where no choice was made.

Choosing among trials still flatters the best one; the risk stage backtests every trial's
out-of-fold scores by the strategy and deflates the candidate's Sharpe ratio by them, counting
every trial the study ran (:func:`atra_pipeline.core.backtest.metrics.deflated_sharpe_ratio`,
:func:`atra_pipeline.core.backtest.metrics.probability_of_backtest_overfitting`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from scipy.stats import rankdata

from atra_pipeline.core.features.registry import feature_columns
from atra_pipeline.core.labels.methods import average_uniqueness
from atra_pipeline.core.models.cv import CombinatorialPurgedKFold, PurgedKFold, purged_train, walk_forward_splits
from atra_pipeline.core.models.threads import lightgbm_threads
from atra_pipeline.core.models.walk_forward import plan_walk_forward, walk_forward_predict
from atra_pipeline.core.storage.sql import bind, load_sql

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
    """How the study validates a trial: purged k-fold, combinatorial purged CV (cpcv) or walk-forward."""
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
    """Seed of the Optuna sampler and of LightGBM."""
    early_stopping_rounds: int = 30
    """Boosting stops after this many rounds without a better validation loss."""
    early_stopping_fraction: float = 0.2
    """The latest share of each fold's training events held out for early stopping (never the test fold)."""
    max_estimators: int = 400
    """Largest number of boosting rounds a trial may draw (the search's upper bound)."""
    reuse_datasets: bool = True
    """Build each fold's lgb.Dataset once for all trials (off: rebuilt every trial, for the benchmark)."""
    num_threads: int = 0
    """LightGBM threads; 0: :func:`atra_pipeline.core.models.threads.lightgbm_threads` (the cores to spare,
    1 on 2 cores)."""
    retrain_every_s: int = 86_400
    """Walk-forward: seconds between retrainings (default one day; shortened to fit ``min_periods``)."""
    window: Literal["expanding", "rolling"] = "expanding"
    """Walk-forward training window: every earlier event, or the last ``rolling_window_s``."""
    rolling_window_s: int = 7 * 86_400
    """Walk-forward with ``window: rolling``: seconds of events before each period it trains on."""
    tuning_fraction: float = 0.25
    """The earliest share of the events' span, where the study chooses the hyperparameters."""
    min_periods: int = 3
    """Walk-forward periods at least (a short study retrains more often)."""
    placebos: int = 5
    """Placebo studies (labels permuted by block, trained the same way: :mod:`atra_pipeline.core.gate.placebo`)
    the gate compares the candidate with."""
    placebo_block_s: int = 3600
    """Placebo labels are permuted within blocks of this many seconds of each symbol."""


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

    def subset(self, positions: np.ndarray) -> TrainingSet:
        """The events at ``positions`` (in time order)."""
        return TrainingSet(self.X.iloc[positions], self.y[positions], self.weight[positions], self.t1.iloc[positions],
                           self.ret[positions], self.symbol[positions])


@dataclass
class TrainingResult:
    booster: lgb.Booster
    best_params: dict
    oof: pd.DataFrame
    fold_metrics: pd.DataFrame
    metrics: dict
    study_summary: dict
    importance: pd.Series
    trial_scores: pd.DataFrame
    """``trial, ts, symbol, probability``: each complete trial's out-of-fold scores on the tuning events."""
    cpcv_paths: pd.DataFrame
    """``path, ts, symbol, probability``: with CPCV, the best trial's complete backtest paths (AFML 12.4)."""
    folds: list[tuple[np.ndarray, np.ndarray]]
    """The study's CV folds and the walk-forward periods, as positions in the whole data (audited for leaks)."""
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


def auc_standard_error(auc: float, n_pos: float, n_neg: float) -> float:
    """Standard error of an AUC estimated from ``n_pos`` positives and ``n_neg`` negatives
    (Hanley & McNeil 1982, eq. 2):

    .. math:: SE^2 = \\frac{A(1-A) + (n_1 - 1)(Q_1 - A^2) + (n_2 - 1)(Q_2 - A^2)}{n_1 n_2},
              \\quad Q_1 = \\frac{A}{2 - A},\\; Q_2 = \\frac{2A^2}{1 + A}

    At :math:`A = 1/2` it is the Mann-Whitney null variance :math:`(n_1 + n_2 + 1) / (12 n_1 n_2)`.
    NaN without both classes."""
    if n_pos <= 0 or n_neg <= 0 or not np.isfinite(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def prior_log_loss(y: np.ndarray, weight: np.ndarray, n_classes: int = 2) -> float:
    """Log-loss of always predicting the weighted class shares: the baseline a model must beat."""
    shares = np.array([weight[y == k].sum() for k in range(n_classes)]) / weight.sum()
    p = shares[1] * np.ones(len(y)) if n_classes == 2 else np.tile(shares, (len(y), 1))
    return log_loss(y, p, weight)


def effective_events(t1: pd.Series, symbol: np.ndarray) -> float:
    """How many independent labels the events are worth: the sum of their average uniqueness
    (AFML 4.4), per symbol on the grid of the labels' own start and end times. Overlapping
    labels share their outcome, so an AUC's standard error counts these, not the rows."""
    total = 0.0
    for name in np.unique(symbol):
        spans = t1[symbol == name]
        grid = pd.DatetimeIndex(np.union1d(spans.index.to_numpy(), spans.to_numpy()))
        total += float(np.nansum(average_uniqueness(spans, grid).to_numpy()))
    return total


def classification_report(y, p, weight, ret, threshold: float, effective_share: float = 1.0) -> dict:
    """AUC with its standard error and z against 0.5 (:func:`auc_standard_error` on the
    ``effective_share`` of the events that are independent, see :func:`effective_events`),
    weighted log-loss against the class-prior baseline, and the trades the model takes:
    precision (label 1 among them), hit rate (positive return) and mean side-signed return."""
    binary = np.ndim(p) == 1
    score = p if binary else p[:, 2]  # multiclass: P(take-profit)
    take = score > threshold
    y_pos = y == 1 if binary else y == 2
    auc = roc_auc(y_pos, score)
    se = auc_standard_error(auc, y_pos.sum() * effective_share, (~y_pos).sum() * effective_share)
    return {
        "auc": auc,
        "auc_se": se,
        "auc_effective_events": float(len(y) * effective_share),
        "auc_z": float((auc - 0.5) / se) if se > 0 else float("nan"),
        "log_loss": log_loss(y, p, weight),
        "prior_log_loss": prior_log_loss(y, weight, 2 if binary else 3),
        "events": int(len(y)),
        "trades_taken": int(take.sum()),
        "precision": float(y_pos[take].mean()) if take.any() else float("nan"),
        "hit_rate": float((ret[take] > 0).mean()) if take.any() else float("nan"),
        "mean_ret_taken": float(ret[take].mean()) if take.any() else float("nan"),
        "base_rate": float(y_pos.mean()),
    }


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
        if not len(self.fit_set):
            raise ValueError(f"a fold of {len(train)} training events keeps none to fit once its early-stopping "
                             f"set is purged: too few tuning events ({len(data.y)}) for the splits")
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
        "force_col_wise": True,  # with deterministic, the same model whatever the thread count
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
    # how the study runs, or what happens after it: not what it optimises
    ignored = ("trials", "reuse_datasets", "num_threads", "retrain_every_s", "window", "rolling_window_s",
               "min_periods", "placebos", "placebo_block_s")
    key = {"label": label, "events": len(data.y), "first": str(data.X.index[0]), "last": str(data.X.index[-1]),
           "features": list(data.X.columns), **{k: v for k, v in asdict(settings).items() if k not in ignored}}
    return "atra-" + hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _cv_predict(folds: list[_Fold], n: int, params: dict, n_estimators: int, rounds: int, n_classes: int
                ) -> tuple[np.ndarray, list[int], list[np.ndarray]]:
    """Every fold fitted with ``params`` and its test events predicted: the P(label 1) (binary) or
    P(take-profit) score of each event (NaN where untested), each fold's best iteration and its
    raw predictions."""
    scores, best_iters, raw = np.full(n, np.nan), [], []
    for fold in folds:
        booster, p, _ = _fit_fold(fold, fold.sets(), params, n_estimators, rounds)
        scores[fold.test] = p if n_classes == 2 else p[:, 2]
        best_iters.append(booster.best_iteration or n_estimators)
        raw.append(p)
    return scores, best_iters, raw


def train_candidate(data: TrainingSet, settings: TrainingSettings = TrainingSettings(),
                    storage: str | None = None, label: str = "", lookback_s: float = 0.0) -> TrainingResult:
    """Tune on the earliest part of the data, predict the rest walk-forward, fit the final model.

    1. :func:`~atra_pipeline.core.models.walk_forward.plan_walk_forward` cuts the span: the study tunes
       on the earliest ``settings.tuning_fraction``; the rest is walked forward in periods of
       ``settings.retrain_every_s``, embargoed by ``lookback_s`` (the longest feature look-back).
    2. The Optuna study chooses the hyperparameters on the tuning events under purged CV (see
       the module docstring); each complete trial's out-of-fold scores are kept
       (``trial_scores``) so the trials can be backtested like the candidate.
    3. Every walk-forward period's events are predicted by a model fitted with those fixed
       hyperparameters on the earlier events only (``oof``: the predictions the backtest, the
       risk report and the gate read; ``metrics`` are theirs).
    4. The final model is fitted on every event with the median of the study's best iterations.

    ``storage``: an Optuna storage URL (e.g. ``sqlite:///data/optuna.sqlite3``) where the study
    persists; a re-run with a larger ``settings.trials`` resumes it. ``None``: in memory.
    """
    settings = replace(settings, num_threads=lightgbm_threads(settings.num_threads))
    n_classes = 2 if settings.objective == "binary" else 3
    plan = plan_walk_forward(data.X.index, data.t1, pd.Timedelta(seconds=settings.retrain_every_s),
                             settings.tuning_fraction, pd.Timedelta(seconds=lookback_s), settings.min_periods,
                             pd.Timedelta(seconds=settings.rolling_window_s) if settings.window == "rolling" else None)
    tune = data.subset(plan.tuning)
    folds_pos = make_folds(tune, settings)
    if not folds_pos:
        raise ValueError(f"no cross-validation fold in the {len(tune.y)} tuning events before {plan.first_test}")
    timings = {"trial_datasets_s": 0.0, "lightgbm_train_s": 0.0}
    start = time.perf_counter()
    embargo_ns = int((tune.X.index[-1] - tune.X.index[0]).value * settings.embargo)
    folds = [_Fold(tune, tr, te, settings.reuse_datasets, settings.early_stopping_fraction, embargo_ns)
             for tr, te in folds_pos]
    timings["initial_datasets_s"] = time.perf_counter() - start  # once, before the study (with reuse)
    trial_scores: dict[int, np.ndarray] = {}

    def objective(trial: optuna.Trial) -> float:
        params, n_estimators = _params(trial, settings, n_classes)
        losses, weights = [], []
        scores = np.full(len(tune.y), np.nan)
        for k, fold in enumerate(folds):
            t = time.perf_counter()
            sets = fold.sets()
            timings["trial_datasets_s"] += time.perf_counter() - t
            _, p, fit_s = _fit_fold(fold, sets, params, n_estimators, settings.early_stopping_rounds)
            timings["lightgbm_train_s"] += fit_s
            losses.append(log_loss(tune.y[fold.test], p, tune.weight[fold.test]))
            scores[fold.test] = p if n_classes == 2 else p[:, 2]
            weights.append(tune.weight[fold.test].sum())
            trial.report(float(np.average(losses, weights=weights)), k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial_scores[trial.number] = scores
        trial.set_user_attr("fold_losses", losses)
        return float(np.average(losses, weights=weights))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name(tune, settings, label) if storage else None,
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
    for tr in complete:  # trials of an earlier run of a resumed study: predicted again (deterministic)
        if tr.number not in trial_scores:
            params, n_estimators = _params(optuna.trial.FixedTrial(tr.params), settings, n_classes)
            trial_scores[tr.number] = _cv_predict(folds, len(tune.y), params, n_estimators,
                                                  settings.early_stopping_rounds, n_classes)[0]

    best = study.best_trial
    params, n_estimators = _params(optuna.trial.FixedTrial(best.params), settings, n_classes)
    cv_scores, best_iters, cv_raw = _cv_predict(folds, len(tune.y), params, n_estimators,
                                                settings.early_stopping_rounds, n_classes)
    rounds = int(np.median(best_iters))
    t = time.perf_counter()
    wf, period_rows = walk_forward_predict(data.X, data.y, data.weight, plan, params, rounds)
    timings["walk_forward_s"] = time.perf_counter() - t
    predicted = np.concatenate([test for _, test in plan.periods])
    score = wf if n_classes == 2 else wf[:, 2]
    period = np.concatenate([np.full(len(test), k) for k, (_, test) in enumerate(plan.periods)])
    oof = pd.DataFrame({"ts": data.X.index[predicted], "symbol": data.symbol[predicted],
                        "probability": score[predicted], "fold": period, "label": data.y[predicted],
                        "weight": data.weight[predicted], "ret": data.ret[predicted]})
    y_wf, w_wf, r_wf = data.y[predicted], data.weight[predicted], data.ret[predicted]
    share = effective_events(data.t1.iloc[predicted], data.symbol[predicted]) / len(predicted)
    metrics = classification_report(y_wf, wf[predicted], w_wf, r_wf, settings.threshold, share)
    metrics["oof_events_expected"] = int((data.X.index >= plan.first_test).sum())
    fold_rows = [{**row, **classification_report(data.y[test], wf[test], data.weight[test], data.ret[test],
                                                 settings.threshold)}
                 for row, (_, test) in zip(period_rows, plan.periods)]
    tested = np.concatenate([fold.test for fold in folds])
    cv_p = np.concatenate(cv_raw)
    cv = classification_report(tune.y[tested], cv_p, tune.weight[tested], tune.ret[tested], settings.threshold)
    metrics.update({f"cv_{k}": cv[k] for k in ("auc", "auc_se", "log_loss", "prior_log_loss", "events")})
    metrics.update(walk_forward_first_test=str(plan.first_test), walk_forward_period_s=plan.period.total_seconds(),
                   walk_forward_embargo_s=plan.embargo.total_seconds(), walk_forward_periods=len(plan.periods),
                   tuning_events=len(tune.y), rounds=rounds, trials_total=len(study.trials),
                   trials_complete=len(complete))

    full = lgb.Dataset(data.X, data.y, weight=data.weight, params={"verbose": -1})
    booster = lgb.train(params, full, num_boost_round=rounds)
    trials = pd.concat([pd.DataFrame({"trial": number, "ts": tune.X.index, "symbol": tune.symbol,
                                      "probability": scores})
                        for number, scores in sorted(trial_scores.items())
                        if number in {tr.number for tr in complete}], ignore_index=True)
    summary = {
        "study_name": study.study_name, "trials_total": len(study.trials), "trials_this_run": remaining,
        "complete": len(complete), "pruned": sum(tr.state == optuna.trial.TrialState.PRUNED for tr in study.trials),
        "failed": sum(tr.state == optuna.trial.TrialState.FAIL for tr in study.trials),
        "best_trial": best.number, "best_value": best.value, "folds": len(folds), "cv": settings.cv,
        "tuning_events": len(tune.y), "tuning_until": str(plan.first_test),
    }
    audited = [(plan.tuning[tr], plan.tuning[te]) for tr, te in folds_pos] + list(plan.periods)
    paths = cpcv_paths(tune, settings, folds_pos, cv_raw, n_classes) if settings.cv == "cpcv" else \
        pd.DataFrame(columns=["path", "ts", "symbol", "probability"])
    return TrainingResult(booster, {**best.params}, oof, pd.DataFrame(fold_rows), metrics, summary,
                          shap_importance(booster, data.X), trials.dropna(subset=["probability"]), paths, audited,
                          timings)


def cpcv_paths(data: TrainingSet, settings: TrainingSettings, folds: list[tuple[np.ndarray, np.ndarray]],
               raw: list[np.ndarray], n_classes: int) -> pd.DataFrame:
    """The complete backtest paths of a CPCV study (AFML 12.4): path ``p`` predicts each group of
    events by the ``p``-th split that tests it (:meth:`CombinatorialPurgedKFold.paths`), so each
    path covers every event once, out of sample."""
    splitter = CombinatorialPurgedKFold(settings.n_splits, settings.n_test_splits, data.t1, settings.embargo)
    groups = splitter.groups(len(data.y))
    rows = []
    for p, splits in enumerate(splitter.paths()):
        scores = np.empty(len(data.y))
        for group, split in zip(groups, splits):
            test, predicted = folds[split][1], raw[split]
            at = np.searchsorted(test, group)  # a split's test positions are ascending
            scores[group] = predicted[at] if n_classes == 2 else predicted[at, 2]
        rows.append(pd.DataFrame({"path": p, "ts": data.X.index, "symbol": data.symbol, "probability": scores}))
    return pd.concat(rows, ignore_index=True)


def shap_importance(booster: lgb.Booster, X: pd.DataFrame, max_rows: int = 20_000) -> pd.Series:
    """Mean |SHAP value| per feature (LightGBM ``pred_contrib``), on up to ``max_rows`` events."""
    sample = X.iloc[np.linspace(0, len(X) - 1, min(len(X), max_rows)).astype(int)]
    contrib = booster.predict(sample, pred_contrib=True)
    n = X.shape[1]
    if contrib.shape[1] != n + 1:  # multiclass: one block of n + 1 per class
        contrib = np.abs(contrib.reshape(len(sample), -1, n + 1)).sum(axis=1)
    return pd.Series(np.abs(contrib[:, :n]).mean(axis=0), index=X.columns,
                     name="mean_abs_shap").sort_values(ascending=False)
