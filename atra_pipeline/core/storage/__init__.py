"""Storage: the DuckDB schema and transactional partition writes, partition files (local or object
storage), SQL loading."""
