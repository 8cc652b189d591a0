"""The scale-out path through Dagster: with ATRA_STORAGE_ROOT set, runs for several partitions in
separate processes at once, each step with an in-memory database of its own, write their
partitions as Parquet files; the features of each symbol then read the others' files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import duckdb

from atra_pipeline.core.parquet_store import ParquetStore
from atra_pipeline.core.paths import PROJECT_ROOT
from atra_pipeline.core.storage import prepare

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
INTERVAL_MS = 1_000  # 1-second books: the catalogue needs them (10 s books make quote ages constant)


def _materialize_all(select: str, env: dict, config: dict | None = None) -> list[str]:
    procs = [subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "atra_pipeline.definitions", "--select", select,
         "--partition", f"2024-08-08|{symbol}", *(["--config-json", json.dumps(config)] if config else [])],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for symbol in SYMBOLS]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    return outputs


def test_partitions_written_at_once_as_files_and_read_across_symbols(tmp_path):
    home, root = tmp_path / "home", tmp_path / "store"
    home.mkdir()
    # no database file to protect: the pool lets the steps of all runs go at once
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 8\ntelemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_run_records()  # create the instance's storage once, before processes race for it
    env = {**os.environ, "DAGSTER_HOME": str(home), "ATRA_STORAGE_ROOT": str(root),
           "ATRA_DUCKDB_PATH": str(tmp_path / "unused.duckdb")}
    raw_config = {"resources": {"raw_source": {"config": {"interval_ms": INTERVAL_MS, "expect_full_day": True}}}}
    _materialize_all("raw_l2_snapshots,raw_trades", env, raw_config)
    _materialize_all("features", env)

    assert not (tmp_path / "unused.duckdb").exists()  # nothing went through a database file
    conn = duckdb.connect()
    prepare(conn)
    store = ParquetStore(root)
    store.attach(conn, ["raw_l2_snapshots", "raw_trades", "features"])
    books = dict(conn.execute("SELECT symbol, count(*) FROM raw_l2_snapshots GROUP BY symbol").fetchall())
    assert books == {s: 86_400_000 // INTERVAL_MS for s in SYMBOLS}
    features = conn.execute("SELECT symbol, count(*), count(xa_corr_1h) FROM features GROUP BY symbol ORDER BY symbol").fetchall()
    assert [(s, n) for s, n, _ in features] == [(s, 1440) for s in SYMBOLS]
    assert all(with_reference > 0 for *_, with_reference in features)  # each read the reference's files
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
    assert len(runs) == 6 and all(r.dagster_run.is_success for r in runs)
