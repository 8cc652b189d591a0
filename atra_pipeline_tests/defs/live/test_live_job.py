"""The live job through Dagster: the sensor launches it for a new decision time, the asset writes
signals with the approved model, the next tick does not launch the same decision time again,
and nothing is scored without an approved model."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from atra_pipeline.core.live.scoring import score
from atra_pipeline.core.models.registry import decide, load_model
from atra_pipeline.core.raw.synthetic import generate_market_day
from atra_pipeline.core.storage.database import prepare
from atra_pipeline.defs import live
from atra_pipeline.defs.common.resources import AtraDuckDB
from atra_pipeline.defs.live.sensors import DECISION_TAG, exit_sensor, live_sensor
from atra_pipeline_tests.core.live import test_live as core_live
from atra_pipeline_tests.support.materialize import check_results

pytestmark = pytest.mark.slow  # each test stores a research day and a model first

@pytest.fixture(scope="module")
def market():
    return {(s, d): generate_market_day(s, d) for s in core_live.SYMBOLS for d in (core_live.PREVIOUS, core_live.DAY)}


@pytest.fixture
def db(tmp_path, market, monkeypatch):
    monkeypatch.setenv("ATRA_SYMBOLS", ",".join(core_live.SYMBOLS))
    path = tmp_path / "atra.duckdb"
    with duckdb.connect(str(path)) as conn:
        prepare(conn)
        core_live._store(conn, market, live_in_raw=False)
        model = core_live._model(conn)
    return path, model.model_id


def _evaluate(path, instance=None):
    if instance is not None:
        return live_sensor(dg.build_sensor_context(instance=instance,
                                                   resources={"duckdb": AtraDuckDB(database=str(path))}))
    with dg.DagsterInstance.ephemeral() as fresh:
        return _evaluate(path, fresh)


def test_a_failed_live_run_is_retried_under_a_new_key_and_an_active_one_waits(db):
    from atra_pipeline.definitions import defs

    path, model_id = db
    with duckdb.connect(str(path)) as conn:
        decide(conn, model_id, True, "test")
    with dg.DagsterInstance.ephemeral() as instance:
        first = _evaluate(path, instance)
        job = defs.resolve_job_def("live")
        instance.create_run_for_job(job_def=job, run_config=first.run_config, tags=first.tags,
                                    status=dg.DagsterRunStatus.FAILURE)
        retry = _evaluate(path, instance)
        assert retry.run_key.endswith("|attempt-2") and retry.tags == first.tags
        instance.create_run_for_job(job_def=job, run_config=retry.run_config, tags=retry.tags,
                                    status=dg.DagsterRunStatus.STARTED)
        waiting = _evaluate(path, instance)
        assert isinstance(waiting, dg.SkipReason) and "in progress" in waiting.skip_message


def test_sensor_launches_once_per_decision_time_with_the_approved_model(db):
    path, model_id = db
    assert isinstance(_evaluate(path), dg.SkipReason)  # nothing approved yet: no live run
    with duckdb.connect(str(path)) as conn:
        decide(conn, model_id, True, "test")
    request = _evaluate(path)
    assert isinstance(request, dg.RunRequest) and request.tags[DECISION_TAG] == "2024-08-08T02:01:00"
    again = _evaluate(path)  # no signals yet: asked again, under the same run key (Dagster launches it once)
    assert isinstance(again, dg.RunRequest) and again.run_key == request.run_key
    assert request.run_key.endswith("|attempt-1")

    result = dg.materialize(live.assets, resources={"duckdb": AtraDuckDB(database=str(path))},
                            run_config=request.run_config, selection=["live_signals"], raise_on_error=False)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    assert check_results(result) == {"live_signals.signals_use_the_approved_model": True}
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute("SELECT symbol, model_id, decision_ts FROM live_signals ORDER BY symbol").fetchall()
    assert [(s, m) for s, m, _ in rows] == [("BTCUSDT", model_id), ("ETHUSDT", model_id)]
    assert all(pd.Timestamp(t) == pd.Timestamp("2024-08-08 02:01") for *_, t in rows)
    skip = _evaluate(path)
    assert isinstance(skip, dg.SkipReason) and "already written" in skip.skip_message


def test_the_live_asset_refuses_without_an_approved_model(db):
    path, _ = db
    result = dg.materialize(live.assets, resources={"duckdb": AtraDuckDB(database=str(path))},
                            selection=["live_signals"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "no approved model" in failure.event_specific_data.error.to_string()


def test_the_exit_sensor_ticks_while_open_positions_have_new_snapshots(db):
    path, model_id = db
    resources = {"duckdb": AtraDuckDB(database=str(path))}
    with dg.DagsterInstance.ephemeral() as instance:
        assert isinstance(exit_sensor(dg.build_sensor_context(instance=instance, resources=resources)), dg.SkipReason)
        with duckdb.connect(str(path)) as conn:  # a position judged up to 02:00, collected data to 02:01:30
            conn.execute("INSERT INTO live_positions (position_id, broker, model_id, symbol, side, qty, decision_ts, "
                         "barrier_width, entry_mid, up, down, vertical_ts, status, checked_to) "
                         "VALUES ('p', 'paper', ?, 'ETHUSDT', 1, 1, '2024-08-08 01:59', 0.002, 2600, 0.002, -0.002, "
                         "'2024-08-08 02:04', 'open', '2024-08-08 02:00')", [model_id])
        request = exit_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(request, dg.RunRequest) and request.run_key == "tick|2024-08-08T02:01:30"
        with duckdb.connect(str(path)) as conn:
            conn.execute("UPDATE live_positions SET checked_to = '2024-08-08 02:01:30'")
        assert isinstance(exit_sensor(dg.build_sensor_context(instance=instance, resources=resources)), dg.SkipReason)


def _event_with_a_side(path, model_id) -> pd.Timestamp:
    """The newest decision time where the live path's event filter fires with a side (scored by it)."""
    with duckdb.connect(str(path)) as conn:
        record = load_model(conn, model_id)
        for t in pd.date_range("2024-08-08 01:31", "2024-08-08 02:01", freq="1min")[::-1]:
            signals = score(conn, t, record)
            if (signals["event"] & (signals["side"] != 0)).any():
                return t
    raise AssertionError("no event with a side in the fixture's last half hour")


def test_execution_decides_the_newest_signals_on_paper_within_limits(db):
    from atra_pipeline.defs import execution

    path, model_id = db
    with duckdb.connect(str(path)) as conn:
        decide(conn, model_id, True, "test")
    decision = _event_with_a_side(path, model_id)
    resources = {"duckdb": AtraDuckDB(database=str(path))}
    live_config = {"ops": {"live_signals": {"config": {"decision_ts": decision.isoformat()}}}}
    assert dg.materialize(live.assets, resources=resources, selection=["live_signals"], run_config=live_config).success
    config = {"ops": {"execution": {"config": {"max_data_age_s": 1e12, "max_signal_age_s": 1e12}}}}  # replayed data
    first = dg.materialize(execution.assets, resources=resources, run_config=config)
    again = dg.materialize(execution.assets, resources=resources, run_config=config)  # a retried run
    for result in (first, again):
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
        assert check_results(result) == {"execution.orders_within_limits": True, "execution.ledger_reconciles": True}
    with duckdb.connect(str(path), read_only=True) as conn:
        decisions = conn.execute("SELECT * FROM live_decisions ORDER BY symbol").fetchdf()
        orders = conn.execute("SELECT count(*), count(DISTINCT client_order_id), count(*) FILTER (status = 'filled') "
                              "FROM orders").fetchall()[0]
        positions = conn.execute("SELECT count(*), max(qty * entry_px), list(DISTINCT exit_reason) FROM live_positions"
                                 ).fetchall()[0]
        net = conn.execute("SELECT sum(side * qty) FROM fills").fetchall()[0][0]
    assert list(decisions["symbol"]) == core_live.SYMBOLS and (decisions["decision_ts"] == decision).all()
    taken = decisions[decisions["taken"]]
    assert len(taken) >= 1 and (taken["expected_edge_bps"] > 0).all()  # the event with a side cleared its costs
    assert positions[0] == len(taken)  # one position per entry: none doubled by the retry
    assert positions[1] <= 50_000 * (1 + 1e-9)  # the strategy's cap, within the rails' order limit
    # the retry's exit step found the replayed day's vertical barriers long past (the clock is today's)
    # and closed every position: an entry and an exit order each, all filled
    assert positions[2] == ["vertical"] and orders == (2 * len(taken),) * 3 and abs(net) < 1e-9


def test_a_failed_live_run_is_alerted_with_a_log_line_and_the_counter(tmp_path, capfd):
    from atra_pipeline.core.live.observability import LIVE_FAILURES
    from atra_pipeline.defs.live.sensors import live_failure_alert

    with dg.DagsterInstance.ephemeral() as instance:
        failed = dg.materialize(live.assets, selection=["live_signals"], instance=instance, raise_on_error=False,
                                resources={"duckdb": AtraDuckDB(database=str(tmp_path / "empty.duckdb"))})
        assert not failed.success
        before = LIVE_FAILURES._value.get()
        context = dg.build_run_status_sensor_context(
            sensor_name="live_failure_alert", dagster_event=failed.get_run_failure_event(), dagster_instance=instance,
            dagster_run=failed.dagster_run).for_run_failure()
        live_failure_alert(context)
    assert LIVE_FAILURES._value.get() == before + 1
    assert f'"run_id": "{failed.run_id}"' in capfd.readouterr().err
