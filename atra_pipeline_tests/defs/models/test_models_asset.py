"""The models stage through Dagster on constructed labels and features: a candidate with its
study, folds and SHAP table; the gate approving a good candidate, rejecting a noise one (the
approved model stays live); a partition that failed a blocking check left out of training, with
the database file free for other writers while the studies train."""

from __future__ import annotations

from dataclasses import asdict

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from atra_pipeline.core.features.build import ensure_features_table
from atra_pipeline.core.features.registry import feature_columns
from atra_pipeline.core.labels.partition import LABEL_COLUMNS, LabelSettings
from atra_pipeline.core.models.registry import latest, load_model
from atra_pipeline.core.models.spec import ModelSpec
from atra_pipeline.core.storage.database import PartitionWindow, prepare
from atra_pipeline.core.storage.partition_settings import record_partition_settings
from atra_pipeline.defs import backtest, gate, models
from atra_pipeline.defs.common.resources import AtraDuckDB
from atra_pipeline_tests.support.materialize import check_results

DAYS = ("2024-08-06", "2024-08-07")
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def store(db, signal: float, seed: int, labels: LabelSettings = LabelSettings(),
          record_settings: bool = True) -> None:
    """Every 2 minutes an event per symbol; labels win more often when ``pressure_imbalance_5``
    agrees (``signal``); the features look-ahead check logged as passed, and the
    settings each partition was built with recorded as the assets record them."""
    rng = np.random.default_rng(seed)
    with duckdb.connect(str(db)) as conn:
        prepare(conn)
        ensure_features_table(conn)
        conn.execute("DELETE FROM features; DELETE FROM labels; DELETE FROM asset_check_log; "
                     "DELETE FROM partition_settings")
        for day in DAYS:
            for symbol in SYMBOLS:
                ts = pd.date_range(day, periods=720, freq="2min")
                feats = pd.DataFrame(rng.normal(size=(len(ts), len(feature_columns()))), columns=feature_columns())
                feats.insert(0, "symbol", symbol)
                feats.insert(0, "ts", ts)
                conn.execute("INSERT INTO features BY NAME SELECT * FROM feats")
                win = rng.random(len(ts)) < 0.5 + signal * np.tanh(feats["pressure_imbalance_5"].to_numpy())
                rows = pd.DataFrame({  # noqa: F841 (read by name in the SQL below)
                    "ts": ts, "symbol": symbol, "side": rng.choice([-1, 1], len(ts)),
                    "t1": ts + pd.Timedelta(minutes=5),
                    "ret": np.where(win, 0.001, -0.001), "label": win.astype(int), "outcome": np.where(win, 1, -1),
                    "barrier": np.where(win, "pt", "sl"), "target": 0.002, "uniqueness": 1.0, "weight": 1.0,
                })[LABEL_COLUMNS]
                conn.execute("INSERT INTO labels SELECT * FROM rows")
                conn.execute("INSERT INTO asset_check_log VALUES ('features', 'no_lookahead', ?, ?, true, now())",
                             [symbol, day])
                if record_settings:
                    window = PartitionWindow.for_day(symbol, day)
                    record_partition_settings(conn, "features", window, {"step_s": 120, "universe": list(SYMBOLS),
                                                                         "reference_symbol": "BTCUSDT"})
                    record_partition_settings(conn, "labels", window, {"step_s": 120, **asdict(labels)})


def train(db, trials: int = 3) -> dg.ExecuteInProcessResult:
    return dg.materialize([*models.assets, *backtest.assets, *gate.assets],
                          resources={"duckdb": AtraDuckDB(database=str(db))}, raise_on_error=False,
                          run_config={"ops": {"model_candidate": {"config": {"trials": trials, "max_estimators": 80,
                                                                             "placebos": 2}}}})


def meta(result, asset: str) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset)
    return {k: v.value for k, v in event.materialization.metadata.items()}


def registry(db) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute("SELECT model_id, status, reason FROM model_registry "
                            "ORDER BY created_at, model_id").fetchdf()


@pytest.fixture
def db(tmp_path):
    return tmp_path / "atra.duckdb"


@pytest.mark.slow  # two studies and their research runs
def test_a_good_candidate_is_approved_and_a_noise_one_rejected_while_the_first_stays_live(db):
    store(db, signal=0.25, seed=1)
    good = train(db)
    assert good.success
    checks = check_results(good)
    assert checks["model_candidate.registry_round_trip"] and checks["model_candidate.folds_leak_nothing"]
    assert checks["oof_predictions.every_event_predicted_out_of_fold"]
    assert all(checks[f"approved_model.{name}"] for name in ("auc_significant", "log_loss_beats_prior",
                                                            "features_no_lookahead")), checks
    candidate = meta(good, "model_candidate")
    assert candidate["events"] == 2 * 2 * 720 and candidate["walk_forward_auc"] > 0.6
    with duckdb.connect(str(db), read_only=True) as conn:  # registered with the settings its inputs were built with
        assert load_model(conn, latest(conn)).require_spec() == ModelSpec(SYMBOLS, step_s=120)
    assert "pressure_imbalance_5" in candidate["top_features_shap"].splitlines()[2]  # ranked first
    assert "test_start" in candidate["walk_forward_periods"].splitlines()[0] and candidate["study"]["trials_total"] == 3

    gate = meta(good, "approved_model")
    first = registry(db).iloc[-1]
    if gate["decision"] == "approved":
        assert first["status"] == "approved" and gate["live_model"] == first["model_id"]
    else:  # only the rules on backtests may reject it: these tables hold no book to trade on
        on_backtests = ("selection_not_overfit", "dsr_above_threshold", "beats_placebos", "beats_take_every_event")
        failed = {name for name in on_backtests if not checks[f"approved_model.{name}"]}
        assert failed and all(f"{name}: FAILED" in gate["reasons"] for name in failed)
        gate_failures = {name for name, ok in checks.items() if name.startswith("approved_model.") and not ok}
        assert gate_failures == {f"approved_model.{name}" for name in failed}

    store(db, signal=0.0, seed=2)
    noise = train(db)
    assert noise.success  # a rejection is a decision, not a failed run
    gate = meta(noise, "approved_model")
    assert gate["decision"] == "rejected"
    assert "auc_significant: FAILED" in gate["reasons"] or "log_loss_beats_prior: FAILED" in gate["reasons"]
    rows = registry(db)
    assert rows.iloc[-1]["status"] == "rejected" and rows.iloc[-1]["reason"] == gate["reasons"]
    assert list(rows["status"]).count("approved") == (1 if first["status"] == "approved" else 0)


def test_a_candidate_whose_inputs_recorded_no_settings_or_differ_is_refused(db):
    store(db, signal=0.25, seed=4, record_settings=False)
    result = train(db, trials=1)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "features of 4 training partitions recorded no settings" in failure.event_specific_data.error.to_string()
    store(db, signal=0.25, seed=4)
    with duckdb.connect(str(db)) as conn:  # one partition labelled with other barriers
        record_partition_settings(conn, "labels", PartitionWindow.for_day(SYMBOLS[0], DAYS[0]),
                                  {"step_s": 120, **asdict(LabelSettings(pt_sl=(2.0, 1.0)))})
    result = train(db, trials=1)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "labels of the training partitions were built with 2 different settings" in \
        failure.event_specific_data.error.to_string()
    assert registry(db).empty


@pytest.mark.slow  # a study, with a process probing the file while it trains
def test_the_file_is_free_while_training_and_a_partition_that_failed_a_blocking_check_is_left_out(db, monkeypatch):
    import importlib
    import subprocess
    import sys

    from atra_pipeline.core.gate import placebo

    model_assets = importlib.import_module("atra_pipeline.defs.models.assets")  # the package's `assets` is a list

    store(db, signal=0.25, seed=3)
    with duckdb.connect(str(db)) as conn:
        conn.execute(f"INSERT INTO asset_check_log VALUES ('features', 'no_constant_columns', 'ETHUSDT', '{DAYS[0]}', "
                     "false, now())")
    writes = []

    def another_process_writes() -> None:
        probe = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                 "c.execute('CREATE OR REPLACE TABLE lock_probe AS SELECT 1 AS x'); c.close()")
        done = subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True, text=True, timeout=120)
        writes.append((done.returncode, done.stderr[-300:]))

    def probing(inner):
        def wrapped(*args, **kwargs):
            another_process_writes()
            return inner(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(model_assets, "train_candidate", probing(model_assets.train_candidate))
    monkeypatch.setattr(placebo, "run_placebos", probing(placebo.run_placebos))
    result = train(db, trials=2)
    assert result.success
    candidate = meta(result, "model_candidate")
    assert candidate["left_out_failed_checks"] == f"features.no_constant_columns on {DAYS[0]}|ETHUSDT"
    assert candidate["partitions"] == 3 and candidate["events"] == 3 * 720
    assert len(writes) == 2 and all(code == 0 for code, _ in writes), writes  # during the study, then the placebos
