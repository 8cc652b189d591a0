"""Load and run the project's SQL files (``sql/`` at the project root)."""

from __future__ import annotations

import re
from functools import cache

import duckdb

from atra_pipeline.core.storage.paths import SQL_DIR

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@cache
def load_sql(name: str) -> str:
    """Text of ``sql/<name>`` (``name`` like ``"checks/raw_l2_snapshots/book_not_crossed.sql"``)."""
    path = SQL_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"SQL file not found: {path}")
    return path.read_text()


_SYMBOL = re.compile(r"[A-Za-z0-9_.\-]+")


def literal_symbol(symbol: str) -> str:
    """``symbol``, checked safe to paste into SQL text as a literal (views and queries that
    cannot take parameters); anything but letters, digits, ``_ . -`` is an error."""
    if not _SYMBOL.fullmatch(symbol):
        raise ValueError(f"unexpected characters in symbol {symbol!r}")
    return symbol


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (a file's column named ``asks[0].price``, say)."""
    return '"' + name.replace('"', '""') + '"'


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
