"""What every stage's Dagster layer shares: resources, partitions, check helpers, config helpers."""
