"""When the daemon materialises what: the automation condition of each asset group, declared once
here and given to the group's assets in ``definitions.py`` (``dg.map_asset_specs``).

The order comes from the asset graph itself, not from a list of stages: a condition says when an
asset's partition may run given the state of the partitions it reads (their deps and partition
mappings), so features wait for every symbol's books because their ``AssetDep`` reads every
symbol's books.

- ``raw``: at each tick of ``$ATRA_DAILY_CRON`` (UTC, default 00:30), the latest complete day's
  partitions for every symbol that are not stored yet (:func:`on_daily_cron`).
- ``features``, ``labels``: Dagster's ``eager`` (a partition of the latest day runs once a
  partition it reads was updated, or it newly exists, and nothing it reads is missing or in
  progress) with two changes, plus the blocking checks (:func:`downstream`).
- ``models``, ``backtest``, ``gate``: none. A candidate trains on every stored label, which a new
  day should not set off; the ``weekly_retrain`` schedule and ``atra train`` run them.
- ``live``, ``execution``: their sensors (``defs/live/sensors.py``).

The sensor ``daily_automation`` (:func:`automation_sensor`) evaluates these conditions every 30 s
in the daemon; it starts stopped, like every sensor and schedule here. It requests one run per
partition (the features and labels of a partition in one run), which the instance's run queue
(the queued run coordinator) admits, within its concurrency pools, to its run launcher, as it does
a run or a backfill launched from the UI. A date range by hand is an asset backfill (the UI's
*Materialize*, GraphQL ``launchPartitionBackfill``), which the daemon orders by the same deps.
"""

from __future__ import annotations

import dagster as dg

from atra_pipeline.core.settings import get

AC = dg.AutomationCondition


def on_daily_cron(cron: str) -> dg.AutomationCondition:
    """At each tick of ``cron`` (UTC), the latest complete day's partitions (``in_latest_time_window``
    of the date dimension: yesterday at 00:30) for every symbol, those not stored yet and not being
    written. With a daily cron every tick has a new latest day; a cron that ticks again on the same
    day (every minute, in the service test) collects the day once, and again only while it is
    missing (its run failed)."""
    return (AC.on_cron(cron, "UTC") & AC.missing() & ~AC.in_progress()).with_label(f"on_daily_cron({cron})")


def _any_dep_of_the_day(condition: dg.AutomationCondition) -> dg.AutomationCondition:
    """A partition of the latest day it reads matches ``condition`` and is not requested this tick
    (the previous day's partitions are the warm-up: they do not hold the day back)."""
    return AC.any_deps_match(condition & ~AC.will_be_requested() & AC.in_latest_time_window())


def _day_missing() -> dg.AutomationCondition:
    """A partition it reads of the latest day is missing and not requested this tick.

    Dagster's ``any_deps_missing`` counts every partition read, and features and labels read the
    previous day's books too (rolling windows, volatility warm-up): on the first day collected, or
    when an earlier day was never stored, they would wait forever. The assets treat a missing
    previous day as a first day (warm-up), so only the day itself must be stored."""
    return _any_dep_of_the_day(AC.missing()).with_label("any_deps_of_the_day_missing")


def _deps_blocking_checks_passed() -> dg.AutomationCondition:
    """Every dep's blocking checks passed, or the dep will be requested this tick.

    Dagster's ``all_deps_blocking_checks_passed`` asks "passed, or will be requested" of each
    *check*; checks without an automation condition of their own (ours ride along with their
    asset) are never "requested", so labels could not be requested on the tick their features
    are. Asked of the dep asset instead, labels run in the features' run, where a failed blocking
    check of the features stops the labels step (Dagster's run machinery).

    The checks are not partitioned in Dagster's model, so a check's status is its latest
    evaluation on any partition: a failed one stops every partition that reads the asset until a
    later one passes. Each asset also refuses, partition by partition, a partition it reads that
    failed a blocking check in a stored evaluation (``refuse_failed_upstream``)."""
    return AC.all_deps_match(
        AC.all_checks_match(AC.check_passed(), blocking_only=True) | AC.will_be_requested()
    ).with_label("all_deps_blocking_checks_passed")


def _dep_failed() -> dg.AutomationCondition:
    """A partition of the latest day it reads whose latest run failed (a refused raw partition, say)
    and that is not requested again this tick: per partition, where the checks' status is not. The
    previous day's failed partition is no stored data, as a day never collected (warm-up): it
    does not hold the next day back (the asset itself refuses a stored one that failed a check)."""
    return _any_dep_of_the_day(AC.execution_failed()).with_label("any_dep_of_the_day_failed")


def downstream(ignore: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """``eager`` with the day's deps only (:func:`_day_missing`), and only over passed blocking
    checks (:func:`_deps_blocking_checks_passed`) and partitions whose last run did not fail
    (:func:`_dep_failed`). ``ignore``: deps whose updates do not set the
    asset off (they still must be stored and not in progress)."""
    updated = AC.any_deps_updated() if ignore is None else AC.any_deps_updated().ignore(ignore)
    return (
        AC.eager().replace("any_deps_updated", updated).replace("any_deps_missing", _day_missing())
        & ~_dep_failed()
        & _deps_blocking_checks_passed()
    ).with_label("eager_on_the_day")


def conditions(cron: str | None = None) -> dict[str, dg.AutomationCondition]:
    """The condition of each automated asset group; a group not named has none."""
    return {
        "raw": on_daily_cron(cron or get("ATRA_DAILY_CRON")),
        "features": downstream(),
        # labels read the books directly and through features: they follow the features' update,
        # or a day's new books would label once on the old features and again on the new ones
        "labels": downstream(ignore=dg.AssetSelection.groups("raw")),
    }


def with_conditions(spec: dg.AssetSpec, by_group: dict[str, dg.AutomationCondition]) -> dg.AssetSpec:
    """``spec`` with its group's condition (unchanged for a group without one)."""
    condition = by_group.get(spec.group_name or "")
    return spec if condition is None else spec.replace_attributes(automation_condition=condition)


def automation_sensor(groups) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the conditions of ``groups``. One run per partition rather than an
    asset backfill per tick (``emit_backfills=False``): the conditions already order the partitions,
    and a run is submitted to the queue at once instead of at the backfill loop's next pass."""
    return dg.AutomationConditionSensorDefinition(
        "daily_automation",
        target=dg.AssetSelection.groups(*groups),
        emit_backfills=False,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Evaluates the automation conditions of the raw, features and labels groups "
                    "(atra_pipeline/defs/common/automation.py): the latest day's raw data at each tick of "
                    "ATRA_DAILY_CRON, then features and labels once every partition they read is stored and "
                    "passed its blocking checks. Runs and backfills go through the run queue.",
    )
