"""Load and run the project's SQL files (``sql/`` at the project root)."""

from __future__ import annotations

import re
from functools import cache

import duckdb

from atra_pipeline.core.paths import SQL_DIR

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@cache
def load_sql(name: str) -> str:
    """Text of ``sql/<name>`` (``name`` like ``"checks/raw_l2_snapshots/book_not_crossed.sql"``)."""
    path = SQL_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"SQL file not found: {path}")
    return path.read_text()


def bind(sql: str, params: dict) -> dict:
    """The subset of ``params`` the statement names (DuckDB rejects unused named parameters)."""
    code = re.sub(r"--[^\n]*", "", sql)  # a $name in a comment is not a parameter
    wanted = set(_PARAM.findall(code))
    missing = wanted - params.keys()
    if missing:
        raise KeyError(f"SQL parameters without a value: {sorted(missing)}")
    return {k: params[k] for k in wanted}


def run_script(conn: duckdb.DuckDBPyConnection, sql: str, params: dict) -> None:
    """Run a file of ``;``-terminated statements, each with the parameters it names.

    DuckDB binds parameters for one statement at a time; statements end with ``;`` at a line end.
    """
    for statement in re.split(r";\s*\n", sql):
        if statement.strip() and not all(line.strip().startswith("--") or not line.strip()
                                         for line in statement.splitlines()):
            conn.execute(statement, bind(statement, params))
