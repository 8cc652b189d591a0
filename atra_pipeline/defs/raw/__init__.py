"""Raw stage: assets and checks."""

from atra_pipeline.defs.raw.assets import raw_l2_snapshots, raw_trades
from atra_pipeline.defs.raw.checks import raw_l2_expectations, raw_trades_expectations

assets = [raw_l2_snapshots, raw_trades]
asset_checks = [raw_l2_expectations, raw_trades_expectations]
