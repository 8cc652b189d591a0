"""Features: the catalogue, the SQL build per partition, and the checks on feature rows."""
