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

from atra_pipeline.core.model_registry import ModelRecord


@dataclass(frozen=True)
class GateRule:
    name: str
    description: str
    threshold: float | None = None


GATE_RULES: tuple[GateRule, ...] = (
    GateRule("auc_above_floor", "Out-of-fold AUC of the meta-label above the floor.", 0.51),
    GateRule("log_loss_beats_prior", "Weighted out-of-fold log-loss below the class-prior baseline's."),
    GateRule("pbo_below_threshold",
             "Probability of backtest overfitting (CSCV over the study's trials x folds) below the threshold.", 0.5),
    GateRule("dsr_above_threshold",
             "Deflated Sharpe Ratio of the backtest of the out-of-fold predictions (deflated by the Sharpe "
             "ratios of the study's trials) above the threshold.", 0.9),
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


def evaluate_gate(conn: duckdb.DuckDBPyConnection, record: ModelRecord,
                  thresholds: dict[str, float] | None = None) -> list[GateOutcome]:
    """Every rule of :data:`GATE_RULES` on ``record``; ``thresholds`` override the defaults."""
    t = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    m = record.metrics
    auc, ll, prior, pbo = m.get("auc"), m.get("log_loss"), m.get("prior_log_loss"), m.get("pbo")
    rules = {r.name: r for r in GATE_RULES}
    out = [
        GateOutcome(rules["auc_above_floor"], _finite(auc) and auc > t["auc_above_floor"], auc, t["auc_above_floor"],
                    f"OOF AUC {auc:.4f} vs floor {t['auc_above_floor']}" if _finite(auc) else "no OOF AUC"),
        GateOutcome(rules["log_loss_beats_prior"], _finite(ll) and _finite(prior) and ll < prior, ll, prior,
                    f"OOF log-loss {ll:.5f} vs prior {prior:.5f}" if _finite(ll) and _finite(prior) else "no log-loss"),
        GateOutcome(rules["pbo_below_threshold"], _finite(pbo) and pbo < t["pbo_below_threshold"], pbo,
                    t["pbo_below_threshold"],
                    f"PBO {pbo:.3f} vs {t['pbo_below_threshold']}" if _finite(pbo)
                    else "PBO undefined: fewer than 2 complete trials"),
    ]
    dsr = conn.execute("SELECT max(value) FILTER (metric = 'deflated_sharpe_ratio'), max(value) FILTER (metric = 'days') "
                       "FROM risk_metrics WHERE model_id = ?", [record.model_id]).fetchall()[0]
    out.append(GateOutcome(rules["dsr_above_threshold"], _finite(dsr[0]) and dsr[0] > t["dsr_above_threshold"], dsr[0],
                           t["dsr_above_threshold"],
                           f"DSR {dsr[0]:.3f} over {dsr[1]:.0f} days vs {t['dsr_above_threshold']}" if _finite(dsr[0])
                           else "no Deflated Sharpe Ratio: no risk report, or too few days of returns"))
    out.append(_lookahead_outcome(conn, rules["features_no_lookahead"], record.partitions))
    return out


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
