"""Every ATRA_* variable is read in one place, and a value that cannot be used is refused with the
variable's name, its value and what it must be."""

from __future__ import annotations

import pytest

from atra_pipeline.core import settings


@pytest.mark.parametrize("name, value, says", [
    ("ATRA_START_DATE", "yesterday", "ATRA_START_DATE='yesterday': a date is YYYY-MM-DD"),
    ("ATRA_START_DATE", "2024-02-30", "ATRA_START_DATE='2024-02-30': day is out of range"),
    ("ATRA_SYMBOLS", "BTC-USDT", "ATRA_SYMBOLS='BTC-USDT': comma-separated symbols"),
    ("ATRA_REFERENCE_SYMBOL", "BTCUSDT,ETHUSDT", "ATRA_REFERENCE_SYMBOL='BTCUSDT,ETHUSDT': one symbol"),
    ("ATRA_EXECUTOR", "celery", "ATRA_EXECUTOR='celery': one of in_process, multiprocess, k8s"),
    ("ATRA_LIGHTGBM_THREADS", "0", "ATRA_LIGHTGBM_THREADS='0': a whole number of at least 1"),
    ("ATRA_RAW_SOURCE", "file", "ATRA_RAW_SOURCE='file': one of synthetic, ccxt"),
    ("ATRA_DAILY_CRON", "30 0 * *", "ATRA_DAILY_CRON='30 0 * *': a cron expression of five fields"),
    ("ATRA_DAILY_CRON", "30 24 * * *", "ATRA_DAILY_CRON='30 24 * * *': hour field '24': numbers 0-23"),
    ("ATRA_DAILY_CRON", "*/0 * * * *", "ATRA_DAILY_CRON='*/0 * * * *': minute field '*/0'"),
])
def test_a_bad_value_is_refused_with_the_variables_name(monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(settings.SettingsError) as error:
        settings.get(name)
    assert says in str(error.value)


def test_a_duckdb_path_at_a_file_that_is_not_a_database_is_refused(monkeypatch, tmp_path):
    csv = tmp_path / "trades.csv"
    csv.write_text("ts,price\n2024-08-01,1\n")  # before: 86,400 rows "written", none stored
    monkeypatch.setenv("ATRA_DUCKDB_PATH", str(csv))
    with pytest.raises(settings.SettingsError, match="the file exists and is not a DuckDB database"):
        settings.get("ATRA_DUCKDB_PATH")
    monkeypatch.setenv("ATRA_DUCKDB_PATH", str(tmp_path))
    with pytest.raises(settings.SettingsError, match="a directory"):
        settings.get("ATRA_DUCKDB_PATH")
    monkeypatch.setenv("ATRA_DUCKDB_PATH", str(tmp_path / "new.duckdb"))  # not there yet: created on first use
    assert settings.get("ATRA_DUCKDB_PATH") == tmp_path / "new.duckdb"


def test_unset_gives_the_declared_default_and_validation_lists_every_bad_variable(monkeypatch):
    for variable in settings.VARIABLES:
        monkeypatch.delenv(variable.name, raising=False)
    assert settings.get("ATRA_SYMBOLS") == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert settings.get("ATRA_START_DATE") == "2020-01-01" and settings.get("ATRA_EXECUTOR") is None
    assert settings.get("ATRA_DAILY_CRON") == "30 0 * * *" and settings.get("ATRA_RAW_SOURCE") == "synthetic"
    settings.validate_environment()
    monkeypatch.setenv("ATRA_START_DATE", "yesterday")
    monkeypatch.setenv("ATRA_LIGHTGBM_THREADS", "many")
    with pytest.raises(settings.SettingsError) as error:
        settings.validate_environment()
    assert "ATRA_START_DATE='yesterday'" in str(error.value) and "ATRA_LIGHTGBM_THREADS='many'" in str(error.value)


def test_no_module_but_settings_reads_an_atra_variable():
    import re

    from atra_pipeline.core.storage.paths import PROJECT_ROOT

    readers = []
    for path in (PROJECT_ROOT / "atra_pipeline").rglob("*.py"):
        text = path.read_text()
        # a name built at run time (f"ATRA_{exchange}_API_KEY") counts: any ATRA_ text beside an environment read
        if (re.search(r"\benviron\b|\bgetenv\b", text) and re.search(r"f?[\"']ATRA_", text)
                and path.name != "settings.py"):
            readers.append(path.relative_to(PROJECT_ROOT).as_posix())
    assert readers == [], readers


def test_exchange_credentials_need_both_halves(monkeypatch):
    monkeypatch.setenv("ATRA_BINANCE_API_KEY", "k")
    monkeypatch.delenv("ATRA_BINANCE_API_SECRET", raising=False)
    assert settings.exchange_credentials("binance") is None
    monkeypatch.setenv("ATRA_BINANCE_API_SECRET", " s ")
    assert settings.exchange_credentials("binance") == ("k", "s")
