"""Features stage: assets and checks."""

from atra_pipeline.defs.features.assets import features

assets = [features]
asset_checks: list = []
