"""Raw stage: assets and checks."""

from atra_pipeline.defs.raw.assets import raw_partition
from atra_pipeline.defs.raw.checks import raw_l2_distributions

assets = [raw_partition]
asset_checks = [raw_l2_distributions]
