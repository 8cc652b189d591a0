"""Labels stage: assets and checks."""

from atra_pipeline.defs.labels.assets import labels

assets = [labels]
asset_checks: list = []
