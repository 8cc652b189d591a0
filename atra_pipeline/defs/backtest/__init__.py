"""Backtest stage: assets and checks."""

from atra_pipeline.defs.backtest.assets import backtest, risk_report

assets = [backtest, risk_report]
asset_checks: list = []
