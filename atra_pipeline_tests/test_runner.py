"""`atra run`'s launcher takes its order from the asset graph: the groups of the main job in
topological order of their deps, the partitioned ones a run per partition before the next, the
unpartitioned rest in one run; `--stages` names groups or `research`."""

from __future__ import annotations

import dagster as dg
import pytest

from atra_pipeline import runner


def test_the_main_job_runs_raw_features_labels_then_the_research_in_one_run():
    stages = runner.plan()
    assert [(s.name, s.groups, s.partitioned) for s in stages] == [
        ("raw", ("raw",), True), ("features", ("features",), True), ("labels", ("labels",), True),
        ("research", ("models", "backtest", "gate"), False)]
    assert {k.to_user_string() for k in stages[0].keys} == {"raw_l2_snapshots", "raw_trades"}
    assert {k.to_user_string() for k in stages[-1].keys} == {"model_candidate", "oof_predictions", "backtest",
                                                             "risk_report", "approved_model"}


@pytest.mark.parametrize("wanted, names", [
    (("raw",), ["raw"]),
    (("research",), ["research"]),
    (("labels", "raw"), ["raw", "labels"]),  # the graph's order, not the command line's
    (("gate", "models"), ["models+gate"]),
])
def test_stages_keep_the_graphs_order_whatever_the_order_asked(wanted, names):
    assert [s.name for s in runner.plan(wanted)] == names


def test_an_unknown_stage_is_refused_naming_the_stages():
    with pytest.raises(SystemExit, match="unknown stage \\['rwa'\\]: the stages are raw, features, labels, models, "
                                         "backtest, gate, research"):
        runner.plan(("rwa",))


def test_the_group_order_is_the_deps_not_the_names():
    @dg.asset(group_name="z_first")
    def a(): ...

    @dg.asset(group_name="m_second", deps=[a])
    def b(): ...

    @dg.asset(group_name="a_third", deps=[b, a])
    def c(): ...

    graph = dg.Definitions(assets=[c, b, a]).resolve_asset_graph()
    assert runner.group_order(graph, graph.get_all_asset_keys()) == ["z_first", "m_second", "a_third"]
