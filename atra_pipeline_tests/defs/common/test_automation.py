"""The automation conditions, evaluated as the daemon evaluates them (``dg.evaluate_automation_conditions``
on an instance, tick after tick): the latest day's raw data at the cron tick, features and labels
only once every symbol's raw data of that day is stored, never over a failed blocking check or a
failed run of what they read."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from atra_pipeline.definitions import defs
from atra_pipeline.defs.common.automation import conditions, with_conditions
from atra_pipeline.defs.common.partitions import configured_symbols

TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
YESTERDAY = (TODAY - dt.timedelta(days=1)).strftime("%Y-%m-%d")
SYMBOLS = configured_symbols()
RAW = ("raw_l2_snapshots", "raw_trades")
WATCHED = (*RAW, "features", "labels", "model_candidate")


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


class Ticks:
    """The automation sensor's ticks on ``instance``, at minutes after midnight UTC today."""

    def __init__(self, instance, definitions=defs):
        self.instance, self.defs, self.cursor = instance, definitions, None

    def at(self, minute: int) -> dict[str, set[str]]:
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor,
                                                   evaluation_time=TODAY + dt.timedelta(minutes=minute))
        self.cursor = result.cursor
        return {asset: set(result.get_requested_partitions(dg.AssetKey(asset))) for asset in WATCHED
                if result.get_num_requested(dg.AssetKey(asset))}


def stored(instance, assets, symbol: str, passed: bool = True, day: str = YESTERDAY) -> None:
    """A materialisation of ``assets``' partition and its blocking checks' evaluations, as a run
    records them (the checks are not partitioned in Dagster's model: their evaluations name no partition)."""
    graph = defs.resolve_asset_graph()
    for asset in assets:
        key = dg.AssetKey(asset)
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=f"{day}|{symbol}"))
        for check in sorted(graph.get(key).check_keys):
            if graph.get(check).blocking:
                instance.report_runless_asset_event(dg.AssetCheckEvaluation(asset_key=key, check_name=check.name,
                                                                            passed=passed))


def refuse_raw(instance, tmp_path, day: str, symbol: str) -> None:
    """A raw run of the partition that fails, as a refused partition's does (its file is missing)."""
    from atra_pipeline.defs.common.resources import AtraDuckDB, RawSourceResource
    from atra_pipeline.defs.raw.assets import raw_partition

    missing = str(tmp_path / "no_{date}.csv")
    refused = dg.materialize([raw_partition], partition_key=f"{day}|{symbol}", instance=instance, raise_on_error=False,
                             resources={"duckdb": AtraDuckDB(database=str(tmp_path / "atra.duckdb")),
                                        "raw_source": RawSourceResource(kind="file", book_path=missing,
                                                                        trades_path=missing)})
    assert not refused.success


def of_the_day(*symbols: str) -> set[str]:
    return {f"{YESTERDAY}|{s}" for s in symbols or SYMBOLS}


def test_the_raw_data_of_the_latest_day_are_requested_at_the_cron_tick(instance):
    ticks = Ticks(instance)
    assert ticks.at(29) == {}  # the first evaluation: no tick of 00:30 passed since the previous one
    assert ticks.at(31) == {asset: of_the_day() for asset in RAW}  # yesterday, every symbol; nothing downstream
    assert ticks.at(32) == {}  # requested once per tick


def test_features_wait_for_every_symbols_books_of_the_day_then_come_with_their_labels(instance):
    ticks = Ticks(instance)
    ticks.at(29), ticks.at(31)
    for symbol in SYMBOLS[:-1]:
        stored(instance, RAW, symbol)
    # each symbol's features read every symbol's books: none runs while one symbol's are missing
    # (the previous day's books are missing too, and not waited for: a first day)
    assert ticks.at(32) == {}
    stored(instance, RAW, SYMBOLS[-1])
    # then every symbol's features, and their labels in the same runs (the features' run stops
    # the labels step if a blocking check of the features fails)
    assert ticks.at(33) == {"features": of_the_day(), "labels": of_the_day()}
    assert ticks.at(34) == {}  # the research is not automated: the weekly retrain trains


def test_a_failed_blocking_check_of_their_books_stops_features_and_labels(instance):
    ticks = Ticks(instance)
    ticks.at(29), ticks.at(31)
    for symbol in SYMBOLS:  # the last one's raw data failed a blocking rule
        stored(instance, RAW, symbol, passed=symbol != SYMBOLS[-1])
    assert ticks.at(32) == {}
    stored(instance, RAW, SYMBOLS[-1])  # mended
    assert ticks.at(33) == {"features": of_the_day(), "labels": of_the_day()}


def test_labels_follow_new_features_unless_a_blocking_check_of_the_features_failed(instance):
    ticks = Ticks(instance)
    ticks.at(29), ticks.at(31)
    for symbol in SYMBOLS:
        stored(instance, RAW, symbol)
    assert ticks.at(32) == {"features": of_the_day(), "labels": of_the_day()}
    for symbol in SYMBOLS:  # the day's runs: features and labels stored
        stored(instance, ["features", "labels"], symbol)
    assert ticks.at(33) == {}
    for symbol in SYMBOLS:  # the features materialised again (from the UI, say); one failed a blocking check
        stored(instance, ["features"], symbol, passed=symbol != SYMBOLS[-1])
    assert ticks.at(34) == {}
    stored(instance, ["features"], SYMBOLS[-1])  # mended: the labels follow the new features
    assert ticks.at(35) == {"labels": of_the_day()}


def test_a_failed_raw_run_stops_the_features_of_the_day(instance, tmp_path):
    """A raw partition refused by its run (here: its file is missing) is what every features
    partition of the day reads: none is requested, though the other symbols' books are stored."""
    ticks = Ticks(instance)
    ticks.at(29), ticks.at(31)
    for symbol in SYMBOLS:
        stored(instance, RAW, symbol)
    refuse_raw(instance, tmp_path, YESTERDAY, SYMBOLS[1])
    assert ticks.at(32) == {}


def test_a_failed_raw_run_of_the_day_before_does_not_hold_the_day_back(instance, tmp_path):
    """The previous day's refused partition is no stored data, as a day never collected: the
    latest day's features run with their warm-up, as on a first day."""
    refuse_raw(instance, tmp_path, (TODAY - dt.timedelta(days=2)).strftime("%Y-%m-%d"), SYMBOLS[0])
    ticks = Ticks(instance)
    ticks.at(29), ticks.at(31)
    for symbol in SYMBOLS:
        stored(instance, RAW, symbol)
    assert ticks.at(32) == {"features": of_the_day(), "labels": of_the_day()}


def test_a_cron_ticking_again_the_same_day_does_not_collect_a_stored_day_again(instance):
    """The service test's cron ticks every minute: the day is collected at the first tick, and
    not again while it is stored."""
    every_minute = conditions("* * * * *")
    definitions = dg.Definitions(assets=dg.map_asset_specs(lambda spec: with_conditions(spec, every_minute),
                                                           defs.assets),
                                 asset_checks=defs.asset_checks, resources=defs.resources)
    ticks = Ticks(instance, definitions)
    ticks.at(29)
    assert ticks.at(30) == {asset: of_the_day() for asset in RAW}
    for symbol in SYMBOLS:
        stored(instance, RAW, symbol)
    assert set(ticks.at(31)) == {"features", "labels"}
    assert ticks.at(32) == {}
