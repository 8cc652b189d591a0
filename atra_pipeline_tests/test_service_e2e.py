"""Dagster as a service, end to end: PostgreSQL on loopback behind ``deploy/dagster.yaml``, the
user-code server, ``dagster-webserver`` and ``dagster-daemon`` as real processes, driven through
Dagster's GraphQL Python client and looked at in headless Chromium.

The steps build on each other through module fixtures: the daily automation switched on (its
cron ticks every minute here), an asset backfill (raw data, features and labels of one date for
both symbols of the service, ordered by the daemon) while the automation collects the latest
day, then the automation's runs of that day checked, then the whole main job for one partition,
then the live sensor reacting to newly collected data. Under CI (``CI=true``, set by
``.ci/run``, which installs PostgreSQL and Chromium) nothing here may skip.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from atra_pipeline.core.models.registry import latest
from atra_pipeline.core.quality.expectations import GE_SUITES
from atra_pipeline.core.raw.collector import CollectedStore
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.paths import PROJECT_ROOT
from atra_pipeline.defs.common.partitions import DEFAULT_SYMBOLS
from atra_pipeline.defs.live.sensors import DECISION_TAG, MODEL_TAG
from atra_pipeline_tests.support.models import register_random_model
from atra_pipeline_tests.support.service import (
    LOCATION,
    DagsterService,
    PostgresServer,
    Processes,
    chromium_path,
    free_ports,
    postgres_bin_dir,
    wait_until,
)

# the service's processes, its browser and their timeouts run alone, after the parallel part of the suite
pytestmark = pytest.mark.serial

DATE = "2024-08-08"
# two symbols: the cross-asset features still read another symbol's books, and every partition
# the backfill and the automation run is a run less than with three
SYMBOLS = DEFAULT_SYMBOLS[:2]
PARTITIONS = [f"{DATE}|{symbol}" for symbol in SYMBOLS]
ONE_PARTITION = PARTITIONS[0]
PARTITIONED_ASSETS = ["raw_l2_snapshots", "raw_trades", "features", "labels"]
RESEARCH_ASSETS = ["model_candidate", "oof_predictions", "backtest", "risk_report", "approved_model"]
REPOSITORY = "__repository__"
ARTIFACTS = Path(os.environ.get("ATRA_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts"))
RUN_TIMEOUT_S = 420
AUTOMATION = "daily_automation"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")

RUN_EVENTS = """
query RunEvents($runId: ID!, $cursor: String) {
  runOrError(runId: $runId) { __typename ... on Run { status jobName tags { key value } } }
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 5000) {
    __typename
    ... on EventConnection { cursor hasMore events {
      __typename
      ... on MaterializationEvent { assetKey { path } partition
                                    metadataEntries { label ... on TextMetadataEntry { text } } }
      ... on AssetCheckEvaluationEvent { evaluation { checkName success assetKey { path } } }
      ... on ExecutionStepFailureEvent { stepKey error { message } }
      ... on MessageEvent { timestamp }
    } }
  }
}"""


def _unavailable_reason() -> str | None:
    missing = []
    if postgres_bin_dir() is None:
        missing.append("PostgreSQL server binaries (Debian package postgresql)")
    if chromium_path() is None:
        missing.append("Chromium (Debian package chromium)")
    try:
        import playwright  # noqa: F401
        import psycopg2  # noqa: F401
    except ImportError as exc:
        missing.append(f"Python package {exc.name}")
    return f"service end-to-end test needs {', '.join(missing)}; .ci/run installs them" if missing else None


class Service:
    """The running service and the GraphQL calls the tests make."""

    def __init__(self, processes: Processes, dagster: DagsterService, database: Path):
        from dagster_graphql import DagsterGraphQLClient

        self.processes, self.dagster, self.database = processes, dagster, database
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=dagster.web_port, timeout=60)

    def query(self, document: str, **variables) -> dict:
        # the client's own transport, for the queries it has no method for
        return self.client._execute(document, variables)

    def wait_for_location(self) -> None:
        def loaded():
            self.processes.check_alive()
            entries = self.query("{ workspaceOrError { ... on Workspace { locationEntries { name "
                                 "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
            entry = {e["name"]: e for e in entries["workspaceOrError"]["locationEntries"]}.get(LOCATION)
            error = entry and entry["locationOrLoadError"]
            if error and error["__typename"] == "PythonError":  # retried: the code server may still be starting
                raise RuntimeError(f"code location not loaded: {error['message']}")
            return error and error["__typename"] == "RepositoryLocation"

        wait_until(loaded, 180, f"code location {LOCATION} loaded", logs=self.processes.logs)

    def wait_for_run(self, run_id: str) -> dict:
        """Wait until the run ends; return its status, tags, materializations, check results and failures."""
        from dagster_graphql import DagsterGraphQLClientError

        def finished():
            self.processes.check_alive()
            try:
                status = self.client.get_run_status(run_id)
            except DagsterGraphQLClientError:
                return None
            return status.value in ("SUCCESS", "FAILURE", "CANCELED")

        wait_until(finished, RUN_TIMEOUT_S, f"run {run_id} finished", every_s=1.0, logs=self.processes.logs)
        return self.run_events(run_id)

    def run_events(self, run_id: str) -> dict:
        events, cursor = [], None
        while True:
            reply = self.query(RUN_EVENTS, runId=run_id, cursor=cursor)
            connection = reply["logsForRun"]
            events += connection["events"]
            cursor = connection["cursor"]
            if not connection["hasMore"]:
                break
        run = reply["runOrError"]
        return {
            "run_id": run_id, "status": run["status"], "job": run["jobName"],
            "tags": {t["key"]: t["value"] for t in run["tags"]},
            "materialized": {(e["assetKey"]["path"][-1], e["partition"]) for e in events
                             if e["__typename"] == "MaterializationEvent"},
            "checks": [(e["evaluation"]["assetKey"]["path"][-1], e["evaluation"]["checkName"],
                        e["evaluation"]["success"]) for e in events if e["__typename"] == "AssetCheckEvaluationEvent"],
            "metadata": {e["assetKey"]["path"][-1]: {m["label"]: m.get("text") for m in e["metadataEntries"]}
                         for e in events if e["__typename"] == "MaterializationEvent"},
            "failures": [(e["stepKey"], e["error"]["message"]) for e in events
                         if e["__typename"] == "ExecutionStepFailureEvent"],
            # when each kind of event first and last happened (ms): RunEnqueuedEvent, RunStartingEvent ...
            "first": {kind: min(int(e["timestamp"]) for e in events if e["__typename"] == kind)
                      for kind in {e["__typename"] for e in events if e.get("timestamp")}},
            "last": {kind: max(int(e["timestamp"]) for e in events if e["__typename"] == kind)
                     for kind in {e["__typename"] for e in events if e.get("timestamp")}},
        }

    def runs(self, tags: dict[str, str] | None = None, job: str | None = None) -> list[dict]:
        run_filter = {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        if job:
            run_filter["pipelineName"] = job
        reply = self.query("query Runs($filter: RunsFilter) { runsOrError(filter: $filter) { __typename "
                           "... on Runs { results { runId status creationTime tags { key value } } } } }",
                           filter=run_filter)
        return reply["runsOrError"]["results"]

    def switch_sensor(self, name: str, on: bool) -> str:
        """Start or stop a sensor; its status after."""
        selector = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, "sensorName": name}
        if on:
            reply = self.query(
                "mutation S($selector: SensorSelector!) { startSensor(sensorSelector: $selector) { __typename "
                "... on Sensor { sensorState { status } } ... on Error { message } } }", selector=selector)
            assert reply["startSensor"]["__typename"] == "Sensor", reply
            return reply["startSensor"]["sensorState"]["status"]
        state = self.query("query S($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) { "
                           "... on Sensor { sensorState { id } } } }", selector=selector)
        reply = self.query("mutation S($id: String!) { stopSensor(id: $id) { __typename "
                           "... on StopSensorMutationResult { instigationState { status } } "
                           "... on Error { message } } }",
                           id=state["sensorOrError"]["sensorState"]["id"])
        assert reply["stopSensor"]["__typename"] == "StopSensorMutationResult", reply
        return reply["stopSensor"]["instigationState"]["status"]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    reason = _unavailable_reason()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI=true: this test must run)")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("service")
    processes = Processes(root)
    pg_port, code_port, web_port = free_ports(3)
    postgres = PostgresServer(processes, postgres_bin_dir(), pg_port)
    database = root / "atra.duckdb"
    try:
        postgres.start()
        dagster = DagsterService(processes, root / "dagster_home",
                                 {**postgres.env(), "ATRA_DUCKDB_PATH": str(database),
                                  "ATRA_SYMBOLS": ",".join(SYMBOLS),
                                  # the daily automation's cron: every minute, so it ticks during the module
                                  "ATRA_DAILY_CRON": "* * * * *"}, code_port, web_port)
        dagster.start()
        running = Service(processes, dagster, database)
        running.wait_for_location()
        yield running
    finally:
        left = processes.stop_all()
        postgres.remove_data()
        assert not left, f"process groups still running after cleanup: {left}"


HEARTBEAT_QUERY = ("{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy "
                   "lastHeartbeatTime } } } }")


def _healthy_daemons(service):
    statuses = service.query(HEARTBEAT_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
    by_type = {s["daemonType"]: s for s in statuses if s["required"]}
    wanted = {"SENSOR", "BACKFILL", "SCHEDULER", "QUEUED_RUN_COORDINATOR"}
    return by_type if wanted <= set(by_type) and all(by_type[t]["healthy"] for t in wanted) else None


@pytest.fixture(scope="module")
def first_heartbeats(service):
    return wait_until(lambda: _healthy_daemons(service), 120, "every daemon healthy", logs=service.processes.logs)


def test_the_daemons_are_healthy(first_heartbeats):
    assert all(time.time() - s["lastHeartbeatTime"] < 120 for s in first_heartbeats.values())


@pytest.fixture(scope="module")
def automation_on(service):
    """The daily automation switched on before the backfill, so that waiting for its cron tick and
    its sensor's ticks overlaps the backfill's runs (their partitions are of another date)."""
    assert service.switch_sensor(AUTOMATION, on=True) == "RUNNING"
    return time.time()


@pytest.fixture(scope="module")
def backfill(service, automation_on):
    """An asset backfill of raw data, features and labels of one date for both symbols; the
    daemon runs every symbol's raw data before any features (they read all symbols)."""
    reply = service.query(
        "mutation Backfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {"
        " __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }",
        # partitions per asset, not partitionNames: from root partitions Dagster also targets the
        # dependent partitions of the neighbouring dates (features of the next date read this
        # date's books, labels of the previous date its barrier paths), whose other inputs are missing
        params={"partitionsByAssets": [{"assetKey": {"path": [a]},
                                        "partitions": {"ranges": [{"start": PARTITIONS[0], "end": PARTITIONS[-1]}]}}
                                       for a in PARTITIONED_ASSETS],
                "fromFailure": False, "title": "e2e: one date, every symbol"})["launchPartitionBackfill"]
    assert reply["__typename"] == "LaunchBackfillSuccess", reply
    backfill_id = reply["backfillId"]
    status_query = ("query B($id: String!) { partitionBackfillOrError(backfillId: $id) { "
                    "... on PartitionBackfill { status } } }")

    def done():
        service.processes.check_alive()
        status = service.query(status_query, id=backfill_id)["partitionBackfillOrError"]["status"]
        return status if status not in ("REQUESTED", "CANCELING", "FAILING") else None

    status = wait_until(done, RUN_TIMEOUT_S * 2, f"backfill {backfill_id} finished", every_s=2.0,
                        logs=service.processes.logs)
    runs = [service.run_events(r["runId"]) for r in service.runs({"dagster/backfill": backfill_id})]
    return {"id": backfill_id, "status": status, "runs": runs}


def test_a_backfill_of_a_date_materializes_every_partition(backfill):
    failures = [(r["run_id"], r["failures"]) for r in backfill["runs"] if r["status"] != "SUCCESS"]
    assert backfill["status"] == "COMPLETED_SUCCESS", failures
    materialized = set().union(*(r["materialized"] for r in backfill["runs"]))
    assert materialized == {(asset, p) for asset in PARTITIONED_ASSETS for p in PARTITIONS}
    checks = [(r["tags"]["dagster/partition"], *c) for r in backfill["runs"] for c in r["checks"]]
    # every asset's checks ran on every partition
    assert {(p, asset) for p, asset, *_ in checks} == {(p, a) for a in PARTITIONED_ASSETS for p in PARTITIONS}
    failed = [c for c in checks if not c[-1]]
    # the raw row-count and gap warnings hold on the synthetic day too: every check passes
    assert not failed, failed


@pytest.fixture(scope="module")
def automation(service, automation_on, backfill):
    """The daily automation's runs of the latest day (the cron ticks every minute): the raw data
    of both symbols, then their features and labels; the sensor is switched off once they have
    ended (a stored day is not collected again at the next tick)."""
    def day_done():
        service.processes.check_alive()
        runs = service.runs({"dagster/sensor_name": AUTOMATION})
        if len(runs) < 2 * len(SYMBOLS) or any(r["status"] not in FINISHED for r in runs):
            return None
        events = [service.run_events(r["runId"]) for r in runs]
        if failed := [(e["run_id"], e["failures"]) for e in events if e["status"] != "SUCCESS"]:
            raise AssertionError(f"automation runs failed: {failed}")
        return events if {a for e in events for a, _ in e["materialized"]} >= set(PARTITIONED_ASSETS) else None

    try:
        runs = wait_until(day_done, RUN_TIMEOUT_S * 2, "the daily automation's runs of the latest day", every_s=2.0,
                          logs=service.processes.logs)
    finally:
        service.switch_sensor(AUTOMATION, on=False)
    return {"runs": runs, "switched_on": automation_on}


def test_the_daily_automation_runs_the_latest_day_through_the_run_queue(automation):
    """At the cron tick, the raw data of the latest complete day for every symbol, then, once
    every symbol's books are stored, each partition's features and labels in one run: every run
    queued (the queued run coordinator), dequeued by the daemon, and successful."""
    runs = automation["runs"]
    days = {r["tags"]["dagster/partition/date"] for r in runs}
    assert len(days) == 1, days
    day = days.pop()
    # yesterday (or the day before, past midnight)
    assert (pd.Timestamp.now(tz="UTC").normalize() - pd.Timestamp(day, tz="UTC")).days in (1, 2)
    partitions = {f"{day}|{s}" for s in SYMBOLS}
    by_assets: dict[frozenset, list[dict]] = {}
    for run in runs:
        by_assets.setdefault(frozenset(a for a, _ in run["materialized"]), []).append(run)
    raw = by_assets.pop(frozenset({"raw_l2_snapshots", "raw_trades"}))
    downstream = by_assets.pop(frozenset({"features", "labels"}))
    assert not by_assets, by_assets  # nothing else: the research is not automated
    for group, assets in ((raw, ("raw_l2_snapshots", "raw_trades")), (downstream, ("features", "labels"))):
        assert {m for r in group for m in r["materialized"]} == {(a, p) for a in assets for p in partitions}
        assert len(group) == len(SYMBOLS)  # one run per partition
    for run in runs:
        assert run["status"] == "SUCCESS" and run["tags"]["dagster/sensor_name"] == AUTOMATION, run["failures"]
        # through the queue: enqueued (QUEUED), then launched by the daemon's queued run coordinator
        # (STARTING, its run launcher), then started by the run worker
        assert run["first"]["RunEnqueuedEvent"] <= run["first"]["RunStartingEvent"] <= run["first"]["RunStartEvent"]
        # every blocking check passed (the distribution suites warn: a synthetic day against another's history)
        warnings_only = {s.check for s in GE_SUITES}
        assert all(passed for _, name, passed in run["checks"] if name not in warnings_only), run["checks"]
    # features of any symbol only once every symbol's raw data had been written
    assert min(r["first"]["RunEnqueuedEvent"] for r in downstream) > max(r["last"]["RunSuccessEvent"] for r in raw)
    ended = max(r["last"]["RunSuccessEvent"] for r in runs) / 1000
    print(f"daily automation: {len(runs)} runs, the last ended {ended - automation['switched_on']:.0f} s after "
          "switching on")


@pytest.fixture(scope="module")
def pipeline_run(service, backfill, automation):
    """The main job, every asset, for one partition (its features read the backfilled raw data of the
    other symbol), submitted through the GraphQL client and dequeued by the daemon; the candidate
    trains on the date's labels (not the automation's day)."""
    date, symbol = ONE_PARTITION.split("|")
    with warnings.catch_warnings():
        # the per-dimension tags are how Dagster itself (the UI, backfills) names a multi-partition
        # key, and the run needs them; the client's tag-key check calls the slash non-compliant
        warnings.filterwarnings("ignore", "Non-compliant tag keys", DeprecationWarning)
        run_id = service.client.submit_job_execution(
            "main", repository_location_name=LOCATION, repository_name=REPOSITORY,
            run_config={"ops": {"model_candidate": {"config": {"trials": 4, "start_date": DATE, "end_date": DATE}}}},
            tags={"dagster/partition": ONE_PARTITION, "dagster/partition/date": date,
                  "dagster/partition/symbol": symbol})
    return service.wait_for_run(run_id)


def test_the_pipeline_runs_for_one_partition_with_every_check_passed(pipeline_run):
    assert pipeline_run["status"] == "SUCCESS", pipeline_run["failures"]
    assert pipeline_run["materialized"] == ({(a, ONE_PARTITION) for a in PARTITIONED_ASSETS}
                                            | {(a, None) for a in RESEARCH_ASSETS})
    checks = pipeline_run["checks"]
    assert set(PARTITIONED_ASSETS) | {"model_candidate", "backtest", "approved_model"} <= {c[0] for c in checks}
    # the data and model checks all pass; the gate's rules are checks of the decision: all pass
    # exactly when it approved (a 4-trial model on one day may well be rejected, which is right)
    assert not [c for c in checks if c[0] != "approved_model" and not c[-1]]
    gate = {name: passed for asset, name, passed in checks if asset == "approved_model"}
    decision = pipeline_run["metadata"]["approved_model"]["decision"]
    assert decision in ("approved", "rejected") and all(gate.values()) == (decision == "approved"), (decision, gate)
    assert gate["features_no_lookahead"]  # read from the check outcomes the features step recorded


def test_materializations_and_check_status_read_back_through_the_asset_api(service, pipeline_run):
    """What the UI shows: each asset's materialization of the partition, from this run, and the
    latest check executions passed."""
    reply = service.query(
        "query A($keys: [AssetKeyInput!], $partitions: [String!]) { assetNodes(assetKeys: $keys) { assetKey { path } "
        "assetMaterializations(partitions: $partitions) { runId partition } "
        "assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } } "
        "} }",
        keys=[{"path": [a]} for a in PARTITIONED_ASSETS], partitions=[ONE_PARTITION])
    nodes = {n["assetKey"]["path"][-1]: n for n in reply["assetNodes"]}
    assert set(nodes) == set(PARTITIONED_ASSETS)
    for asset, node in nodes.items():
        assert node["assetMaterializations"][0]["runId"] == pipeline_run["run_id"], asset  # newest first
        statuses = {c["name"]: (c["executionForLatestMaterialization"] or {}).get("status")
                    for c in node["assetChecksOrError"]["checks"]}
        assert statuses and set(statuses.values()) == {"SUCCEEDED"}, (asset, statuses)


def _collect_next_minutes(database: Path, minutes: int) -> pd.Timestamp:
    """New collected data: the first minutes of the next day for every symbol, appended as the
    collector does; returns the newest snapshot time."""
    day = (pd.Timestamp(DATE) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    end = pd.Timestamp(day) + pd.Timedelta(minutes=minutes)
    store = CollectedStore(lambda: duckdb.connect(str(database)))
    newest = None
    for symbol in DEFAULT_SYMBOLS:
        book, trades = generate_market_day(symbol, day)
        book, trades = book[book["ts"] < end], trades[trades["ts"] < end]
        store.append(book, trades)
        newest = book["ts"].max()
    return newest


@pytest.fixture(scope="module")
def sensor_run(service, pipeline_run):
    """New data land, the live sensor is switched on, and it launches the live run."""
    with duckdb.connect(str(service.database)) as conn:
        model_id = latest(conn, "approved")
        if model_id is None:  # the gate may reject a 4-trial candidate on one day; the live path needs one approved
            model_id = register_random_model(conn).model_id
    _collect_next_minutes(service.database, minutes=5)
    assert service.switch_sensor("live_sensor", on=True) == "RUNNING"
    started = time.time()
    launched = wait_until(lambda: service.runs({"dagster/sensor_name": "live_sensor"}, job="live"), 120,
                          "the live sensor launching a run", logs=service.processes.logs)
    run = service.wait_for_run(launched[0]["runId"])
    time.sleep(15)  # more sensor ticks (10 s interval) after the run: the decision time is done now
    return {"model_id": model_id, "latency_s": launched[0]["creationTime"] - started, "run": run,
            "launched": len(service.runs({"dagster/sensor_name": "live_sensor"}, job="live"))}


def test_the_live_sensor_launches_a_run_when_new_data_land(sensor_run):
    run = sensor_run["run"]
    print(f"live sensor: run created {sensor_run['latency_s']:.1f} s after the sensor was switched on")
    assert run["status"] == "SUCCESS", run["failures"]
    assert run["tags"][MODEL_TAG] == sensor_run["model_id"]
    assert pd.Timestamp(run["tags"][DECISION_TAG]) == pd.Timestamp(DATE) + pd.Timedelta(days=1, minutes=4)
    # the live job scores, then takes one step of the executor (exits, kill switch, entries)
    assert run["materialized"] == {("live_signals", None), ("execution", None)}
    assert sorted(run["checks"]) == [("execution", "ledger_reconciles", True),
                                     ("execution", "orders_within_limits", True),
                                     ("live_signals", "signals_use_the_approved_model", True)]
    assert sensor_run["launched"] == 1  # one decision time, one run: later ticks see its signals


def test_the_ui_shows_the_asset_graph_and_check_status(service, pipeline_run):
    """Headless Chromium on the webserver: the global asset graph, its groups expanded, renders a
    node for every asset, and the features asset's page shows each check's latest status, passed."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from atra_pipeline.core.features.checks import FEATURE_CHECKS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
    assets = [*PARTITIONED_ASSETS, *RESEARCH_ASSETS, "live_signals", "execution"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            # the UI's community sign-up dialog opens on its own after a while and takes the clicks
            page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                                     lambda: page.get_by_role("button", name="Skip").click())
            page.goto(f"{service.dagster.url}/asset-groups")
            page.get_by_text("Global asset lineage").wait_for()
            page.get_by_text("raw_l2_snapshots", exact=True).or_(page.get_by_text("raw", exact=True)).first.wait_for()
            for attempt in range(3):  # a sign-up dialog popping up (and Skipped) closes the menu: open it again
                page.mouse.click(1100, 900, button="right")  # the graph's background menu
                try:
                    page.get_by_role("menuitem", name="Expand all groups").click(timeout=15_000)
                    break
                except PlaywrightTimeout:
                    if attempt == 2:
                        raise
            for asset in assets:
                page.get_by_text(asset, exact=True).first.wait_for(state="visible")
            page.screenshot(path=str(ARTIFACTS / "asset_graph.png"))
            graph_visible = {a: any(n.is_visible() for n in page.get_by_text(a, exact=True).all()) for a in assets}

            page.goto(f"{service.dagster.url}/assets/features?view=checks")
            for check in FEATURE_CHECKS:
                page.get_by_text(check, exact=True).first.wait_for(state="visible")
            page.get_by_text("Passed", exact=False).first.wait_for(state="visible")
            page.screenshot(path=str(ARTIFACTS / "features_checks.png"))
            checks_text = page.inner_text("body")
        finally:
            browser.close()
    assert all(graph_visible.values()), graph_visible
    # the check list gives each check's latest status; the selected check's panel its evaluation
    features_checks = len(FEATURE_CHECKS) + sum(suite.asset == "features" for suite in GE_SUITES)
    assert checks_text.count("Succeeded") == features_checks and "Passed" in checks_text, checks_text[:2000]
    assert "Failed" not in checks_text and "Not Evaluated" not in checks_text


def test_the_daemons_keep_beating(service, first_heartbeats):
    """Last in the module: the daemons have beaten again while the tests above ran, so this
    seldom waits (a daemon beats every 30 s or so)."""
    def newer():
        now = _healthy_daemons(service)
        return now and all(now[t]["lastHeartbeatTime"] > first_heartbeats[t]["lastHeartbeatTime"]
                           for t in first_heartbeats)

    wait_until(newer, 120, "a newer heartbeat of every daemon", logs=service.processes.logs)
