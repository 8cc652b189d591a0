"""`atra run --config FILE`: a run-config YAML reaches every run, each stage getting its own part."""

from __future__ import annotations

import pytest

from atra_pipeline import cli, runner

CONFIG = """
resources:
  raw_source:
    config: {seed: 11, signal_strength: 0.0}
ops:
  model_candidate:
    config: {trials: 4, placebos: 2}
  backtest:
    config: {initial_equity: 50000}
"""


def test_each_stage_gets_its_own_ops_and_the_partitioned_ones_the_raw_source(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(CONFIG)
    config = cli.load_run_config(str(path))
    raw = runner.stage_part(config, {"raw_l2_snapshots", "raw_trades"}, partitioned=True)
    assert raw == {"ops": {}, "resources": {"raw_source": {"config": {"seed": 11, "signal_strength": 0.0}}}}
    research = runner.stage_part(config, {"model_candidate", "oof_predictions", "backtest"}, partitioned=False)
    assert research == {"ops": {"model_candidate": {"config": {"trials": 4, "placebos": 2}},
                                "backtest": {"config": {"initial_equity": 50000}}}}
    # the command line's --trials wins over the file, the rest of the file's config stays
    merged = runner.deep_merge(research, {"ops": {"model_candidate": {"config": {"trials": 9}}}})
    assert merged["ops"]["model_candidate"]["config"] == {"trials": 9, "placebos": 2}


def test_a_file_that_is_not_a_run_config_is_refused_with_its_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(SystemExit, match="bad.yaml: a run config is a mapping"):
        cli.load_run_config(str(path))
    with pytest.raises(SystemExit, match="missing.yaml"):
        cli.load_run_config(str(tmp_path / "missing.yaml"))


def test_the_command_line_sets_only_what_it_is_given():
    from argparse import Namespace

    run_config = {"ops": {"model_candidate": {"config": {"trials": 7, "cv": "cpcv", "n_splits": 6}}}}
    train = Namespace(command="train", trials=None, start=None, end="2024-08-09", cv=None, n_splits=None)
    # the file's trials stay and its cv and splits are not overwritten by argparse defaults
    merged = runner.deep_merge(run_config["ops"]["model_candidate"]["config"], cli.candidate_config(train, run_config))
    assert merged == {"trials": 7, "cv": "cpcv", "n_splits": 6, "end_date": "2024-08-09"}
    # nothing given: train leaves every setting to the model_candidate config's one default
    assert cli.candidate_config(Namespace(command="train", trials=None, start=None, end=None, cv=None, n_splits=None),
                                {}) == {}
    assert cli.candidate_config(Namespace(command="run", trials=3), run_config) == {"trials": 3}
    assert cli.candidate_config(Namespace(command="run", trials=None), run_config) == {"trials": 7}
    assert cli.candidate_config(Namespace(command="run", trials=None), {}) == {"trials": cli.QUICK_RUN_TRIALS}


def test_the_run_summary_says_why_a_partition_was_not_built(capsys):
    from atra_pipeline.cli import _print_summaries

    base = {"run_id": "r", "success": True, "checks_passed": 11, "checks_failed": [], "warnings": []}
    _print_summaries([{**base, "stage": "raw", "partition": "2024-08-08|BTCUSDT", "why_not_built": ""},
                      {**base, "stage": "features", "partition": "2024-08-08|BTCUSDT", "success": False,
                       "checks_passed": 0,
                       "why_not_built": "it reads raw_trades.price_near_mid on 2024-08-08|BTCUSDT"}])
    out = capsys.readouterr().out
    assert "  features 2024-08-08|BTCUSDT: it reads raw_trades.price_near_mid on 2024-08-08|BTCUSDT" in out
    assert "raw 2024-08-08|BTCUSDT:" not in out and "why_not_built" not in out


@pytest.mark.parametrize("argv, says", [
    (["run", "--start", "2024-08-05", "--end", "2024-08-01"], "--end 2024-08-01 is before --start 2024-08-05"),
    (["run", "--date", "08/01/2024"], "--date '08/01/2024': a date is YYYY-MM-DD"),
])
def test_atra_run_refuses_dates_that_name_no_day_before_running_anything(argv, says):
    from atra_pipeline.cli import main

    with pytest.raises(SystemExit) as stop:  # before: a reversed range ran nothing, then "labels table is empty"
        main(argv)
    assert says in str(stop.value)


def test_a_bad_atra_variable_stops_the_cli_naming_it(monkeypatch, capsys):
    from atra_pipeline.cli import main

    monkeypatch.setenv("ATRA_START_DATE", "yesterday")
    assert main(["run"]) == 2
    assert "atra: ATRA_START_DATE='yesterday': a date is YYYY-MM-DD" in capsys.readouterr().err
