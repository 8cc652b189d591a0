"""ATRA: a research-to-trading pipeline for crypto market microstructure, on Dagster and DuckDB."""
