"""The Dagster definitions of ATRA: every stage's assets and checks, the jobs and resources."""

from __future__ import annotations

import dagster as dg

from atra_pipeline.defs import features, labels, models, raw
from atra_pipeline.resources import RawSourceResource, default_duckdb

# The pipeline's stages (asset groups) in order; later stages join this tuple. One run of the
# ``main`` job covers one date x symbol partition; ``atra run`` runs each stage for every
# partition before the next stage, as cross-asset features need every symbol's raw data.
MAIN_STAGES = ("raw", "features", "labels", "models")
main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.groups(*MAIN_STAGES),
    description="Raw order books and trades, features, labels, a model candidate and its gate (later: backtest, report).",
)

# Tune, validate and gate a candidate on the stored labels (`atra train`, or run config for trials).
train_job = dg.define_asset_job("train", selection=dg.AssetSelection.groups("models"),
                                description="Train a model candidate on stored labels and features, then gate it.")

defs = dg.Definitions(
    assets=[*raw.assets, *features.assets, *labels.assets, *models.assets],
    asset_checks=[*raw.asset_checks, *features.asset_checks, *labels.asset_checks, *models.asset_checks],
    jobs=[main_job, train_job],
    resources={"duckdb": default_duckdb(), "raw_source": RawSourceResource()},
)
