"""Backtest one model from the database: its predictions at its label events (out-of-fold, or the
registered model's own on chosen days), their books (SQL), the engine
(:mod:`atra_pipeline.core.backtest.engine`) with the model's own strategy and label settings, excursions,
and the stress scenarios; and write or read the results (tables ``backtest_decisions``,
``backtest_trades``, ``backtest_equity``, ``backtest_stress``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.backtest import metrics
from atra_pipeline.core.backtest.engine import BacktestSettings, equity_curve, run_backtest, trade_returns
from atra_pipeline.core.backtest.montecarlo import monte_carlo
from atra_pipeline.core.errors import DataError
from atra_pipeline.core.models.registry import ModelRecord
from atra_pipeline.core.models.training import TrainingSet, training_frame
from atra_pipeline.core.raw.schema import N_LEVELS
from atra_pipeline.core.storage.database import transaction
from atra_pipeline.core.storage.sql import bind, load_sql

STRESS = {
    "base": "the settings as given",
    "fees_x2": "taker fee doubled",
    "slippage_x3": "every book three times as far from the decision mid (the strategy sees it too)",
    "latency_plus_1s": "orders arrive one second later",
    "high_volatility": "only events whose barrier width is above its median",
    "low_volatility": "only events whose barrier width is at or below its median",
}
PredictionSource = Literal["oof", "model"]


@dataclass
class BacktestRun:
    decisions: pd.DataFrame
    ledger: pd.DataFrame
    equity: pd.Series
    report: dict
    stress: pd.DataFrame


def settings_for(record: ModelRecord, initial_equity: float = BacktestSettings.initial_equity) -> BacktestSettings:
    """The backtest of ``record`` by its own strategy and barriers (its registered spec)."""
    spec = record.require_spec()
    return BacktestSettings(initial_equity, tuple(spec.labels.pt_sl), spec.strategy)


def oof_predictions(conn: duckdb.DuckDBPyConnection, model_id: str) -> pd.DataFrame:
    """The model's out-of-fold probability of each event (the mean over the splits that tested it)."""
    return conn.execute("SELECT ts, symbol, avg(probability) AS probability FROM oof_predictions WHERE model_id = ? "
                        "GROUP BY ts, symbol ORDER BY ts, symbol", [model_id]).fetchdf()


def model_predictions(conn: duckdb.DuckDBPyConnection, record: ModelRecord, start: str, end: str,
                      symbols: list[str] | None = None) -> pd.DataFrame:
    """The registered model's own probability of every labelled event from ``start`` to ``end``
    (inclusive), on the stored feature rows: what it would have said live on those days."""
    symbols = list(symbols or record.require_spec().symbols)
    try:
        frame, _, _ = training_frame(conn, symbols, start, end)
    except ValueError as error:
        raise DataError(f"labels {start}..{end} {','.join(symbols)}", str(error)) from None
    data = TrainingSet.from_frame(frame, record.features)
    return pd.DataFrame({"ts": frame["ts"], "symbol": frame["symbol"],
                         "probability": record.booster().predict(data.X[record.features])})


def candidates(conn: duckdb.DuckDBPyConnection, predictions: pd.DataFrame, latency_ms: float) -> pd.DataFrame:
    sql = load_sql("backtest/candidates.sql")
    conn.register("bt_predictions", predictions[["ts", "symbol", "probability"]])
    try:
        return conn.execute(sql, bind(sql, {"latency_us": int(latency_ms * 1000)})).fetchdf()
    finally:
        conn.unregister("bt_predictions")


def decision_marks(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> pd.DataFrame:
    """Each symbol's mid at each decision time of ``frame`` (``sql/backtest/marks.sql``)."""
    sql = load_sql("backtest/marks.sql")
    conn.register("bt_decision_times", pd.DataFrame({"ts": frame["ts"].drop_duplicates()}))
    try:
        long = conn.execute(sql, bind(sql, {"symbols": sorted(frame["symbol"].unique())})).fetchdf()
    finally:
        conn.unregister("bt_decision_times")
    return long.pivot(index="ts", columns="symbol", values="mid")


def _excursions(conn: duckdb.DuckDBPyConnection, ledger: pd.DataFrame) -> pd.DataFrame:
    if ledger.empty:
        return ledger.assign(mae=np.nan, mfe=np.nan)
    bt_trades = ledger[["symbol", "side", "entry_px", "entry_ts", "exit_ts"]].assign(trade=np.arange(len(ledger)))
    conn.register("bt_trades", bt_trades)
    try:
        found = conn.execute(load_sql("backtest/excursions.sql")).fetchdf().set_index("trade")
    finally:
        conn.unregister("bt_trades")
    return ledger.assign(mae=found["mae"].reindex(range(len(ledger))).to_numpy(),
                         mfe=found["mfe"].reindex(range(len(ledger))).to_numpy())


def _scenario(frame: pd.DataFrame, marks: pd.DataFrame, settings: BacktestSettings, days: tuple) -> dict:
    _, ledger, report = run_backtest(frame, settings, marks) if len(frame) else (None, pd.DataFrame(), {"trades": 0})
    if ledger.empty:
        return {"trades": 0.0}
    freq = metrics.return_frequency((pd.Timestamp(days[1]) - pd.Timestamp(days[0])) / pd.Timedelta(days=1))
    returns = equity_curve(ledger, settings.initial_equity, *days, freq=freq).pct_change().dropna()
    return {"trades": float(report["trades"]), "total_return": metrics.total_return(returns),
            "sharpe_ratio": metrics.sharpe_ratio(returns, metrics.PERIODS_PER_YEAR[freq]),
            "max_drawdown": metrics.max_drawdown(returns),
            "net_pnl": float(ledger["net_pnl"].sum()), "costs": float(ledger[["slippage_cost", "fee_cost",
                                                                              "funding_cost"]].sum().sum())}


def _with_costs(settings: BacktestSettings, **changes) -> BacktestSettings:
    strategy = settings.strategy
    return replace(settings, strategy=replace(strategy, costs=replace(strategy.costs, **changes)))


def backtest_model(conn: duckdb.DuckDBPyConnection, record: ModelRecord, settings: BacktestSettings | None = None,
                   stress: bool = True, source: PredictionSource = "oof", start: str = "", end: str = "",
                   symbols: list[str] | None = None, between: tuple[pd.Timestamp, pd.Timestamp] | None = None
                   ) -> BacktestRun:
    """Backtest ``record`` (by its own spec unless ``settings`` are given) on its out-of-fold
    predictions (``source="oof"``) or on its own predictions of the labelled events from
    ``start`` to ``end`` (``"model"``), decisions at times in ``between`` (``[from, to)``, if
    given): decisions, ledger with excursions, daily equity, and the stress scenarios of
    :data:`STRESS` (each a full re-run)."""
    settings = settings or settings_for(record)
    predictions = oof_predictions(conn, record.model_id) if source == "oof" else \
        model_predictions(conn, record, start, end, symbols)
    if between is not None:
        predictions = predictions[(predictions["ts"] >= between[0]) & (predictions["ts"] < between[1])]
    latency = settings.strategy.costs.latency_ms
    frame = candidates(conn, predictions, latency)
    if frame.empty:
        raise DataError(f"model {record.model_id}", "no labelled event with a prediction to backtest")
    marks = decision_marks(conn, frame)
    days = (frame["ts"].min(),
            frame["exit_fill_ts"].max() if frame["exit_fill_ts"].notna().any() else frame["t1"].max())
    decisions, ledger, report = run_backtest(frame, settings, marks)
    ledger = _excursions(conn, ledger)
    equity = equity_curve(ledger, settings.initial_equity, *days)
    rows = []
    if stress:
        slow = _with_costs(settings, latency_ms=latency + 1000)
        median = frame["target"].median()
        scenarios = {
            "base": (frame, settings),
            "fees_x2": (frame, _with_costs(settings, taker_fee_bps=2 * settings.strategy.costs.taker_fee_bps)),
            "slippage_x3": (_widen(frame, 3.0), settings),
            "latency_plus_1s": (candidates(conn, predictions, latency + 1000), slow),
            "high_volatility": (frame[frame["target"] > median], settings),
            "low_volatility": (frame[frame["target"] <= median], settings),
        }
        for name, (data, s) in scenarios.items():
            rows.append({"scenario": name, "description": STRESS[name], **_scenario(data, marks, s, days)})
    return BacktestRun(decisions, ledger, equity, report, pd.DataFrame(rows))


def _widen(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Every book level moved ``factor`` times as far from the decision-time mid (decision, entry
    and exit books)."""
    out = frame.copy()
    for leg, mid in (("dec", "entry_mid"), ("entry", "entry_mid"), ("exit", "exit_mid")):
        for side in ("bid", "ask"):
            for i in range(N_LEVELS):
                col = f"{leg}_{side}_px_{i}"
                out[col] = out[mid] + factor * (out[col] - out[mid])
    return out


def write_run(conn: duckdb.DuckDBPyConnection, model_id: str, run: BacktestRun) -> None:
    """Replace ``model_id``'s rows of the backtest tables in one transaction."""
    trades = run.ledger.assign(model_id=model_id)
    decisions = run.decisions.assign(model_id=model_id)
    equity = pd.DataFrame({"model_id": model_id, "day": run.equity.index.date, "equity": run.equity.to_numpy()})
    stress = run.stress.drop(columns="description").melt(id_vars="scenario", var_name="metric") \
        .assign(model_id=model_id)
    with transaction(conn):
        for table, frame in (("backtest_decisions", decisions), ("backtest_trades", trades),
                             ("backtest_equity", equity), ("backtest_stress", stress)):
            conn.execute(f"DELETE FROM {table} WHERE model_id = ?", [model_id])
            conn.register("bt_rows", frame)
            conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM bt_rows")
            conn.unregister("bt_rows")


def read_run(conn: duckdb.DuckDBPyConnection, model_id: str) -> BacktestRun:
    decisions = conn.execute("SELECT * EXCLUDE (model_id) FROM backtest_decisions WHERE model_id = ? "
                             "ORDER BY decision_ts, symbol", [model_id]).fetchdf()
    ledger = conn.execute("SELECT * EXCLUDE (model_id) FROM backtest_trades WHERE model_id = ? ORDER BY exit_ts",
                          [model_id]).fetchdf()
    eq = conn.execute("SELECT day, equity FROM backtest_equity WHERE model_id = ? ORDER BY day", [model_id]).fetchdf()
    long = conn.execute("SELECT scenario, metric, value FROM backtest_stress WHERE model_id = ?", [model_id]).fetchdf()
    stress = long.pivot(index="scenario", columns="metric", values="value").reset_index()
    return BacktestRun(decisions, ledger, pd.Series(eq["equity"].to_numpy(), index=pd.DatetimeIndex(eq["day"])), {},
                       stress)


def ledger_audit(ledger: pd.DataFrame) -> dict:
    """What the ledger must satisfy: net P&L = gross at mids - slippage - fees - funding on every
    trade, fills at or after their decision and barrier times, no two positions of a symbol open
    at once. ``passed`` is all three."""
    identity = bool(np.allclose(ledger["net_pnl"], ledger["gross_pnl"] - ledger["slippage_cost"] - ledger["fee_cost"]
                                - ledger["funding_cost"], rtol=1e-9, atol=1e-6))
    ordered = bool((ledger["entry_ts"] >= ledger["decision_ts"]).all() and (ledger["exit_ts"] >= ledger["t1"]).all())
    overlap = 0
    for _, trades in ledger.sort_values("entry_ts").groupby("symbol"):
        overlap += int((trades["entry_ts"].to_numpy()[1:] < trades["exit_ts"].to_numpy()[:-1]).sum())
    return {"passed": identity and ordered and not overlap, "pnl_identity": identity, "fills_after_decisions": ordered,
            "overlapping_positions": overlap}


def decision_counts(decisions: pd.DataFrame) -> dict[str, float]:
    """How many decisions there were and why those not taken were skipped (``skipped_for_cost``:
    the expected net edge did not clear the minimum)."""
    reasons = decisions["reason_not_taken"].value_counts() if len(decisions) else pd.Series(dtype=float)
    return {"decisions": float(len(decisions)), "decisions_taken": float(reasons.get("", 0)),
            "skipped_for_cost": float(reasons.get("edge_below_min", 0)),
            "skipped_position_open": float(reasons.get("position_open", 0))}


def run_span(run: BacktestRun) -> tuple[pd.Timestamp, pd.Timestamp]:
    """From the first decision to the last exit (or decision) of a backtest."""
    times = [run.decisions["decision_ts"].min(), run.decisions["decision_ts"].max()]
    if len(run.ledger):
        times.append(run.ledger["exit_ts"].max())
    return pd.Timestamp(times[0]), pd.Timestamp(max(times))


def period_returns(run: BacktestRun) -> tuple[pd.Series, str]:
    """The realised returns the statistics use and their frequency: hourly below
    :data:`metrics.HOURLY_BELOW_DAYS` days of decisions, else daily."""
    start, end = run_span(run)
    freq = metrics.return_frequency((end - start) / pd.Timedelta(days=1))
    curve = equity_curve(run.ledger, float(run.equity.iloc[0]), start, end, freq)
    return curve.pct_change().dropna(), freq


def risk_figures(run: BacktestRun, trial_sharpes, n_trials: int | None = None, confidence: float = 0.95,
                 n_paths: int = 1000) -> tuple[dict, dict]:
    """The risk report's figures of a backtest and the Monte Carlo result: return and trade
    metrics on :func:`period_returns`; PSR; the DSR against the expected maximum Sharpe ratio of
    the study's ``n_trials`` trials (per-period ``trial_sharpes`` on the same frequency); the
    Minimum Track Record Length against that bar at ``confidence``, in days, beside the track
    record's length; decision counts; Monte Carlo of the trade sequence."""
    returns, freq = period_returns(run)
    per_year = metrics.PERIODS_PER_YEAR[freq]
    per_day = per_year / 365
    bar = metrics.expected_max_sharpe(trial_sharpes, n_trials)
    figures = {**metrics.summary(returns, per_year), **metrics.trade_summary(run.ledger, run.equity),
               "periods_per_year": float(per_year), "return_periods": float(len(returns)),
               "track_record_days": len(returns) / per_day,
               "deflated_sharpe_ratio": metrics.deflated_sharpe_ratio(returns, trial_sharpes, n_trials),
               "expected_max_sharpe": bar,
               "min_track_record_days": metrics.minimum_track_record_length(returns, bar, confidence) / per_day,
               "min_track_record_days_vs_zero": metrics.minimum_track_record_length(returns, 0.0, confidence) / per_day,
               "trials": float(n_trials if n_trials is not None else len(trial_sharpes)),
               "trials_with_sharpe": float(np.isfinite(np.asarray(trial_sharpes, dtype=float)).sum()),
               "days": float(len(run.equity) - 1), **decision_counts(run.decisions)}
    mc = monte_carlo(trade_returns(run.ledger).to_numpy(), n_paths=n_paths)
    figures.update({k: v for k, v in mc.items() if k != "fan"})
    return figures, mc


@dataclass
class StudyFigures:
    """The study's trials traded like the candidate: what the DSR, PBO and probability of loss
    are computed from."""

    returns: pd.DataFrame
    """Per-period returns (rows) of each complete trial (columns), at the candidate's frequency."""
    sharpes: list[float]
    """Each trial's per-period Sharpe ratio."""
    n_trials: int
    """Every trial the study ran, pruned and failed included."""
    pbo: float
    probability_of_loss: float
    blocks: int
    """CSCV blocks of :data:`metrics.CSCV_FREQ` returns (even; 0: too few returns)."""

    def figures(self) -> dict[str, float]:
        return {"pbo": self.pbo, "probability_of_loss": self.probability_of_loss, "cscv_blocks": float(self.blocks)}


def strategy_ledgers(conn: duckdb.DuckDBPyConnection, predictions: dict, settings: BacktestSettings,
                     span: tuple[pd.Timestamp, pd.Timestamp] | None = None
                     ) -> tuple[dict[str, pd.DataFrame], tuple[pd.Timestamp, pd.Timestamp] | None]:
    """Each named set of predictions (``ts, symbol, probability``) traded by ``settings`` on the
    same books (read once for all sets): each name's trade ledger, and the span its returns are
    read over: ``span`` (default: the events' own), run on to the last exit so no P&L is dropped."""
    events = pd.concat([p[["ts", "symbol"]] for p in predictions.values()]).drop_duplicates() if predictions else None
    if events is None or events.empty:
        return {}, None
    books = candidates(conn, events.assign(probability=np.nan), settings.strategy.costs.latency_ms)
    books = books.drop(columns="probability")
    if books.empty:
        return {}, None
    marks = decision_marks(conn, books)
    last = books["exit_fill_ts"].max() if books["exit_fill_ts"].notna().any() else books["ts"].max()
    span = (books["ts"].min(), max(books["ts"].max(), last)) if span is None else (span[0], max(span[1], last))
    ledgers = {name: run_backtest(books.merge(p[["ts", "symbol", "probability"]], on=["ts", "symbol"], how="inner"),
                                  settings, marks)[1] for name, p in predictions.items()}
    return ledgers, span


def ledger_returns(ledgers: dict[str, pd.DataFrame], initial_equity: float, span, freq: str) -> pd.DataFrame:
    """A column of per-period returns (``freq``) over ``span`` per ledger of :func:`strategy_ledgers`."""
    return pd.DataFrame({name: equity_curve(ledger, initial_equity, *span, freq).pct_change().dropna()
                         for name, ledger in ledgers.items()})


def strategy_returns(conn: duckdb.DuckDBPyConnection, predictions: dict, settings: BacktestSettings, freq: str,
                     span: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> tuple[pd.DataFrame, dict]:
    """:func:`strategy_ledgers` as per-period returns (``freq``), a column per name, and each
    name's trade count."""
    ledgers, span = strategy_ledgers(conn, predictions, settings, span)
    if not ledgers:
        return pd.DataFrame(), {}
    return ledger_returns(ledgers, settings.initial_equity, span, freq), {n: len(v) for n, v in ledgers.items()}


def _traded_like(record: ModelRecord, run: BacktestRun) -> tuple[BacktestSettings, str]:
    """The candidate's strategy from its starting equity, and its return frequency: what every
    comparison set is traded by."""
    return settings_for(record, float(run.equity.iloc[0])), period_returns(run)[1]


def _prediction_sets(conn: duckdb.DuckDBPyConnection, table: str, key: str, where: str, value) -> dict:
    """Rows ``ts, symbol, probability`` of ``table`` grouped by ``key`` (``where`` binds ``value``)."""
    rows = conn.execute(f"SELECT {key}, ts, symbol, probability FROM {table} WHERE {where} "
                        f"ORDER BY {key}, ts, symbol", [value]).fetchdf()
    return dict(iter(rows.groupby(key)))


def trial_ledgers(conn: duckdb.DuckDBPyConnection, record: ModelRecord, settings: BacktestSettings):
    """Each complete trial's out-of-fold scores on the tuning events (``trial_predictions``)
    traded by ``settings`` on the same books, costs and sizing as the candidate: the ledgers and
    span of :func:`strategy_ledgers`, over the tuning events' span."""
    trials = _prediction_sets(conn, "trial_predictions", "trial", "model_id = ?", record.model_id)
    return strategy_ledgers(conn, {int(k): g for k, g in trials.items()}, settings)


def cpcv_figures(conn: duckdb.DuckDBPyConnection, record: ModelRecord, run: BacktestRun) -> dict[str, float]:
    """With a CPCV study: each complete backtest path of the best trial traded by the strategy at
    the candidate's return frequency, and the 5/50/95% quantiles of their annualised Sharpe
    ratios (the distribution a single backtest path hides). Empty without CPCV paths."""
    paths = _prediction_sets(conn, "cpcv_path_predictions", "path", "model_id = ?", record.model_id)
    if not paths:
        return {}
    settings, freq = _traded_like(record, run)
    returns, _ = strategy_returns(conn, {int(k): g for k, g in paths.items()}, settings, freq)
    sharpes = np.array([metrics.sharpe_ratio(returns[c], metrics.PERIODS_PER_YEAR[freq]) for c in returns.columns])
    finite = sharpes[np.isfinite(sharpes)]
    q = np.quantile(finite, [0.05, 0.5, 0.95]) if len(finite) else np.full(3, np.nan)
    return {"cpcv_paths": float(len(sharpes)), "cpcv_paths_with_sharpe": float(len(finite)),
            "cpcv_sharpe_p05": float(q[0]), "cpcv_sharpe_p50": float(q[1]), "cpcv_sharpe_p95": float(q[2])}


def comparison_figures(conn: duckdb.DuckDBPyConnection, record: ModelRecord, run: BacktestRun) -> dict[str, float]:
    """What the candidate's walk-forward net Sharpe ratio is compared with, on the same events,
    books, strategy, span and return frequency: each placebo study's walk-forward predictions
    (:mod:`atra_pipeline.core.gate.placebo`) and the take-every-primary-event baseline (probability 1
    at every event: the primary model alone). A comparator backtested without a trade earns 0: its
    Sharpe ratio is 0; one that could not be backtested has none (NaN), and the gate's rule fails."""
    settings, freq = _traded_like(record, run)
    per_year = metrics.PERIODS_PER_YEAR[freq]
    keys = list(record.metrics.get("placebo_keys", []))
    cached = _prediction_sets(conn, "placebo_predictions", "cache_key", "list_contains(?, cache_key)", keys)
    sets = {f"placebo_{k}": g for k, g in enumerate(cached.values())}
    sets["baseline"] = oof_predictions(conn, record.model_id).assign(probability=1.0)
    returns, trades = strategy_returns(conn, sets, settings, freq, run_span(run))

    def sharpe(name: str) -> float:
        if name not in returns:  # not backtested (no book for its events): unknown, never 0
            return float("nan")
        value = metrics.sharpe_ratio(returns[name], per_year)
        return value if np.isfinite(value) or trades.get(name) else 0.0  # flat for want of trades: 0

    placebos = sorted(name for name in sets if name.startswith("placebo_"))
    out = {f"{name}_sharpe": sharpe(name) for name in placebos}
    out.update(placebos=float(len(placebos)), placebos_expected=float(len(keys)),
               placebo_sharpe_max=max((out[f"{n}_sharpe"] for n in placebos), default=float("nan")),
               baseline_sharpe=sharpe("baseline"), baseline_trades=float(trades.get("baseline", 0)))
    return out


def study_figures(conn: duckdb.DuckDBPyConnection, record: ModelRecord, run: BacktestRun) -> StudyFigures:
    """The trials traded like the candidate (:func:`trial_ledgers`): their returns at the
    frequency of :func:`period_returns` and Sharpe ratios (for the DSR), the study's trial count,
    and the PBO and probability of loss by CSCV over :func:`metrics.cscv_blocks` blocks of the
    :data:`metrics.CSCV_FREQ` returns of the trials that traded."""
    settings, freq = _traded_like(record, run)
    ledgers, span = trial_ledgers(conn, record, settings)
    returns = ledger_returns(ledgers, settings.initial_equity, span, freq) if ledgers else pd.DataFrame()
    sharpes = [metrics.sharpe_ratio(returns[c], periods_per_year=1) for c in returns.columns]
    traded = [name for name, sharpe in zip(returns.columns, sharpes) if np.isfinite(sharpe)]  # the others rank nothing
    fine = ledger_returns({n: ledgers[n] for n in traded}, settings.initial_equity, span, metrics.CSCV_FREQ) \
        if traded else pd.DataFrame()
    blocks = metrics.cscv_blocks(len(fine))
    performance = metrics.block_sharpe_ratios(fine.to_numpy(), blocks) if blocks >= 2 else None
    pbo = metrics.probability_of_backtest_overfitting(performance) \
        if performance is not None and len(traded) >= 2 else float("nan")
    loss = metrics.probability_of_loss(performance) if performance is not None else float("nan")
    n_trials = int(record.metrics.get("trials_total", len(sharpes)))
    return StudyFigures(returns, sharpes, max(n_trials, len(sharpes)), pbo, loss, blocks if traded else 0)


def risk_report_figures(conn: duckdb.DuckDBPyConnection, record: ModelRecord, run: BacktestRun
                        ) -> tuple[dict, dict]:
    """Everything the risk report shows of ``record``'s backtest ``run``: :func:`risk_figures`
    deflated by the study's trials (:func:`study_figures`), the comparators
    (:func:`comparison_figures`) and the CPCV paths (:func:`cpcv_figures`); and the Monte Carlo."""
    study = study_figures(conn, record, run)
    figures, mc = risk_figures(run, study.sharpes, study.n_trials)
    figures.update(**study.figures(), **comparison_figures(conn, record, run),
                   **cpcv_figures(conn, record, run))
    return figures, mc


def statistics_basis(figures: dict) -> str:
    """One sentence saying which returns the statistics are on, for the report's reader."""
    hourly = figures["periods_per_year"] == metrics.PERIODS_PER_YEAR["h"]
    basis = (f"hourly returns, annualised with sqrt(365 x 24): fewer than {metrics.HOURLY_BELOW_DAYS} days of data"
             if hourly else "daily returns, annualised with sqrt(365)")
    return (f"Statistics on {figures['return_periods']:.0f} {basis}. MinTRL against the DSR's bar: "
            f"{figures['min_track_record_days']:.1f} days; track record {figures['track_record_days']:.1f} days; "
            f"{figures['trials']:.0f} trials counted.")


def write_risk_metrics(conn: duckdb.DuckDBPyConnection, model_id: str, figures: dict) -> None:
    """Replace ``model_id``'s rows of ``risk_metrics`` in one transaction."""
    rows = pd.DataFrame({"model_id": model_id, "metric": list(figures), "value": [float(v) for v in figures.values()]})
    with transaction(conn):
        conn.execute("DELETE FROM risk_metrics WHERE model_id = ?", [model_id])
        conn.register("risk_rows", rows)
        conn.execute("INSERT INTO risk_metrics SELECT * FROM risk_rows")
        conn.unregister("risk_rows")
