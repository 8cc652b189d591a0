"""Data-quality rules written in SQL: one declaration per rule, run on stored partitions.

Each rule is a file ``sql/checks/<asset>/<name>.sql`` that selects the *offending* rows of the
relation ``{target}`` (and, where it needs the book, ``{book}``): a rule passes when it selects
nothing. The declarations below are the single source for the Dagster asset checks (their
names, descriptions and blocking flags), the README's check table and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from atra_pipeline.core.storage.database import PartitionWindow, record_partition_rows
from atra_pipeline.core.storage.parquet import CHECK_LOG
from atra_pipeline.core.storage.sql import bind, literal_symbol, load_sql

SAMPLE_ROWS = 10


@dataclass(frozen=True)
class SqlCheck:
    """A rule on one asset.

    ``blocking`` rules guard downstream work (a failure stops it); the others warn. ``params``
    are the defaults of the rule's ``$name`` parameters; ``summary`` maps a metadata name to an
    aggregate over the offending rows (e.g. the longest gap). ``plausibility`` rules bound what
    one symbol's data can be (sizes, jumps); their bounds can be set per symbol
    (:func:`plausibility_params`).
    """

    asset: str
    name: str
    description: str
    blocking: bool
    params: dict = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)
    plausibility: bool = False

    @property
    def sql_file(self) -> str:
        return f"checks/{self.asset}/{self.name}.sql"


SQL_CHECKS: tuple[SqlCheck, ...] = (
    SqlCheck("raw_l2_snapshots", "book_not_crossed",
             "Best bid is strictly below best ask on every row.", blocking=True),
    SqlCheck("raw_l2_snapshots", "levels_ordered",
             "Bid prices strictly descending and ask prices strictly ascending across present levels.",
             blocking=True),
    SqlCheck("raw_l2_snapshots", "sizes_positive_finite",
             "Every present level has a finite price and a finite size > 0.", blocking=True),
    SqlCheck("raw_l2_snapshots", "ts_strictly_increasing",
             "Timestamps strictly increasing per symbol (no timestamp repeated).", blocking=True),
    SqlCheck("raw_l2_snapshots", "row_count_in_range",
             "Row count within the range expected for the partition (source interval x coverage).",
             blocking=False, params={"min_rows": 0, "max_rows": 2**62}),
    SqlCheck("raw_l2_snapshots", "gaps_within_limit",
             "No stretch without snapshots longer than max_gap_s, the day's edges included (a partial day's: "
             "the span of its book and trades).",
             blocking=False, params={"max_gap_s": 5.0, "edges": True},
             summary={"n_gaps": "count(*)", "longest_gap_s": "coalesce(max(gap_s), 0)"}),
    SqlCheck("raw_l2_snapshots", "level_notional_plausible",
             "No resting level worth more than max_level_notional (quote currency).", blocking=True,
             params={"max_level_notional": 1e9}, plausibility=True,
             summary={"largest_level_notional": "coalesce(max(largest_level_notional), 0)"}),
    SqlCheck("raw_l2_snapshots", "mid_jump_plausible",
             "The mid moves at most max_mid_jump_bps (log return) from one snapshot to the next.", blocking=True,
             params={"max_mid_jump_bps": 1000.0}, plausibility=True,
             summary={"largest_jump_bps": "coalesce(max(jump_bps), 0)"}),
    SqlCheck("raw_trades", "price_near_mid",
             "Trade price within band_bps of the book's mid at that time.", blocking=True,
             params={"band_bps": 100.0}, summary={"max_deviation_bps": "coalesce(max(deviation_bps), 0)"}),
    SqlCheck("raw_trades", "amount_positive", "Trade amount finite and > 0.", blocking=True),
    SqlCheck("raw_trades", "trade_id_unique", "Trade ids unique per exchange and symbol.", blocking=True),
    SqlCheck("raw_trades", "notional_plausible", "No trade worth more than max_trade_notional (quote currency).",
             blocking=True, params={"max_trade_notional": 1e8}, plausibility=True,
             summary={"largest_notional": "coalesce(max(notional), 0)"}),
    SqlCheck("labels", "t1_not_before_event", "The barrier touch t1 is at or after the event time.", blocking=True),
    SqlCheck("labels", "holding_within_max", "t1 - event time is at most max_holding_s (the vertical barrier).",
             blocking=True, params={"max_holding_s": 3600},
             summary={"longest_holding_s": "coalesce(max(holding_s), 0)"}),
    SqlCheck("labels", "values_in_allowed_sets",
             "label in {0, 1}, side in {-1, 1}, outcome in {-1, 0, 1} matching barrier in {pt, sl, vertical}.",
             blocking=True),
    SqlCheck("labels", "weights_finite_positive", "Sample weights, uniqueness and targets finite and > 0.",
             blocking=True),
    SqlCheck("labels", "class_share_at_least", "Each meta-label class holds at least min_share of the events.",
             blocking=False, params={"min_share": 0.05}),
)


def plausibility_params(bounds: dict[str, dict[str, float]], symbol: str) -> dict[str, float]:
    """The plausibility bounds for ``symbol``: the rules' defaults, then ``bounds["*"]``, then
    ``bounds[symbol]``.

    Raises
    ------
    ValueError
        A bound that no plausibility rule takes, named with the ones there are.
    """
    known = {k: v for c in SQL_CHECKS if c.plausibility for k, v in c.params.items()}
    for scope, values in bounds.items():
        if unknown := sorted(set(values) - set(known)):
            raise ValueError(f"plausibility bounds for {scope!r}: unknown {unknown}; "
                             f"the bounds are {sorted(known)}")
    return {**known, **bounds.get("*", {}), **bounds.get(symbol, {})}


def checks_for(asset: str) -> list[SqlCheck]:
    """The declared rules of ``asset``, in declaration order."""
    return [c for c in SQL_CHECKS if c.asset == asset]


@dataclass
class CheckOutcome:
    """What a rule found: pass/fail, how many offending rows, a sample of them, summary figures."""

    check: SqlCheck
    passed: bool
    n_offending: int
    sample: pd.DataFrame
    summary: dict
    params: dict

    def message(self) -> str:
        if self.passed:
            return f"{self.check.name}: passed"
        first = self.sample.head(3).to_dict(orient="records")
        return f"{self.check.name}: {self.n_offending} offending rows, first: {first}"


def run_check(conn: duckdb.DuckDBPyConnection, check: SqlCheck, relations: dict[str, str],
              window: PartitionWindow, overrides: dict | None = None) -> CheckOutcome:
    """Run one rule against ``relations`` (``{"target": name, "book": name}``) for ``window``."""
    params = {**window.params, **check.params, **(overrides or {})}
    body = load_sql(check.sql_file).format(**relations)
    summary_cols = ", ".join(f"{expr} AS {name}" for name, expr in check.summary.items())
    agg_sql = f"SELECT count(*) AS n_offending{', ' + summary_cols if summary_cols else ''} FROM ({body})"
    cursor = conn.execute(agg_sql, bind(agg_sql, params))
    agg = dict(zip([d[0] for d in cursor.description], cursor.fetchall()[0]))
    n = int(agg.pop("n_offending"))
    sample_sql = f"SELECT * FROM ({body}) LIMIT {SAMPLE_ROWS}"
    sample = conn.execute(sample_sql, bind(sample_sql, params)).fetchdf() if n else pd.DataFrame()
    used = {k: v for k, v in params.items() if k in check.params}
    return CheckOutcome(check, n == 0, n, sample, {k: _plain(v) for k, v in agg.items()}, used)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def partition_views(conn: duckdb.DuckDBPyConnection, window: PartitionWindow,
                    tables: dict[str, str]) -> dict[str, str]:
    """Create temporary views of ``window``'s rows of each table; return ``{role: view name}``.

    Views (not CTEs) because the book macros read relations by name.
    """
    literal_symbol(window.symbol)
    views = {}
    for role, table in tables.items():
        view = f"check_{role}"
        conn.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {table} "
            f"WHERE symbol = '{window.symbol}' AND ts >= TIMESTAMP '{window.start}' "
            f"AND ts < TIMESTAMP '{window.end}'"
        )
        views[role] = view
    return views


def run_asset_checks(conn: duckdb.DuckDBPyConnection, asset: str, window: PartitionWindow,
                     overrides: dict | None = None) -> list[CheckOutcome]:
    """Run every rule of ``asset`` on the stored partition ``window``."""
    tables = {"target": asset}
    if asset.startswith("raw_"):  # the raw rules may read the partition's other table
        tables |= {"book": "raw_l2_snapshots", "trades": "raw_trades"}
    return run_rules(conn, asset, partition_views(conn, window, tables), window, overrides)


def run_rules(conn: duckdb.DuckDBPyConnection, asset: str, relations: dict[str, str], window: PartitionWindow,
              overrides: dict | None = None) -> list[CheckOutcome]:
    """Run every rule of ``asset`` on ``relations`` (``{"target": ..., "book": ..., "trades": ...}``):
    the stored partition's views, or rows staged before they are written."""
    return [run_check(conn, check, relations, window, overrides) for check in checks_for(asset)]


def record_check_outcomes(conn: duckdb.DuckDBPyConnection, asset: str, window: PartitionWindow,
                          passed: dict[str, bool]) -> None:
    """Keep what each check of ``asset`` found on partition ``window`` in ``asset_check_log``
    (replacing the partition's previous entries), for later gates to read in SQL."""
    rows = pd.DataFrame({"asset": asset, "check_name": list(passed), "symbol": window.symbol,
                         "day": window.start.date(), "passed": list(passed.values()),
                         "evaluated_at": pd.Timestamp.now(tz="UTC").tz_localize(None)})
    record_partition_rows(conn, CHECK_LOG, rows, window, asset)
