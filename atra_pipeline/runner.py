"""``atra run``'s launcher: the main job's asset selections materialised in this process, in the
asset graph's order, and waited on.

The order is the graph's, read here, never written down: the groups of the main job in
topological order of their assets' deps. A partitioned group runs once per date x symbol
partition before the next group starts (the cross-asset features of one symbol read every
symbol's books, so every raw partition of the dates comes first); the unpartitioned groups after
them (models, backtest, gate: the research) run together in one run, whose steps Dagster orders.
The daemon orders the same work by the same deps (automation conditions and backfills,
``defs/common/automation.py``); this launcher is the quickstart's, for a machine with no daemon.

Each run is Dagster's own (``execute_in_process`` of the ``main`` job on an asset selection) on
the instance the UI shows, so its steps take the ``duckdb`` pool's slot like any other run's.
Runs are tagged with this process: runs of an earlier ``atra`` process that is gone are marked
failed and their slots freed first (:mod:`atra_pipeline.dead_runs`); SIGINT (or SIGTERM, which
the CLI turns into SIGINT) fails the run under way and starts no other (:class:`Interrupted`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

import dagster as dg

from atra_pipeline.core.storage.paths import PROJECT_ROOT

MAIN_JOB = "main"


def instance() -> dg.DagsterInstance:
    """The instance of ``$DAGSTER_HOME`` (the project's ``.dagster_home`` when unset)."""
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


@dataclass(frozen=True)
class Stage:
    """One asset selection of the main job: a partitioned group (a run per partition), or the
    unpartitioned groups after it (one run)."""

    name: str
    groups: tuple[str, ...]
    keys: tuple[dg.AssetKey, ...]
    partitioned: bool


def aliases() -> dict[str, tuple[str, ...]]:
    """Names ``--stages`` accepts besides the groups: ``research``, the train job's groups."""
    from atra_pipeline.definitions import RESEARCH_GROUPS

    return {"research": RESEARCH_GROUPS}


def group_order(graph, keys) -> list[str]:
    """The groups of ``keys`` in topological order of their assets' deps (ties by name)."""
    keys = set(keys)
    sorter: TopologicalSorter = TopologicalSorter()
    for key in sorted(keys):
        group = graph.get(key).group_name
        sorter.add(group, *sorted({graph.get(p).group_name for p in graph.get(key).parent_keys
                                   if p in keys and graph.get(p).group_name != group}))
    sorter.prepare()
    order = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order += ready
        sorter.done(*ready)
    return order


def plan(wanted: tuple[str, ...] | None = None) -> list[Stage]:
    """The main job's stages in order; ``wanted``: group names or aliases to keep (all if None)."""
    from atra_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = defs.resolve_job_def(MAIN_JOB).asset_layer.selected_asset_keys
    order = group_order(graph, keys)
    names = aliases()
    if unknown := [w for w in wanted or () if w not in order and w not in names]:
        raise SystemExit(f"atra: unknown stage {unknown}: the stages are {', '.join([*order, *names])}")
    keep = {g for w in wanted for g in names.get(w, (w,))} if wanted else set(order)
    by_group = {g: tuple(sorted(k for k in keys if graph.get(k).group_name == g)) for g in order if g in keep}
    stages: list[Stage] = []
    for group, members in by_group.items():
        partitioned = {graph.get(k).partitions_def is not None for k in members}
        if len(partitioned) != 1:
            raise ValueError(f"group {group} mixes partitioned and unpartitioned assets")
        if partitioned == {False} and stages and not stages[-1].partitioned:  # one run for the unpartitioned rest
            last = stages.pop()
            stages.append(Stage("", (*last.groups, group), last.keys + members, False))
        else:
            stages.append(Stage("", (group,), members, partitioned == {True}))
    named = {groups: name for name, groups in names.items()}
    return [Stage(named.get(s.groups, "+".join(s.groups)), s.groups, s.keys, s.partitioned) for s in stages]


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped a run of :func:`run_stages`: it was marked failed, and no run
    after it started. ``summaries``: the runs so far, the interrupted one last."""

    def __init__(self, summaries: list[dict]):
        super().__init__("interrupted")
        self.summaries = summaries


def deep_merge(*configs: dict) -> dict:
    """The run configs merged key by key, later ones winning."""
    out: dict = {}
    for config in configs:
        for key, value in config.items():
            both = isinstance(value, dict) and isinstance(out.get(key), dict)
            out[key] = deep_merge(out[key], value) if both else value
    return out


def stage_part(run_config: dict, ops: set[str], partitioned: bool) -> dict:
    """What of a whole-job run config applies to one stage's run: the config of its own assets'
    ops, and the resources for the partitioned stages (the raw source configures those only)."""
    part = {k: v for k, v in run_config.items() if k not in ("ops", "resources")}
    if run_config.get("ops"):
        part["ops"] = {name: v for name, v in run_config["ops"].items() if name in ops}
    if partitioned and run_config.get("resources"):
        part["resources"] = run_config["resources"]
    return part


def run_stages(dates: list[str], symbols: list[str], run_config: dict | None = None,
               stages: tuple[str, ...] | None = None, say: Callable[[str], None] = print) -> list[dict]:
    """Materialise the main job's stages (:func:`plan`) for ``dates`` x ``symbols``, each run waited
    on; one summary per run. ``run_config``: the launchpad's format, each run getting its own part
    (:func:`stage_part`). SIGINT fails the run under way and raises :class:`Interrupted`."""
    from atra_pipeline.dead_runs import free_dead_runs, process_tags
    from atra_pipeline.definitions import defs
    from atra_pipeline.defs.common.partitions import partition_key

    steps = plan(stages)
    job = defs.resolve_job_def(MAIN_JOB)
    where = instance()
    for line in free_dead_runs(where):
        say(line)
    summaries = []
    for stage in steps:
        # the config of its assets, by asset name or by op name (raw_partition is both raw assets' op)
        ops = {name for k in stage.keys
               for name in (k.to_python_identifier(), defs.resolve_assets_def(k).node_def.name)}
        config = deep_merge({"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                            stage_part(run_config or {}, ops, stage.partitioned))
        for date, symbol in ((d, s) for d in dates for s in symbols) if stage.partitioned else [("", "")]:
            key = partition_key(date, symbol) if stage.partitioned else None
            result = job.execute_in_process(partition_key=key, instance=where, run_config=config,
                                            asset_selection=list(stage.keys), raise_on_error=False, tags=process_tags())
            summaries.append(summary(stage.name, f"{date}|{symbol}" if stage.partitioned else "-", result))
            if _interrupted(result):
                raise Interrupted(summaries)
    return summaries


def summary(stage: str, partition: str, result) -> dict:
    """A run's outcome: success, its checks (a failed ERROR check is a failure; a failed WARN check,
    e.g. a gate rule that rejects a candidate, is reported and does not fail the run), and what a
    step that refused to run said."""
    checks = [e.event_specific_data for e in result.all_events
              if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    return {
        "stage": stage,
        "partition": partition,
        "run_id": result.run_id,
        "success": result.success,
        "checks_passed": sum(c.passed for c in checks),
        "checks_failed": [_check_name(c) for c in checks if not c.passed and c.severity != dg.AssetCheckSeverity.WARN],
        "warnings": [_check_name(c) for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.WARN],
        "why_not_built": _refusal(result),
    }


def _check_name(evaluation) -> str:
    return f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"


def _refusal(result) -> str:
    """What a step that refused to run said (e.g. the upstream blocking check that stopped it)."""
    said = [e.event_specific_data.user_failure_data.description for e in result.all_events
            if e.event_type.value == "STEP_FAILURE" and getattr(e.event_specific_data, "user_failure_data", None)]
    return "; ".join(d for d in said if d)


def _chain(error):
    while error is not None:
        yield error
        error = error.cause or error.context


def _interrupted(result) -> bool:
    """Whether a signal stopped the run: Dagster raises its interrupt in the step, which a DuckDB
    query under way replaces with its own "Query interrupted" (raised only on an interrupt)."""
    errors = [getattr(e.event_specific_data, "error", None) for e in result.all_events if e.is_failure]
    return any(link.cls_name == "DagsterExecutionInterruptedError" or link.message.strip().endswith("Query interrupted")
               for error in errors if error is not None for link in _chain(error))
