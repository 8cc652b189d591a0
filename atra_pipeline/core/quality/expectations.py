"""Great Expectations (1.x) suites: the distribution rules, declared once and validated in DuckDB.

The SQL rules (:mod:`atra_pipeline.core.quality.rules`), the schema and the staging of a partition
judge every row: columns, presence, signs, order, uniqueness, plausibility. What they cannot say
is whether a day *looks like* the days before it. The suites here judge that, on whole
distributions: per column, the partition's quantiles must lie within the range of the same
quantiles on the reference's days (the symbol's previous days; a model's training partitions),
widened by ``tolerance`` x the reference's pooled spread between its outer quantiles. Both are
warnings: a shifted distribution is news (a new regime, a broken feed, a model out of its
domain), not proof of bad rows. :data:`HOLDERS` says which side holds each property; no
property is held by both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from atra_pipeline.core.storage.database import PartitionWindow
from atra_pipeline.core.storage.sql import literal_symbol, load_sql, quote_identifier

# The only Great Expectations expectation the suites use: a distribution rule. Row-wise
# expectations (not null, between, unique, in set, column lists, row counts) are the SQL rules'.
EXPECTATION = "ExpectColumnQuantileValuesToBeBetween"


@dataclass(frozen=True)
class DistributionSuite:
    """A suite of quantile bands on ``asset``, reported as the Dagster check ``check``.

    ``quantiles`` are judged per column; a column needs ``min_values`` non-null values in the
    partition, and a reference day as many, to be judged (quantiles of fewer are noise).
    ``params`` are the suite's other settings, shown in the README with the thresholds.
    """

    asset: str
    check: str
    description: str
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    tolerance: float = 0.25
    min_values: int = 30
    params: dict = field(default_factory=dict)

    @property
    def defaults(self) -> dict:
        return {"quantiles": list(self.quantiles), "tolerance": self.tolerance, "min_values": self.min_values,
                **self.params}


BOOK_COLUMNS = ("spread_bps", "depth5", "ret_1m_bps")

BOOK_HISTORY = DistributionSuite(
    "raw_l2_snapshots", "distributions_vs_history",
    "Great Expectations, in DuckDB: per symbol, the quantiles of the book's spread (bps), top-5 depth and "
    "1-minute mid return (bps), one value per minute, each within the range of the same quantile over the "
    "previous history_days days stored, widened by tolerance x the history's spread between the outer "
    "quantiles (no history yet: passed, saying so).",
    params={"history_days": 7})

FEATURE_DRIFT = DistributionSuite(
    "features", "drift_vs_training",
    "Great Expectations, in DuckDB: each feature of the approved (else the latest) model, calendar features "
    "aside, has its quantiles within the range of the same quantiles over the model's training partitions of "
    "the symbol (this date left out), widened by tolerance x their spread between the outer quantiles; names "
    "the drifted features and their figures (no model yet: passed, saying so).")

GE_SUITES: tuple[DistributionSuite, ...] = (BOOK_HISTORY, FEATURE_DRIFT)

# Who holds each property of the assets the suites judge: a SQL rule ("sql:<check>"), the schema,
# the staging of a partition (core/raw/sources.py, sql/ingest/), a feature rule
# ("feature_rule:<check>", core/features/checks.py) or a suite here ("ge:<check>"). One holder
# per property: before issue 15 the suites repeated the SQL rules on a pandas copy, at a cost the
# issue measured at 9x theirs (benchmarks/expectations_cost.py times the suites, then and now).
HOLDERS: dict[str, str] = {
    "raw_l2_snapshots: columns and types": "schema",
    "raw_l2_snapshots: ts, symbol, exchange present": "schema",
    "raw_l2_snapshots: one venue per partition": "staging",
    "raw_l2_snapshots: best bid and best ask present, bid below ask": "sql:book_not_crossed",
    "raw_l2_snapshots: levels ordered away from the mid": "sql:levels_ordered",
    "raw_l2_snapshots: level prices and sizes finite and > 0": "sql:sizes_positive_finite",
    "raw_l2_snapshots: no timestamp repeated": "sql:ts_strictly_increasing",
    "raw_l2_snapshots: row count for the source's interval and coverage": "sql:row_count_in_range",
    "raw_l2_snapshots: no stretch without snapshots": "sql:gaps_within_limit",
    "raw_l2_snapshots: level notional plausible": "sql:level_notional_plausible",
    "raw_l2_snapshots: mid jump plausible": "sql:mid_jump_plausible",
    "raw_trades: columns and types, every value present": "schema",
    "raw_trades: side buy or sell": "schema",
    "raw_trades: price finite and > 0": "staging",
    "raw_trades: one venue per partition": "staging",
    "raw_trades: price near the book's mid": "sql:price_near_mid",
    "raw_trades: amount finite and > 0": "sql:amount_positive",
    "raw_trades: trade id unique": "sql:trade_id_unique",
    "raw_trades: notional plausible": "sql:notional_plausible",
    "features: no infinite value": "feature_rule:no_infinite_values",
    "features: NaN share outside the warm-up": "feature_rule:nan_share_within_limit",
    "features: no constant market-data column": "feature_rule:no_constant_columns",
    "features: one row per decision time": "feature_rule:decision_grid_complete",
    "features: book fresh at the decision times": "feature_rule:book_fresh",
    "features: no look-ahead": "feature_rule:no_lookahead",
    "raw_l2_snapshots: spread, depth and 1-minute return distributions like the symbol's history":
        f"ge:{BOOK_HISTORY.check}",
    "features: feature distributions like the model's training partitions": f"ge:{FEATURE_DRIFT.check}",
}


@dataclass
class DistributionOutcome:
    """What a suite found on a partition: ``bands`` has one row per column and quantile
    (observed, low, high, inside); ``skipped`` the columns not judged and why; ``reason`` why
    nothing was judged (no reference)."""

    suite: DistributionSuite
    passed: bool
    bands: pd.DataFrame = field(default_factory=pd.DataFrame)
    skipped: dict[str, str] = field(default_factory=dict)
    reference: str = ""
    reference_days: int = 0
    reason: str = ""

    @property
    def shifted(self) -> list[str]:
        """The columns with a quantile outside its band, in column order."""
        if self.bands.empty:
            return []
        return list(dict.fromkeys(self.bands.loc[~self.bands["inside"], "column"]))

    def message(self) -> str:
        if self.reason:
            return f"{self.suite.check}: passed, not judged: {self.reason}"
        if self.passed:
            return (f"{self.suite.check}: {self.bands['column'].nunique()} columns within their bands "
                    f"against {self.reference}")
        outside = self.bands[~self.bands["inside"]]
        figures = "; ".join(f"{r.column} q{r.quantile:g} {r.observed:.4g} outside [{r.low:.4g}, {r.high:.4g}]"
                            for r in outside.itertuples())
        return f"{self.suite.check}: {', '.join(self.shifted)} shifted against {self.reference}: {figures}"


def book_minutes(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """The ``SELECT`` of ``symbol``'s per-minute spread, depth and return in ``[start, end)``."""
    text = load_sql("expectations/book_minutes.sql")
    # the query Great Expectations is given must begin with SELECT
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return text.format(symbol=literal_symbol(symbol), start=pd.Timestamp(start), end=pd.Timestamp(end))


def feature_rows(symbol: str, columns: list[str], days: list[str]) -> str:
    """The ``SELECT`` of ``columns`` of ``symbol``'s stored features on ``days`` (``YYYY-MM-DD``),
    non-finite values as NULL."""
    values = ", ".join(f"CASE WHEN isfinite(CAST({q} AS DOUBLE)) THEN CAST({q} AS DOUBLE) END AS {q}"
                       for q in map(quote_identifier, columns))
    dates = ", ".join(f"DATE '{pd.Timestamp(d).date()}'" for d in days) or "NULL"
    return (f"SELECT CAST(ts AS DATE) AS day, {values} FROM features "
            f"WHERE symbol = '{literal_symbol(symbol)}' AND CAST(ts AS DATE) IN ({dates})")


def quantile_bands(conn: duckdb.DuckDBPyConnection, reference: str, columns: list[str],
                   suite: DistributionSuite) -> tuple[dict[str, list[tuple[float, float]]], int]:
    """Per column, the band of each of ``suite.quantiles`` from the rows of ``reference`` (a
    ``SELECT`` with a ``day`` column), and the number of reference days with values.

    A band is [least, greatest] of that quantile over the days with ``min_values`` values or more,
    widened on both sides by ``tolerance`` x (pooled outer quantiles' difference). Quantiles are
    DuckDB's ``quantile_disc``, the ``percentile_disc`` Great Expectations computes. A column
    without such a day has no band.
    """
    qs = list(suite.quantiles)
    per_day = conn.execute(
        f"SELECT day, {', '.join(f'count({q}), quantile_disc({q}, {qs})' for q in map(quote_identifier, columns))} "
        f"FROM ({reference}) GROUP BY day ORDER BY day").fetchall()
    outer = [min(qs), max(qs)]
    pooled = conn.execute(
        f"SELECT {', '.join(f'quantile_disc({quote_identifier(c)}, {outer})' for c in columns)} FROM ({reference})"
    ).fetchall()[0]
    bands, days_with_values = {}, set()
    for i, column in enumerate(columns):
        kept = [row for row in per_day if row[1 + 2 * i] >= suite.min_values]
        days_with_values |= {row[0] for row in kept}
        daily = [row[2 + 2 * i] for row in kept]
        if not daily:
            continue
        widen = suite.tolerance * (pooled[i][1] - pooled[i][0])
        bands[column] = [(min(d[k] for d in daily) - widen, max(d[k] for d in daily) + widen) for k in range(len(qs))]
    return bands, len(days_with_values)


def judge(conn: duckdb.DuckDBPyConnection, suite: DistributionSuite, partition: str, reference: str,
          columns: list[str], reference_name: str) -> DistributionOutcome:
    """Validate ``suite``'s quantile bands, computed from ``reference``, on the rows of
    ``partition`` with Great Expectations in DuckDB (both ``SELECT`` statements in ``conn``)."""
    import great_expectations as gx

    from atra_pipeline.core.quality.ge_duckdb import validate

    bands, n_days = quantile_bands(conn, reference, columns, suite)
    counts = conn.execute(f"SELECT {', '.join(f'count({quote_identifier(c)})' for c in columns)} FROM ({partition})"
                          ).fetchall()[0]
    skipped = {c: f"{n} values in the partition, fewer than {suite.min_values}"
               for c, n in zip(columns, counts) if n < suite.min_values}
    skipped |= {c: "no reference day with enough values" for c in columns if c not in bands and c not in skipped}
    reference_name = f"{reference_name} ({n_days} days)"
    judged = [c for c in columns if c not in skipped]
    if not judged:
        return DistributionOutcome(suite, True, skipped=skipped, reference=reference_name, reference_days=n_days,
                                   reason=f"no column to judge against {reference_name}")
    expectations = [getattr(gx.expectations, EXPECTATION)(column=column, quantile_ranges={
        "quantiles": list(suite.quantiles), "value_ranges": [list(b) for b in bands[column]]}) for column in judged]
    result = validate(conn, partition, f"{suite.asset}_{suite.check}", expectations)
    rows = []
    for r in result.results:
        if r.exception_info.get("raised_exception"):
            raise RuntimeError(f"{suite.check}: Great Expectations failed on {r.expectation_config.kwargs['column']}: "
                               f"{r.exception_info.get('exception_message')}")
        column = r.expectation_config.kwargs["column"]
        for q, value, (low, high) in zip(suite.quantiles, r.result["observed_value"]["values"], bands[column]):
            rows.append({"column": column, "quantile": q, "observed": value, "low": low, "high": high,
                         "inside": bool(low <= value <= high)})
    return DistributionOutcome(suite, bool(result.success), pd.DataFrame(rows), skipped, reference_name, n_days)


def judge_book_history(conn: duckdb.DuckDBPyConnection, window: PartitionWindow) -> DistributionOutcome:
    """:data:`BOOK_HISTORY` on ``window``: its book against the ``history_days`` days before it."""
    suite = BOOK_HISTORY
    start = window.start - pd.Timedelta(days=suite.params["history_days"])
    history = f"{window.symbol}'s history {start.date()} to {(window.start - pd.Timedelta(days=1)).date()}"
    outcome = judge(conn, suite, book_minutes(window.symbol, window.start, window.end),
                    book_minutes(window.symbol, start, window.start), list(BOOK_COLUMNS), history)
    if outcome.reference_days == 0:
        outcome.reason = (f"no history yet: no day of {window.symbol} with {suite.min_values} minutes or more stored "
                          f"in the {suite.params['history_days']} days before")
    return outcome


def judge_feature_drift(conn: duckdb.DuckDBPyConnection, window: PartitionWindow) -> DistributionOutcome:
    """:data:`FEATURE_DRIFT` on ``window``'s stored features: the approved model's features (else
    the latest model's), calendar features aside, against its training partitions of the symbol
    other than this date."""
    from atra_pipeline.core.features.registry import CLOCK_FAMILIES, FEATURES
    from atra_pipeline.core.models.registry import latest, load_model

    suite = FEATURE_DRIFT
    model_id = latest(conn, "approved") or latest(conn)
    if model_id is None:
        return DistributionOutcome(suite, True, reason="no model yet: nothing was trained to compare with")
    record = load_model(conn, model_id)
    date = str(window.start.date())
    days = sorted({key.split("|")[0] for key in record.partitions if key.split("|")[1] == window.symbol} - {date})
    if not days:
        return DistributionOutcome(suite, True, reason=f"model {model_id} was trained on no partition of "
                                                       f"{window.symbol} but this one")
    calendar = {f.name for f in FEATURES if f.family in CLOCK_FAMILIES}  # a weekday is not a drift
    stored = {row[0] for row in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'features'").fetchall()}
    columns = [c for c in record.features if c not in calendar and c in stored]
    if not columns:
        return DistributionOutcome(suite, True, reason=f"none of model {model_id}'s features is stored")
    return judge(conn, suite, feature_rows(window.symbol, columns, [date]), feature_rows(window.symbol, columns, days),
                 columns, f"model {model_id}'s training partitions of {window.symbol}")
