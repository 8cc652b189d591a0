"""The computation, one package per stage in the asset graph's order, plain Python: no Dagster, no test code."""
