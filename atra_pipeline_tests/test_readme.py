"""The README's promises: two quickstart commands, and reference sections that match the code."""

from __future__ import annotations

import re

import pytest

from atra_pipeline.core.gate.rules import GATE_RULES
from atra_pipeline.core.quality.rules import SQL_CHECKS, checks_for
from atra_pipeline.docs import README, render


def test_generated_sections_are_current():
    text = README.read_text()
    assert render(text) == text, "README is out of date: run `.venv/bin/python -m atra_pipeline.docs`"
    for check in SQL_CHECKS:
        assert f"`{check.name}`" in text


def test_quickstart_is_exactly_two_commands_that_the_makefile_and_ci_define():
    text = README.read_text()
    block = re.search(r"## Quickstart.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (README.parent / ".ci" / "run").read_text()


def test_the_demonstration_runs_the_commands_the_readme_describes():
    """`make demo` runs what the README's demonstration says, in that order (the demo itself runs
    for minutes: too long for the suite; its figures are in the README)."""
    import subprocess

    section = re.search(r"## Demonstration.*?(?=\n## )", README.read_text(), re.S).group(0)
    described = re.findall(r"^\d\. `(atra [^`]+)`", section, re.M)
    recipe = subprocess.run(["make", "-n", "demo"], cwd=README.parent, capture_output=True, text=True,
                            check=True).stdout
    ran = [re.sub(r"^.*?/atra ", "atra ", line) for line in recipe.splitlines() if "/atra " in line]
    assert described and ran == described
    config = re.search(r"--config (\S+)", ran[0]).group(1)
    assert "signal_strength: 8" in (README.parent / config).read_text()


@pytest.mark.slow  # the whole main job: 3 symbols' raw data, features, labels and a 10-trial study
def test_the_run_command_materialises_the_main_job_with_every_check_passing(tmp_path, monkeypatch):
    """What `make run` does (`atra run`), on a fresh database and instance: every stage in order."""
    from atra_pipeline import cli, runner
    from atra_pipeline.defs.common.partitions import DEFAULT_SYMBOLS

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATRA_DUCKDB_PATH", str(tmp_path / "atra.duckdb"))
    import importlib

    import atra_pipeline.definitions as definitions

    importlib.reload(definitions)  # resources read ATRA_DUCKDB_PATH when the definitions load
    try:
        summaries = runner.run_stages([cli.DEFAULT_DATE], list(DEFAULT_SYMBOLS),  # with atra run's 10 trials
                                      {"ops": {"model_candidate": {"config": {"trials": 10}}}})
    finally:
        monkeypatch.undo()
        importlib.reload(definitions)
    # the asset graph's order: raw for every symbol first (cross-asset features read the others'
    # books), then features, labels, and one research run (candidate, out-of-fold predictions,
    # backtest, risk report, gate)
    assert [(s["stage"], s["partition"].split("|")[-1]) for s in summaries] == [
        (stage, symbol) for stage in ("raw", "features", "labels") for symbol in DEFAULT_SYMBOLS] + [("research", "-")]
    assert all(s["success"] and s["checks_failed"] == [] for s in summaries), summaries
    from atra_pipeline.core.features.checks import FEATURE_CHECKS
    from atra_pipeline.core.quality.expectations import GE_SUITES

    def suites(*assets):  # the Great Expectations suites on these assets, each a check
        return sum(s.asset in assets for s in GE_SUITES)

    raw_checks = len(checks_for("raw_l2_snapshots")) + len(checks_for("raw_trades")) + suites("raw_l2_snapshots",
                                                                                           "raw_trades")
    feature_checks = len(FEATURE_CHECKS) + suites("features")
    assert [s["checks_passed"] for s in summaries[:9]] == ([raw_checks] * 3 + [feature_checks] * 3
                                                           + [len(checks_for("labels"))] * 3)
    models = summaries[-1]
    # 2 candidate checks, 1 OOF, 1 backtest, 1 report, 7 gate rules; only the gate may say no
    assert models["checks_passed"] + len(models["warnings"]) == 5 + len(GATE_RULES)
    assert all(w.startswith("approved_model.") for w in models["warnings"])
    assert "latest model m" in cli._registry_summary_for(tmp_path / "atra.duckdb")
    reports = list((tmp_path / "reports").glob("m*.html"))
    assert len(reports) == 1 and "data:image/png;base64," in reports[0].read_text()
    assert f"risk report: {reports[0]}" in cli._registry_summary_for(tmp_path / "atra.duckdb")
    import duckdb

    with duckdb.connect(str(tmp_path / "atra.duckdb"), read_only=True) as conn:
        scenarios = {r[0] for r in conn.execute("SELECT DISTINCT scenario FROM backtest_stress").fetchall()}
        dsr = conn.execute("SELECT count(*) FROM risk_metrics WHERE metric = 'deflated_sharpe_ratio'").fetchall()[0][0]
        decided = conn.execute("SELECT count(*), count(*) FILTER (reason_not_taken = 'edge_below_min'), "
                               "count(*) FILTER (taken AND NOT expected_edge_bps > 0) "
                               "FROM backtest_decisions").fetchall()[0]
        events = conn.execute("SELECT count(*) FROM labels").fetchall()[0][0]
        walked = conn.execute("SELECT count(*), min(ts) FROM oof_predictions").fetchall()[0]
        risk = dict(conn.execute("SELECT metric, value FROM risk_metrics").fetchall())
        before = conn.execute("SELECT count(*) FROM labels WHERE ts < ?", [walked[1]]).fetchall()[0][0]
    assert scenarios == {"base", "fees_x2", "slippage_x3", "latency_plus_1s", "high_volatility", "low_volatility"}
    assert dsr == 1
    # one day: hourly statistics; every trial counted; 5 placebos and the take-every-event baseline
    # traded on the same books (the baseline trades, the cost-aware candidate does not)
    assert risk["periods_per_year"] == 365 * 24 and risk["trials"] == 10
    assert risk["placebos"] == risk["placebos_expected"] == 5 and risk["baseline_trades"] > 0
    assert risk["trades"] < risk["baseline_trades"]
    # every labelled event after the tuning window is predicted walk-forward and is a decision;
    # none is taken without a positive expected net edge, and those turned down for cost are
    # counted in the run's summary
    assert decided[0] == walked[0] == events - before and before > 0 and decided[1] > 0 and decided[2] == 0
    assert f"{decided[1]} skipped for cost" in cli._registry_summary_for(tmp_path / "atra.duckdb")
