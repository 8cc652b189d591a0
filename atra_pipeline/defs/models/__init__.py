"""Models stage: assets and checks."""

from atra_pipeline.defs.models.assets import approved_model, model_candidate, oof_predictions

assets = [model_candidate, oof_predictions, approved_model]
asset_checks: list = []
