"""The approval gate: the rules a candidate must pass to replace the live model, declared once.

Each rule reads the candidate's registry record (and, for the data rules, the partitions it was
trained on) and reports its figure beside its threshold. The Dagster check specs of the
``approved_model`` asset and the README's table come from :data:`GATE_RULES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb
import pandas as pd

from atra_pipeline.core.backtest.metrics import CSCV_FREQ, PERIODS_PER_YEAR
from atra_pipeline.core.models.registry import ModelRecord

MAX_PROBABILITY_OF_LOSS = 0.05
"""``selection_not_overfit``'s second way to pass: among trials equally good PBO is about 1/2
whatever their skill (measured: strong-signal studies at PBO 0.35 to 0.82), so a selection whose
winner still earns out of sample in 95% of the CSCV splits did not make the backtest."""


@dataclass(frozen=True)
class GateRule:
    name: str
    description: str
    threshold: float | None = None


GATE_RULES: tuple[GateRule, ...] = (
    GateRule("auc_significant",
             "Walk-forward AUC of the meta-label significantly above 0.5: z = (AUC - 0.5) / SE at least the "
             "threshold, SE by Hanley & McNeil over the events' effective (uniqueness-weighted) count.", 2.0),
    GateRule("log_loss_beats_prior", "Weighted walk-forward log-loss below the class-prior baseline's."),
    GateRule("selection_not_overfit",
             "The choice among the study's trials did not make the backtest. CSCV over an even number of time "
             "blocks of the trials' "
             f"{CSCV_FREQ} returns, each trial backtested after costs by the strategy: the "
             "probability of backtest overfitting (PBO) below the threshold, or, where the trials are alike and "
             "PBO is a coin flip, the in-sample winner earning out of sample in all but at most "
             f"{MAX_PROBABILITY_OF_LOSS:.0%} of the splits (probability of loss).", 0.5),
    GateRule("dsr_above_threshold",
             "Deflated Sharpe Ratio of the walk-forward backtest (deflated by the after-cost Sharpe ratios of the "
             "study's trials, every trial run counted) at least the threshold, over a track record at least the "
             "Minimum Track Record Length against the same bar.", 0.95),
    GateRule("beats_placebos",
             "Walk-forward net Sharpe ratio above every placebo study's (meta-labels permuted within blocks, "
             "trained and backtested the same way; a placebo that never trades counts 0)."),
    GateRule("beats_take_every_event",
             "Walk-forward net Sharpe ratio above the baseline that takes every primary event (the primary "
             "model alone, same strategy and costs)."),
    GateRule("features_no_lookahead",
             "The features look-ahead check passed on every partition the candidate was trained on."),
)
DEFAULT_THRESHOLDS = {r.name: r.threshold for r in GATE_RULES if r.threshold is not None}


@dataclass
class GateOutcome:
    rule: GateRule
    passed: bool
    figure: float | str | None
    threshold: float | str | None
    detail: str

    def message(self) -> str:
        return f"{self.rule.name}: {'passed' if self.passed else 'FAILED'} ({self.detail})"


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _risk(conn: duckdb.DuckDBPyConnection, model_id: str) -> dict[str, float]:
    rows = conn.execute("SELECT metric, value FROM risk_metrics WHERE model_id = ?", [model_id]).fetchall()
    return dict(rows)


def _days(x: float) -> str:
    return "never (Sharpe ratio at or below the bar)" if x == math.inf else f"{x:.1f} days"


def evaluate_gate(conn: duckdb.DuckDBPyConnection, record: ModelRecord,
                  thresholds: dict[str, float] | None = None) -> list[GateOutcome]:
    """Every rule of :data:`GATE_RULES` on ``record``; ``thresholds`` override the defaults. A rule
    whose figure cannot be computed fails and says what it would need."""
    t = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    m = record.metrics
    rules = {r.name: r for r in GATE_RULES}
    auc, se, z, n_eff = (m.get(k) for k in ("auc", "auc_se", "auc_z", "auc_effective_events"))
    ll, prior = m.get("log_loss"), m.get("prior_log_loss")
    out = [
        GateOutcome(rules["auc_significant"], _finite(z) and z >= t["auc_significant"], z, t["auc_significant"],
                    f"walk-forward AUC {auc:.4f} +/- {se:.4f} (z {z:.2f}) over {m.get('events', 0)} events, "
                    f"{n_eff:.0f} effective" if _finite(z)
                    else f"no AUC z: {m.get('events', 0)} walk-forward events (both classes needed)"),
        GateOutcome(rules["log_loss_beats_prior"], _finite(ll) and _finite(prior) and ll < prior, ll, prior,
                    f"walk-forward log-loss {ll:.5f} vs prior {prior:.5f} over {m.get('events', 0)} events"
                    if _finite(ll) and _finite(prior) else "no walk-forward log-loss"),
    ]
    risk = _risk(conn, record.model_id)
    if not risk:
        missing = "no risk report for this model: materialise backtest and risk_report first"
        out += [GateOutcome(rules[name], False, None, t[name], missing)
                for name in ("selection_not_overfit", "dsr_above_threshold")]
    else:
        per = "hourly" if risk.get("periods_per_year") == PERIODS_PER_YEAR["h"] else "daily"
        trials = f"{risk.get('trials', 0):.0f} trials ({risk.get('trials_with_sharpe', 0):.0f} with a Sharpe ratio)"
        out.append(_selection_outcome(rules["selection_not_overfit"], risk, t["selection_not_overfit"], trials))
        dsr, have, need = (risk.get(k) for k in ("deflated_sharpe_ratio", "track_record_days", "min_track_record_days"))
        long_enough = _finite(need) and _finite(have) and have >= need
        ok = _finite(dsr) and dsr >= t["dsr_above_threshold"] and long_enough
        if not _finite(dsr):
            detail = (f"no Deflated Sharpe Ratio: {risk.get('trades', 0):.0f} walk-forward trades over "
                      f"{risk.get('return_periods', 0):.0f} {per} returns, {trials}")
        else:
            detail = (f"DSR {dsr:.3f} vs {t['dsr_above_threshold']} on {per} returns ({trials}); MinTRL "
                      f"{_days(need) if _finite(need) else 'unknown'}, have {have:.1f} days")
        out.append(GateOutcome(rules["dsr_above_threshold"], ok, dsr, t["dsr_above_threshold"], detail))
    out += _comparison_outcomes(rules, record, risk)
    out.append(_lookahead_outcome(conn, rules["features_no_lookahead"], record.partitions))
    return out


def _selection_outcome(rule: GateRule, risk: dict[str, float], threshold: float, trials: str) -> GateOutcome:
    pbo, loss, blocks = risk.get("pbo"), risk.get("probability_of_loss"), risk.get("cscv_blocks", 0.0)
    if not _finite(loss):
        return GateOutcome(rule, False, pbo, threshold, "no CSCV: it needs a trial with returns and 4 "
                           f"{CSCV_FREQ} returns over the tuning events, have {trials} and {blocks:.0f} blocks")
    by_pbo, by_loss = _finite(pbo) and pbo < threshold, loss <= MAX_PROBABILITY_OF_LOSS
    shown = f"PBO {pbo:.3f}" if _finite(pbo) else "PBO undefined (one trial with returns)"
    how = " (passes by PBO)" if by_pbo else " (passes by probability of loss)" if by_loss else ""
    return GateOutcome(rule, by_pbo or by_loss, pbo, threshold,
                       f"{shown} vs {threshold}, probability of loss {loss:.3f} vs {MAX_PROBABILITY_OF_LOSS}{how}, "
                       f"over {blocks:.0f} blocks of {CSCV_FREQ} returns, {trials}")


def _comparison_outcomes(rules: dict[str, GateRule], record: ModelRecord, risk: dict[str, float]) -> list[GateOutcome]:
    sharpe = risk.get("sharpe_ratio")
    have = f"net Sharpe {sharpe:.2f}" if _finite(sharpe) else "no net Sharpe ratio (no trade, or too few returns)"
    placebo_error = record.metrics.get("placebo_error", "")
    best, n, expected = risk.get("placebo_sharpe_max"), risk.get("placebos", 0.0), risk.get("placebos_expected", 0.0)
    if placebo_error:
        placebos = GateOutcome(rules["beats_placebos"], False, None, None, f"no placebo study: {placebo_error}")
    elif not risk or not n or n < expected:
        placebos = GateOutcome(rules["beats_placebos"], False, None, None,
                               f"{n:.0f} of {expected:.0f} placebo studies backtested: run model_candidate and the "
                               "risk report again")
    else:
        placebos = GateOutcome(rules["beats_placebos"], _finite(sharpe) and sharpe > best, sharpe, best,
                               f"{have} vs the best of {n:.0f} placebos {best:.2f}")
    baseline = risk.get("baseline_sharpe")
    every = GateOutcome(rules["beats_take_every_event"], _finite(sharpe) and _finite(baseline) and sharpe > baseline,
                        sharpe, baseline,
                        f"{have} vs take-every-event {baseline:.2f} ({risk.get('baseline_trades', 0):.0f} trades)"
                        if _finite(baseline) else "no baseline: no risk report")
    return [placebos, every]


def _lookahead_outcome(conn: duckdb.DuckDBPyConnection, rule: GateRule, partitions: list[str]) -> GateOutcome:
    logged = conn.execute(
        "SELECT strftime(day, '%Y-%m-%d') || '|' || symbol AS partition, passed FROM asset_check_log "
        "WHERE asset = 'features' AND check_name = 'no_lookahead'").fetchdf()
    passed = dict(zip(logged["partition"], logged["passed"]))
    failed = [p for p in partitions if passed.get(p) is False]
    unchecked = [p for p in partitions if p not in passed]
    ok = not failed and not unchecked and bool(partitions)
    detail = (f"{len(partitions)} partitions checked" if ok else
              f"failed: {failed[:5]}, never checked: {unchecked[:5]}" if partitions else "no partitions")
    return GateOutcome(rule, ok, f"{len(partitions) - len(failed) - len(unchecked)}/{len(partitions)}", "all", detail)


def gate_table(outcomes: list[GateOutcome]) -> pd.DataFrame:
    return pd.DataFrame([{"rule": o.rule.name, "passed": o.passed, "figure": o.figure, "threshold": o.threshold,
                          "detail": o.detail} for o in outcomes])
