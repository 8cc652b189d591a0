"""The Dagster definitions of ATRA: every stage's assets and checks, the jobs and resources."""

from __future__ import annotations

import dagster as dg

from atra_pipeline.core.settings import get
from atra_pipeline.defs import backtest, execution, features, gate, labels, live, models, raw
from atra_pipeline.defs.raw.collect import collect
from atra_pipeline.defs.common.resources import RawSourceResource, default_duckdb

# The pipeline's stages in order, each a set of asset groups; later stages join this mapping.
# ``atra run`` runs a partitioned stage for every date x symbol partition before the next stage
# (cross-asset features need every symbol's raw data), and the research stage once.
MAIN_STAGES = {"raw": ("raw",), "features": ("features",), "labels": ("labels",),
               "research": ("models", "backtest", "gate")}
main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.groups(*(g for groups in MAIN_STAGES.values() for g in groups)),
    description="Raw order books and trades, features, labels, a model candidate, its backtest, risk report and gate.",
)

# Tune, validate and gate a candidate on the stored labels (`atra train`, or run config for trials).
train_job = dg.define_asset_job("train", selection=dg.AssetSelection.groups(*MAIN_STAGES["research"]),
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

STAGE_MODULES = (raw, features, labels, models, backtest, gate, live, execution)  # each has assets and asset_checks

defs = dg.Definitions(
    assets=[a for stage in STAGE_MODULES for a in stage.assets],
    asset_checks=[c for stage in STAGE_MODULES for c in stage.asset_checks],
    jobs=[main_job, train_job, collect, *live.jobs],
    sensors=live.sensors,
    schedules=live.schedules,
    resources={"duckdb": default_duckdb(), "raw_source": RawSourceResource()},
    executor=_executor(),
)
