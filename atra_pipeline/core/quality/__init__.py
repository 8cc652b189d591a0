"""Data quality: the SQL rules registry, which partitions failed a blocking rule, Great Expectations suites."""
