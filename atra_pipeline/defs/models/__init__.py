"""Models stage: assets and checks."""

from atra_pipeline.defs.models.assets import model_candidate, oof_predictions

assets = [model_candidate, oof_predictions]
asset_checks: list = []
