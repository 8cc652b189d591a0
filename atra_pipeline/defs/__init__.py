"""The Dagster layer, one package per stage (assets, checks, sensors, schedules) and common/ for what they share."""
