"""The asset graph as committed: every asset of the Definitions with its group, its upstream assets,
its partitioning, its checks (blocking or not) and its automation condition, against
``asset_graph.json`` beside this file.

A change to the graph shows up here as a diff to read, not by accident in a run. When the change
is meant, regenerate the file and commit it with the change:

    .venv/bin/python -m atra_pipeline_tests.defs.test_asset_graph --update
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).with_name("asset_graph.json")
UPDATE = ".venv/bin/python -m atra_pipeline_tests.defs.test_asset_graph --update"


def describe_partitions(partitions_def: dg.PartitionsDefinition | None) -> str | dict | None:
    """The partitioning's shape, not its keys: the dates start at $ATRA_START_DATE and the symbols
    are $ATRA_SYMBOLS, which a test or a deployment may set otherwise."""
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return {d.name: describe_partitions(d.partitions_def) for d in partitions_def.partitions_defs}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        period = {"0 0 * * *": "daily", "0 * * * *": "hourly"}.get(partitions_def.cron_schedule,
                                                                    f"cron '{partitions_def.cron_schedule}'")
        return f"{period} ({partitions_def.timezone})"
    if isinstance(partitions_def, dg.StaticPartitionsDefinition):
        return "static"
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic '{partitions_def.name}'"
    return type(partitions_def).__name__


def asset_graph(defs: dg.Definitions) -> dict:
    """``{asset key: {group, deps, partitions, checks, automation}}``, keys and lists sorted; the
    automation by its condition's label, the cron named by its variable (a deployment sets it)."""
    from atra_pipeline.core.settings import get

    graph = defs.resolve_asset_graph()
    checks: dict[dg.AssetKey, dict[str, str]] = {}
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        checks.setdefault(check_key.asset_key, {})[check_key.name] = "blocking" if spec.blocking else "not blocking"
    snapshot = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        snapshot[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": describe_partitions(node.partitions_def),
            "checks": dict(sorted(checks.get(key, {}).items())),
            "automation": node.automation_condition.get_label().replace(get("ATRA_DAILY_CRON"), "$ATRA_DAILY_CRON")
            if node.automation_condition else None,
        }
    return snapshot


def render(snapshot: dict) -> str:
    return json.dumps(snapshot, indent=2) + "\n"


def live_graph() -> dict:
    from atra_pipeline.definitions import defs

    return asset_graph(defs)


def test_the_asset_graph_is_the_committed_one():
    live = render(live_graph())
    committed = SNAPSHOT.read_text() if SNAPSHOT.is_file() else ""
    if live != committed:
        diff = "".join(difflib.unified_diff(committed.splitlines(keepends=True), live.splitlines(keepends=True),
                                            fromfile=f"{SNAPSHOT.name} (committed)", tofile="the Definitions (live)"))
        raise AssertionError(f"the asset graph differs from {SNAPSHOT.name}:\n{diff}\n"
                             f"If the change is meant, regenerate the file and commit it: {UPDATE}")


def test_the_snapshot_sees_groups_deps_partitions_blocking_and_automation():
    """The description itself, on a graph made here: a change it must not miss is visible in it."""
    daily = dg.MultiPartitionsDefinition({"date": dg.DailyPartitionsDefinition("2024-01-01"),
                                          "symbol": dg.StaticPartitionsDefinition(["A", "B"])})

    @dg.asset(group_name="raw", partitions_def=daily,
              check_specs=[dg.AssetCheckSpec("ok", asset="up", blocking=True),
                           dg.AssetCheckSpec("soft", asset="up")])
    def up():
        pass

    @dg.asset(group_name="gate", deps=[up], automation_condition=dg.AutomationCondition.eager().with_label("soon"))
    def down():
        pass

    assert asset_graph(dg.Definitions(assets=[up, down])) == {
        "down": {"group": "gate", "deps": ["up"], "partitions": None, "checks": {}, "automation": "soon"},
        "up": {"group": "raw", "deps": [], "partitions": {"date": "daily (UTC)", "symbol": "static"},
               "checks": {"ok": "blocking", "soft": "not blocking"}, "automation": None},
    }


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(f"usage: {UPDATE}")
    SNAPSHOT.write_text(render(live_graph()))
    print(f"wrote {SNAPSHOT}")
