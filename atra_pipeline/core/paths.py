"""Where the project keeps its SQL and data; environment variables override the defaults."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


def duckdb_path() -> Path:
    """The DuckDB file: ``$ATRA_DUCKDB_PATH`` or ``data/atra.duckdb`` under the project."""
    from atra_pipeline.core.settings import get

    return get("ATRA_DUCKDB_PATH")
