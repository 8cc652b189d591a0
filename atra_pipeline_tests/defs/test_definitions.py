"""The Dagster definitions load, and declare what the pipeline promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from atra_pipeline.core.quality.expectations import GE_SUITES
from atra_pipeline.core.quality.rules import SQL_CHECKS
from atra_pipeline.core.storage.paths import PROJECT_ROOT
from atra_pipeline.definitions import defs
from atra_pipeline.defs.common.resources import DUCKDB_POOL


def test_definitions_load_with_assets_checks_and_job():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {"raw_l2_snapshots", "raw_trades"}
    check_keys = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {(c.asset, c.name) for c in SQL_CHECKS} <= check_keys
    assert {(s.asset, s.check) for s in GE_SUITES} <= check_keys
    assert defs.resolve_job_def("main") is not None


def test_every_duckdb_step_is_in_the_pool():
    nodes = defs.resolve_job_def("main").graph.node_defs
    assert len(nodes) >= 4  # the raw step, features, labels, the research steps and the GE check steps
    for node in nodes:
        assert node.pool == DUCKDB_POOL, node.name


def test_blocking_flags_follow_the_registry():
    graph = defs.resolve_asset_graph()
    for check in SQL_CHECKS:
        key = dg.AssetCheckKey(dg.AssetKey(check.asset), check.name)
        assert graph.get_check_spec(key).blocking == check.blocking, check.name
    for suite in GE_SUITES:  # distributions warn: a shifted day is news, not a bad row
        assert not graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(suite.asset), suite.check)).blocking


@pytest.mark.slow  # a `dagster definitions validate` process
def test_dagster_cli_validates_the_code_location():
    env = {**os.environ, "DAGSTER_HOME": str(PROJECT_ROOT / ".dagster_home")}
    done = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w",
                           str(PROJECT_ROOT / "workspace.yaml")], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_main_job_is_the_gate_and_what_it_is_built_from():
    graph = defs.resolve_asset_graph()
    main = defs.resolve_job_def("main").asset_layer.selected_asset_keys
    assert {k.to_user_string() for k in main} == {"raw_l2_snapshots", "raw_trades", "features", "labels",
                                                  "model_candidate", "oof_predictions", "backtest", "risk_report",
                                                  "approved_model"}
    built_from, frontier = set(), {dg.AssetKey("approved_model")}
    while frontier:  # the gate and its ancestors, walked up the asset graph
        built_from |= frontier
        frontier = {parent for key in frontier for parent in graph.get(key).parent_keys} - built_from
    assert set(main) == built_from
    train = {k.to_user_string() for k in defs.resolve_job_def("train").asset_layer.selected_asset_keys}
    assert train == {"model_candidate", "oof_predictions", "backtest", "risk_report", "approved_model"}


def test_automation_conditions_are_declared_by_group_and_evaluated_by_a_stopped_sensor():
    from atra_pipeline.core.settings import BY_NAME

    graph = defs.resolve_asset_graph()
    by_group: dict[str, set] = {}
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        by_group.setdefault(graph.get(key).group_name, set()).add(condition.get_label() if condition else None)
    assert by_group.pop("raw") == {f"on_daily_cron({BY_NAME['ATRA_DAILY_CRON'].default})"}
    assert by_group.pop("features") == by_group.pop("labels") == {"eager_on_the_day"}
    assert set().union(*by_group.values()) == {None}  # research, live, execution: the schedule and sensors
    sensor = {s.name: s for s in defs.sensors}["daily_automation"]
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED and not sensor.emit_backfills
    assert {k.to_user_string() for k in sensor.asset_selection.resolve(graph)} == {
        "raw_l2_snapshots", "raw_trades", "features", "labels"}


_RAW_SOURCE_PROBE = """
import json
import dagster as dg
from atra_pipeline.definitions import defs

def configured(config):
    with dg.build_resources({"raw_source": defs.resources["raw_source"]},
                            resource_config={"raw_source": {"config": config}}) as built:
        return [built.raw_source.kind, built.raw_source.seed]

raw = defs.resolve_asset_graph().get(dg.AssetKey("raw_l2_snapshots"))
print(json.dumps({"none": configured({}), "seed_only": configured({"seed": 101}),
                  "synthetic": configured({"kind": "synthetic"}), "cron": raw.automation_condition.get_label()}))
"""


@pytest.mark.parametrize("environment, kind, cron", [
    ({}, "synthetic", "on_daily_cron(30 0 * * *)"),
    ({"ATRA_RAW_SOURCE": "ccxt", "ATRA_DAILY_CRON": "* * * * *"}, "ccxt", "on_daily_cron(* * * * *)"),
])
def test_runs_that_set_no_raw_source_kind_read_the_setting(environment, kind, cron):
    """In a process of its own (the settings are read at import): a run that configures nothing,
    or another field only (a seed, a plausibility bound), gets the setting's kind."""
    env = {k: v for k, v in os.environ.items() if k not in ("ATRA_RAW_SOURCE", "ATRA_DAILY_CRON")}
    done = subprocess.run([sys.executable, "-c", _RAW_SOURCE_PROBE], env={**env, **environment},
                          capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe == {"none": [kind, 7], "seed_only": [kind, 101], "synthetic": ["synthetic", 7], "cron": cron}


def test_the_executor_follows_the_storage_and_refuses_unknown_names(monkeypatch):
    from atra_pipeline.definitions import _executor

    monkeypatch.delenv("ATRA_EXECUTOR", raising=False)
    monkeypatch.delenv("ATRA_STORAGE_ROOT", raising=False)
    assert _executor() is dg.in_process_executor  # one DuckDB file, one slot: no step processes
    monkeypatch.setenv("ATRA_STORAGE_ROOT", "/tmp/store")
    assert _executor() is dg.multiprocess_executor  # partition files: steps may run at once
    monkeypatch.setenv("ATRA_EXECUTOR", "in_process")
    assert _executor() is dg.in_process_executor
    monkeypatch.setenv("ATRA_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="ATRA_EXECUTOR='celery'"):
        _executor()
