"""Live stage: the live_signals asset, its job and sensors."""

from atra_pipeline.defs.live.assets import live_signals
from atra_pipeline.defs.live.schedules import weekly_retrain
from atra_pipeline.defs.live.sensors import exit_sensor, live_failure_alert, live_job, live_sensor, tick_job

assets = [live_signals]
asset_checks: list = []
jobs = [live_job, tick_job]
schedules = [weekly_retrain]
sensors = [live_sensor, exit_sensor, live_failure_alert]
