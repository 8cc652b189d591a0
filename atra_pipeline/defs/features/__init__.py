"""Features stage: assets and checks."""

from atra_pipeline.defs.features.assets import features
from atra_pipeline.defs.features.drift import features_drift

assets = [features]
asset_checks = [features_drift]
