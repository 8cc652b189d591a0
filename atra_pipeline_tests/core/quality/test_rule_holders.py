"""No rule lives in both Great Expectations and SQL: every rule of the assets the suites judge
says what it holds (HOLDERS), and the suites hold only distributions no other rule judges."""

from __future__ import annotations

from atra_pipeline.core.features.checks import FEATURE_CHECKS
from atra_pipeline.core.quality.expectations import BOOK_COLUMNS, EXPECTATION, GE_SUITES, HOLDERS
from atra_pipeline.core.quality.rules import SQL_CHECKS
from atra_pipeline.core.raw.schema import L2_COLUMNS, TRADE_COLUMNS

JUDGED = {s.asset for s in GE_SUITES} | {"raw_l2_snapshots", "raw_trades"}


def _held_by(prefix: str) -> set[str]:
    return {h.split(":", 1)[1] for h in HOLDERS.values() if h.startswith(prefix + ":")}


def test_every_sql_and_feature_rule_of_the_judged_assets_says_what_it_holds():
    # a new rule must be entered here, where a suite repeating it shows; a gone rule must leave
    assert _held_by("sql") == {c.name for c in SQL_CHECKS if c.asset in JUDGED}
    assert _held_by("feature_rule") == set(FEATURE_CHECKS)


def test_each_suite_holds_its_own_properties_on_its_own_asset():
    assert _held_by("ge") == {s.check for s in GE_SUITES}
    for prop, holder in HOLDERS.items():
        asset = prop.split(":", 1)[0]
        assert asset in JUDGED, prop
        if holder.startswith("ge:"):
            assert {s.asset for s in GE_SUITES if f"ge:{s.check}" == holder} == {asset}, prop
    assert not {(s.asset, s.check) for s in GE_SUITES} & {(c.asset, c.name) for c in SQL_CHECKS}


def test_the_suites_judge_distributions_of_derived_values_never_a_stored_row():
    import great_expectations as gx

    # the one expectation the suites build is a distribution rule; the row-wise ones (not null,
    # between, unique, in set, column lists, row counts) are the SQL rules' and the staging's
    assert getattr(gx.expectations, EXPECTATION) is gx.expectations.ExpectColumnQuantileValuesToBeBetween
    # the book suite reads per-minute values derived in its own SQL, not a stored column a rule reads
    assert not set(BOOK_COLUMNS) & (set(L2_COLUMNS) | set(TRADE_COLUMNS))
