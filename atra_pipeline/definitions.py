"""The Dagster definitions of ATRA: every stage's assets and checks, the jobs and resources."""

from __future__ import annotations

import dagster as dg

from atra_pipeline.defs import features, labels, raw
from atra_pipeline.resources import RawSourceResource, default_duckdb

# The pipeline's stages (asset groups) in order; later stages join this tuple. One run of the
# ``main`` job covers one date x symbol partition; ``atra run`` runs each stage for every
# partition before the next stage, as cross-asset features need every symbol's raw data.
MAIN_STAGES = ("raw", "features", "labels")
main_job = dg.define_asset_job(
    "main",
    selection=dg.AssetSelection.groups(*MAIN_STAGES),
    description="Raw order books and trades, features, labels (later: models, backtest, report).",
)

defs = dg.Definitions(
    assets=[*raw.assets, *features.assets, *labels.assets],
    asset_checks=[*raw.asset_checks, *features.asset_checks, *labels.asset_checks],
    jobs=[main_job],
    resources={"duckdb": default_duckdb(), "raw_source": RawSourceResource()},
)
