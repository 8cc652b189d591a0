"""Execution stage: assets and checks."""

from atra_pipeline.defs.execution.assets import execution

assets = [execution]
asset_checks: list = []
