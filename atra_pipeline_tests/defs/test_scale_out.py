"""The scale-out path through Dagster: with ATRA_STORAGE_ROOT set, runs for several partitions in
separate processes at once, each step with an in-memory database of its own, write their
partitions as Parquet files; the features of each symbol then read the others' files. The steps
after the partitions (research, live) keep their tables in the database file and read the
partitions, and the partitions' check outcomes the gate needs, from the files."""

from __future__ import annotations

import os

import dagster as dg
import duckdb
import pytest

from atra_pipeline.core.models.registry import latest
from atra_pipeline.core.quality.rules import record_check_outcomes
from atra_pipeline.core.storage.database import PartitionWindow, prepare
from atra_pipeline.core.storage.parquet import ParquetStore
from atra_pipeline.defs.common.resources import AtraDuckDB
from atra_pipeline_tests.support.dagster_cli import materialize_all
from atra_pipeline_tests.support.models import register_random_model

pytestmark = pytest.mark.slow  # several step processes per run (the multiprocess executor over partition files)

SYMBOLS = ["BTCUSDT", "ETHUSDT"]  # the reference and one other: each symbol's features read the other's files
INTERVAL_MS = 10_000  # 8,640 snapshots a day keeps the runs short (the raw gap warnings then fail: warnings)


def _materialize_all(select: str, env: dict, config: dict | None = None) -> list[str]:
    return materialize_all(select, [f"2024-08-08|{symbol}" for symbol in SYMBOLS], env, config)


def test_partitions_written_at_once_as_files_and_read_across_symbols(tmp_path):
    home, root = tmp_path / "home", tmp_path / "store"
    home.mkdir()
    # as deploy/dagster.yaml: the database-file pool at one step; the partition steps, which open
    # no database file, in their own pool with room for every run at once (as the README says to set it)
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # also creates the storage before the race
        instance.event_log_storage.set_concurrency_slots("partition_files", 8)
    env = {**os.environ, "DAGSTER_HOME": str(home), "ATRA_STORAGE_ROOT": str(root),
           "ATRA_DUCKDB_PATH": str(tmp_path / "unused.duckdb"), "ATRA_SYMBOLS": ",".join(SYMBOLS)}
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
    features = conn.execute("SELECT symbol, count(*), count(xa_corr_1h) FROM features "
                            "GROUP BY symbol ORDER BY symbol").fetchall()
    assert [(s, n) for s, n, _ in features] == [(s, 1440) for s in SYMBOLS]
    assert all(with_reference > 0 for *_, with_reference in features)  # each read the reference's files
    logged = conn.execute("SELECT symbol, passed FROM read_parquet($p) WHERE check_name = 'no_lookahead' "
                          "ORDER BY symbol", {"p": f"{root}/asset_check_log/*/*/features.parquet"}).fetchall()
    assert logged == [(s, True) for s in SYMBOLS]  # what the gate reads, kept beside the partitions
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
    assert len(runs) == 2 * len(SYMBOLS) and all(r.dagster_run.is_success for r in runs)


def test_research_tables_stay_in_the_file_and_partition_check_outcomes_in_the_store(tmp_path):
    db, root = tmp_path / "atra.duckdb", tmp_path / "store"
    resource = AtraDuckDB(database=str(db), storage_root=str(root))
    window = PartitionWindow.for_day("BTCUSDT", "2024-08-08")
    with resource.partition_connection() as conn:
        record_check_outcomes(conn, "features", window, {"no_lookahead": True, "no_infinite_values": True})
        record_check_outcomes(conn, "labels", window, {"t1_not_before_event": True})
    assert not db.exists()  # a partition step never opens the database file
    with resource.partition_connection() as conn:  # a rerun replaces that asset's outcomes, not the others'
        record_check_outcomes(conn, "features", window, {"no_lookahead": False})
    with resource.get_connection() as conn:
        model_id = register_random_model(conn, rows=60).model_id
    with resource.get_connection() as conn:  # a new connection: the research tables persisted in the file
        assert latest(conn, "approved") == model_id
        logged = conn.execute("SELECT asset, check_name, symbol, day::VARCHAR, passed FROM asset_check_log "
                              "ORDER BY ALL").fetchall()
    assert logged == [("features", "no_lookahead", "BTCUSDT", "2024-08-08", False),
                      ("labels", "t1_not_before_event", "BTCUSDT", "2024-08-08", True)]
    with duckdb.connect(str(db)) as conn:  # and the file holds no partition data
        assert conn.execute("SELECT count(*) FROM asset_check_log").fetchall()[0][0] == 0
