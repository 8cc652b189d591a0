"""The Dagster definitions of ATRA: every stage's assets and checks, the jobs and resources."""

from __future__ import annotations

import dagster as dg

from atra_pipeline.core.settings import get
from atra_pipeline.defs import backtest, execution, features, gate, labels, live, models, raw
from atra_pipeline.defs.common.automation import automation_sensor, conditions, with_conditions
from atra_pipeline.defs.common.resources import RawSourceResource, default_duckdb
from atra_pipeline.defs.raw.collect import collect

# The main job: the approval gate and everything it is built from (raw data to gate); its order is
# the asset graph's. `atra run` materialises it group by group (atra_pipeline/runner.py), the
# automation conditions (defs/common/automation.py) partition by partition.
main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.assets("approved_model").upstream(),
    description="Raw order books and trades, features, labels, a model candidate, its backtest, risk report and gate.",
)

# The research groups: unpartitioned, trained on every stored label (`atra train`, `atra run --stages
# research`, the weekly_retrain schedule).
RESEARCH_GROUPS = ("models", "backtest", "gate")
train_job = dg.define_asset_job("train", selection=dg.AssetSelection.groups(*RESEARCH_GROUPS),
                                description="Train a model candidate on stored labels and features, backtest, "
                                            "report and gate it.")

def _executor():
    """The executor of every job, from ``$ATRA_EXECUTOR``.

    ``in_process`` (the default when the DuckDB file is the storage): a run's steps one after
    another in the run's process. Every step that opens the file is in the ``duckdb`` pool of one
    slot, so a step process each would buy no parallelism and cost each step a Python start and
    the imports (seconds). ``multiprocess`` (the default with ``$ATRA_STORAGE_ROOT``, where steps
    do not share a file): a process per step. ``k8s`` (the Helm deployment): a pod per step.
    """
    name = get("ATRA_EXECUTOR") or ("multiprocess" if get("ATRA_STORAGE_ROOT") else "in_process")
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return dg.in_process_executor if name == "in_process" else dg.multiprocess_executor

# An explicit merge in graph order rather than dg.load_from_defs_folder: each stage package lists
# its assets and checks, and the resources, executor and automation are given to all of them here,
# in one place, which runner.py and the dg CLI read as they are.
STAGE_MODULES = (raw, features, labels, models, backtest, gate, live, execution)  # each has assets and asset_checks

AUTOMATION = conditions()  # group -> automation condition

defs = dg.Definitions(
    # each asset spec with its group's condition; dg.map_asset_specs, not Definitions.map_asset_specs
    # (a preview API in 1.13 that warns so)
    assets=dg.map_asset_specs(lambda spec: with_conditions(spec, AUTOMATION),
                              [a for stage in STAGE_MODULES for a in stage.assets]),
    asset_checks=[c for stage in STAGE_MODULES for c in stage.asset_checks],
    jobs=[main_job, train_job, collect, *live.jobs],
    sensors=[*live.sensors, automation_sensor(AUTOMATION)],
    schedules=live.schedules,
    # a run that sets no raw source kind (the automation's, a backfill's) reads $ATRA_RAW_SOURCE's
    resources={"duckdb": default_duckdb(), "raw_source": RawSourceResource()},
    executor=_executor(),
)
