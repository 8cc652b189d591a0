"""Partition files on an object store: the same contract as a local root, against an S3-compatible
server on 127.0.0.1 (moto's server mode), DuckDB reading through the fsspec filesystem
registered with each connection (no httpfs extension). An empty store attaches and reads as the
schema's empty tables, a rewrite replaces the object whole, a refused write stores nothing, other
connections and processes read what one wrote, and a Dagster run writes its partition there
with no database file."""

from __future__ import annotations

import multiprocessing as mp
import os
import uuid

import dagster as dg
import duckdb
import fsspec
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from atra_pipeline.core.raw.schema import L2_COLUMNS
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import PartitionWindow, prepare, replace_partition
from atra_pipeline.core.storage.parquet import STORE_TABLES, ParquetStore, attach_store, store_of
from atra_pipeline_tests.support.dagster_cli import materialize_all

pytestmark = pytest.mark.slow  # an S3 server, writer processes and a `dagster asset materialize` process

DAY = "2024-08-08"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """An S3 server on a free port of 127.0.0.1, and the AWS SDK's variables pointing at it (also
    for the processes the tests start); no profile or instance metadata is consulted."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    nowhere = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                            "AWS_CONFIG_FILE": str(nowhere), "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
                            "AWS_EC2_METADATA_DISABLED": "true"}.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        _forget_s3_clients()  # one made before this server would point elsewhere
        yield f"http://{host}:{port}"
        _forget_s3_clients()
    server.stop()


def _forget_s3_clients() -> None:
    fsspec.get_filesystem_class("s3").clear_instance_cache()


@pytest.fixture
def bucket(s3_endpoint) -> str:
    """A new empty bucket for each test; its name (the store's root is under it)."""
    name = f"atra-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return name


def etags(bucket: str) -> dict[str, str]:
    """Every object in ``bucket`` with its ETag (its content's), listed afresh by a client of its own."""
    found = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False).find(bucket, detail=True)
    return {key: info["ETag"] for key, info in found.items()}


def objects(bucket: str) -> list[str]:
    return sorted(etags(bucket))


def connection() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    prepare(conn)
    return conn


def book(symbol: str = "BTCUSDT", interval_ms: int = 60_000) -> pd.DataFrame:
    return generate_market_day(symbol, DAY, interval_ms=interval_ms)[0]


def test_an_empty_store_attaches_and_reads_as_the_schema_tables(bucket, tmp_path):
    """No file yet, on an object store as in a directory: every table reads as the schema's."""
    schema = connection()
    # every store table the schema creates (features' table is made by its first build)
    tables = [name for (name,) in schema.execute("SELECT table_name FROM duckdb_tables()").fetchall()
              if name in STORE_TABLES]
    assert len(tables) == len(STORE_TABLES) - 1
    expected = {t: schema.execute(f"DESCRIBE {t}").fetchall() for t in tables}
    roots = [f"s3://{bucket}/store", f"memory://atra-{uuid.uuid4().hex}", str(tmp_path / "absent"),
             f"file://{tmp_path}"]
    for root in roots:
        conn = connection()
        attach_store(conn, root)
        for table in tables:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], (root, table)
            assert conn.execute(f"DESCRIBE {table}").fetchall() == expected[table], (root, table)
        assert store_of(conn).root == root.removeprefix("file://")
    assert objects(bucket) == []  # attaching writes nothing


def test_a_partition_is_written_replaced_and_read_back_on_s3(bucket):
    conn = connection()
    attach_store(conn, f"s3://{bucket}/store")
    window = PartitionWindow.for_day("BTCUSDT", DAY)
    day = book()
    # through the pipeline's own entry point: the connection's store takes the write
    assert replace_partition(conn, "raw_l2_snapshots", day, L2_COLUMNS, window) == {"deleted": 0, "inserted": 1440}
    assert conn.execute("SELECT count(*) FROM raw_l2_snapshots").fetchall() == [(1440,)]
    half = day.iloc[:720]
    assert replace_partition(conn, "raw_l2_snapshots", half, L2_COLUMNS, window) == {"deleted": 1440, "inserted": 720}
    # the same connection reads the replaced object at once, a new one too
    last = half["ts"].max().to_pydatetime()
    assert conn.execute("SELECT count(*), max(ts) FROM raw_l2_snapshots").fetchall() == [(720, last)]
    other = connection()
    attach_store(other, f"s3://{bucket}/store")
    assert other.execute("SELECT count(*), max(ts) FROM raw_l2_snapshots").fetchall() == [(720, last)]
    assert other.execute("SELECT count(*) FROM raw_trades").fetchall() == [(0,)]  # still no file: still empty
    # one object, at the partition's path: nothing written beside it
    assert objects(bucket) == [f"{bucket}/store/raw_l2_snapshots/date={DAY}/symbol=BTCUSDT/part.parquet"]
    assert ParquetStore(f"s3://{bucket}/store/").path("raw_l2_snapshots", window) == f"s3://{objects(bucket)[0]}"


def test_rows_outside_the_window_are_refused_and_nothing_is_written(bucket):
    store = ParquetStore(f"s3://{bucket}/store")
    window = PartitionWindow.for_day("BTCUSDT", DAY)
    day = book()
    next_day = day.assign(ts=day["ts"] + pd.Timedelta(days=1))
    with pytest.raises(ValueError, match="outside partition"):
        store.replace_partition(connection(), "raw_l2_snapshots", next_day, L2_COLUMNS, window)
    assert objects(bucket) == []
    store.replace_partition(connection(), "raw_l2_snapshots", day, L2_COLUMNS, window)
    stored = etags(bucket)
    with pytest.raises(ValueError, match="outside partition"):  # a refused rewrite keeps the old object
        store.replace_partition(connection(), "raw_l2_snapshots", pd.concat([day.iloc[:10], next_day]), L2_COLUMNS,
                                window)
    conn = connection()
    store.attach(conn, ["raw_l2_snapshots"])
    assert etags(bucket) == stored
    assert conn.execute("SELECT count(*) FROM raw_l2_snapshots").fetchall() == [(1440,)]


def test_a_write_that_fails_half_way_keeps_the_old_object(bucket):
    """The file is complete before it is uploaded: DuckDB writing to the object store directly
    would leave what it had written (an empty object here) in place of the old one."""
    store = ParquetStore(f"s3://{bucket}/store")
    window = PartitionWindow.for_day("BTCUSDT", DAY)
    conn = connection()
    day = book()
    store.replace_partition(conn, "raw_l2_snapshots", day, L2_COLUMNS, window)
    before = etags(bucket)
    conn.register("day", day)
    # a source that fails only while the file is being written
    conn.execute("CREATE TEMP VIEW failing AS SELECT * REPLACE (CASE WHEN ts < TIMESTAMP '2024-08-08 12:00' "
                 "THEN bid_px_0 ELSE error('source lost') END AS bid_px_0) FROM day")
    with pytest.raises(duckdb.Error, match="source lost"):
        store.write(conn, "raw_l2_snapshots", "failing", L2_COLUMNS, window)
    assert etags(bucket) == before
    reader = connection()
    store.attach(reader, ["raw_l2_snapshots"])
    assert reader.execute("SELECT count(*) FROM raw_l2_snapshots").fetchall() == [(1440,)]


def _write_elsewhere(root: str, symbol: str) -> int:
    """A step on another machine: its own process, S3 client and in-memory DuckDB."""
    conn = connection()
    attach_store(conn, root)
    day = book(symbol)
    replace_partition(conn, "raw_l2_snapshots", day, L2_COLUMNS, PartitionWindow.for_day(symbol, DAY))
    return len(day)


def test_a_connection_reads_what_other_connections_and_processes_wrote(bucket):
    root = f"s3://{bucket}/store"
    writer, reader = connection(), connection()
    attach_store(writer, root)
    replace_partition(writer, "raw_l2_snapshots", book("BTCUSDT"), L2_COLUMNS, PartitionWindow.for_day("BTCUSDT", DAY))
    attach_store(reader, root)
    assert reader.execute("SELECT symbol, count(*) FROM raw_l2_snapshots GROUP BY ALL").fetchall() == [
        ("BTCUSDT", 1440)]
    # another process writes a partition after the reader listed the files: the reader's next
    # query lists them again and sees it (no listing is cached)
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_write_elsewhere, (root, "ETHUSDT")) == 1440
    assert reader.execute("SELECT symbol, count(*) FROM raw_l2_snapshots GROUP BY ALL ORDER BY ALL").fetchall() == [
        ("BTCUSDT", 1440), ("ETHUSDT", 1440)]


def test_a_dagster_run_writes_its_partition_to_the_object_store(bucket, tmp_path):
    """The asset path with ATRA_STORAGE_ROOT=s3://...: one partition's raw data in its own
    ``dagster asset materialize`` process, its rows and check outcomes stored as objects and no
    database file opened."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    root = f"s3://{bucket}/store"
    env = {**os.environ, "DAGSTER_HOME": str(home), "ATRA_STORAGE_ROOT": root,
           "ATRA_DUCKDB_PATH": str(tmp_path / "unused.duckdb"),
           "ATRA_EXECUTOR": "in_process"}  # steps in separate processes are test_scale_out's (seconds each)
    # 1-second books, as the default: 10-second ones fail gaps_within_limit
    config = {"resources": {"raw_source": {"config": {"interval_ms": 1_000, "expect_full_day": True}}}}
    materialize_all("raw_l2_snapshots,raw_trades", [f"{DAY}|BTCUSDT"], env, config)

    assert not (tmp_path / "unused.duckdb").exists()
    partition = f"date={DAY}/symbol=BTCUSDT"
    assert {f"{bucket}/store/raw_l2_snapshots/{partition}/part.parquet",
            f"{bucket}/store/raw_trades/{partition}/part.parquet",
            f"{bucket}/store/asset_check_log/{partition}/raw_l2_snapshots.parquet"} <= set(objects(bucket))
    conn = connection()
    attach_store(conn, root)
    assert conn.execute("SELECT symbol, count(*) FROM raw_l2_snapshots GROUP BY ALL").fetchall() == [
        ("BTCUSDT", 86_400)]
    assert conn.execute("SELECT count(*) FROM raw_trades").fetchall()[0][0] > 0
    outcomes = conn.execute("SELECT count(*), bool_and(passed) FROM asset_check_log WHERE asset = 'raw_l2_snapshots'")
    checked, all_passed = outcomes.fetchall()[0]
    assert checked > 0 and all_passed
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert [r.dagster_run.is_success for r in instance.get_run_records()] == [True]
