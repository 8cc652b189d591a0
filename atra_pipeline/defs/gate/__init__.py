"""Gate stage: assets and checks."""

from atra_pipeline.defs.gate.assets import approved_model

assets = [approved_model]
asset_checks: list = []
