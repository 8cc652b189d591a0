"""Every ``ATRA_*`` environment variable: read here only, typed, and refused with its name.

:data:`VARIABLES` is the one declaration the code reads (:func:`get`) and the README's table is
generated from. A value that cannot be used raises :class:`SettingsError` naming the variable,
its value and what it must be; :func:`validate_environment` checks them all at start. The API
keys (``ATRA_<EXCHANGE>_API_KEY`` / ``_SECRET``) are secrets: read only where they are handed to
the exchange client (:mod:`atra_pipeline.core.execution.brokers`), never here.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atra_pipeline.core.features.registry import REFERENCE_SYMBOL
from atra_pipeline.core.storage.paths import PROJECT_ROOT

DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file


class SettingsError(ValueError):
    """An ``ATRA_*`` variable whose value cannot be used."""


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    description: str
    parse: Callable[[str], object]


def parse_date(text: str) -> str:
    """``text`` if it is a calendar date written YYYY-MM-DD, else ValueError saying so."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError("a date is YYYY-MM-DD")
    datetime.date.fromisoformat(text)  # a real calendar day (2024-02-30 is refused)
    return text


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols or any(not re.fullmatch(r"[A-Z0-9_]+", s) for s in symbols):
        raise ValueError("comma-separated symbols such as BTCUSDT,ETHUSDT")
    return symbols


def _symbol(text: str) -> str:
    symbols = _symbols(text)
    if len(symbols) != 1:
        raise ValueError("one symbol")
    return symbols[0]


def _duckdb_file(text: str) -> Path:
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError("a directory; the variable names the database file")
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as f:
            if f.read(12)[8:12] != DUCKDB_MAGIC:
                raise ValueError("the file exists and is not a DuckDB database (nothing would be stored in it)")
    return path


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"\d+", text) or int(text) < 1:
        raise ValueError("a whole number of at least 1")
    return int(text)


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def _cron(text: str) -> str:
    """``text`` if it is a five-field numeric cron expression (``*``, ``N``, ``N-M``, ``/step``,
    comma lists), each number within its field's range."""
    fields = text.split()
    if len(fields) != 5:
        raise ValueError("a cron expression of five fields (minute hour day-of-month month day-of-week), "
                         "e.g. '30 0 * * *'")
    for field, (name, low, high) in zip(fields, _CRON_FIELDS):
        for item in field.split(","):
            match = re.fullmatch(r"(?:\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", item)
            bounds = [int(n) for n in match.groups()[:2] if n is not None] if match else []
            if not match or any(not low <= n <= high for n in bounds) or int(match.group(3) or 1) == 0:
                raise ValueError(f"{name} field {item!r}: numbers {low}-{high}, '*', ranges N-M, steps /N")
    return " ".join(fields)


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return text
    return parse


VARIABLES: tuple[Variable, ...] = (
    Variable("ATRA_DUCKDB_PATH", str(PROJECT_ROOT / "data" / "atra.duckdb"),
             "The DuckDB database file (created on first use; an existing file must be a DuckDB database).",
             _duckdb_file),
    Variable("ATRA_START_DATE", "2020-01-01", "First date of the daily partitions, YYYY-MM-DD.", parse_date),
    Variable("ATRA_SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT", "The symbol partitions, comma-separated.", _symbols),
    Variable("ATRA_REFERENCE_SYMBOL", REFERENCE_SYMBOL, "The symbol the cross-asset features compare with.", _symbol),
    Variable("ATRA_STORAGE_ROOT", "", "Scale-out storage: the partitioned tables as Parquet files under this "
             "root (empty: in the DuckDB file).", str),
    Variable("ATRA_EXECUTOR", "", "in_process, multiprocess or k8s (empty: in_process, or multiprocess with "
             "ATRA_STORAGE_ROOT).", _one_of("in_process", "multiprocess", "k8s")),
    Variable("ATRA_LIGHTGBM_THREADS", "", "LightGBM threads (empty: the usable cores minus the load, 1 on two "
             "cores or fewer).", _positive_int),
    Variable("ATRA_RAW_SOURCE", "synthetic", "The raw source's kind for runs that set none (the automation's runs, a "
             "backfill, `atra run`, a run setting other source fields only): synthetic, or ccxt (the collector's "
             "tables) where a collector runs.",
             _one_of("synthetic", "ccxt")),
    Variable("ATRA_DAILY_CRON", "30 0 * * *", "When the automation sensor daily_automation materialises the raw data "
             "of the latest complete UTC day for every symbol (cron, UTC); features and labels follow once every "
             "symbol's raw data of that day is stored and passed its blocking checks.", _cron),
    Variable("ATRA_CODE_VERSION", "", "The code version registered with each model (empty: the git commit).", str),
)
BY_NAME = {v.name: v for v in VARIABLES}


def get(name: str):
    """The variable's value, parsed; its default when unset or empty (None for an empty default)."""
    variable = BY_NAME[name]
    text = os.environ.get(name, "").strip()
    if not text:
        return variable.parse(variable.default) if variable.default else None
    try:
        return variable.parse(text)
    except ValueError as error:
        raise SettingsError(f"{name}={text!r}: {error}") from None


def validate_environment() -> None:
    """Every variable parsed once; raise one :class:`SettingsError` listing all that are wrong."""
    problems = []
    for variable in VARIABLES:
        try:
            get(variable.name)
        except SettingsError as error:
            problems.append(str(error))
    if problems:
        raise SettingsError("; ".join(problems))


def exchange_credentials(exchange_id: str) -> tuple[str, str] | None:
    """The API key and secret of ``exchange_id`` from ``ATRA_<EXCHANGE>_API_KEY`` and
    ``ATRA_<EXCHANGE>_API_SECRET``; None unless both are set. Secrets: handed to the broker
    only, never logged, stored, printed or listed with the other variables."""
    prefix = f"ATRA_{exchange_id.upper()}_"
    key, secret = os.environ.get(prefix + "API_KEY", "").strip(), os.environ.get(prefix + "API_SECRET", "").strip()
    return (key, secret) if key and secret else None
