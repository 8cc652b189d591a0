"""Load the project's SQL files (``sql/`` at the project root)."""

from __future__ import annotations

from functools import cache

from atra_pipeline.core.paths import SQL_DIR


@cache
def load_sql(name: str) -> str:
    """Text of ``sql/<name>`` (``name`` like ``"checks/raw_l2_snapshots/book_not_crossed.sql"``)."""
    path = SQL_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"SQL file not found: {path}")
    return path.read_text()
