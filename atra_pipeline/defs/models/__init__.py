"""Models stage: assets and checks."""

from atra_pipeline.defs.models.assets import approved_model, model_candidate

assets = [model_candidate, approved_model]
asset_checks: list = []
