"""``atra trade``: the live loop in the foreground. A collector thread polls the exchange into the
collected tables; the main loop, every ``tick_s``, scores each new decision time of the approved
model (:func:`atra_pipeline.core.live.scoring.score`) and takes one step of the executor
(:func:`atra_pipeline.core.execution.executor.trade_step`: exits on the new snapshots, the marked kill
switch, entries): the functions the sensor-driven live job runs, so both paths trade alike.

It stops after ``duration_s`` or when ``stop`` is set (Ctrl-C): the step under way completes (an
order is written as pending before it goes out and settled after, never left between), the
collector flushes its last batch, and the open positions are reported. Each step opens the
DuckDB file and closes it, so other writers can take it between steps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from atra_pipeline.core.execution.brokers import PaperBroker
from atra_pipeline.core.execution.executor import open_positions, trade_step
from atra_pipeline.core.execution.rails import RiskLimits, SendState
from atra_pipeline.core.live.scoring import latest_decision_time, score, write_signals
from atra_pipeline.core.models.registry import latest, load_model
from atra_pipeline.core.raw.collector import CollectedStore, Collector, CollectorSettings, async_exchange

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass
class LoopReport:
    model_id: str
    decisions: int = 0
    entries: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    halted: str = ""
    collector_error: str = ""
    """Why the collector thread died, when it did: the loop stops, as it cannot trade blind."""
    open_positions: pd.DataFrame = field(default_factory=pd.DataFrame)
    collector: dict = field(default_factory=dict)


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def _one_at_a_time(connect: Connect) -> Connect:
    """``connect`` behind a lock: the collector thread and the main loop never hold a connection
    to the file at the same time. Concurrent connections of one process failed the collector's
    insert under load ("Table Function with name pandas_scan does not exist"), which stopped the
    loop; a step or a flush waits for the other instead."""
    lock = threading.RLock()  # a nested connection of the same thread does not wait for itself

    @contextmanager
    def locked():
        with lock, connect() as conn:
            yield conn
    return locked


def trade_loop(connect: Connect, duration_s: float | None, stop: threading.Event, exchange_url: str = "",
               exchange_id: str = "binance", limits: RiskLimits = RiskLimits(), tick_s: float = 0.5,
               poll_s: float = 1.0, initial_equity: float = 100_000.0, broker_name: str = "paper",
               say: Callable[[str], None] = print, broker_class: type[PaperBroker] = PaperBroker) -> LoopReport:
    """Collect, score and trade with the approved model on paper until ``duration_s`` or ``stop``."""
    connect = _one_at_a_time(connect)
    with connect() as conn:
        model_id = latest(conn, "approved")
        if model_id is None:
            raise RuntimeError("no approved model in the registry: nothing may trade")
        record = load_model(conn, model_id)
        state = SendState.from_ledger(conn, broker_name, limits, _utc_now())  # the breaker as earlier runs left it
    spec = record.require_spec()
    report = LoopReport(model_id)
    settings = CollectorSettings(symbols=tuple(spec.symbols), interval_s=poll_s, batch_rows=len(spec.symbols))
    collected: dict = {}

    def collect() -> None:
        async def run():
            exchange = async_exchange(exchange_id, base_url=exchange_url or None)
            try:
                stats = await Collector(exchange, CollectedStore(connect), settings).run(stop=stop)
                collected.update(polls=stats.polls, retries=stats.retries, failed_calls=stats.failed_calls)
            finally:
                await exchange.close()
        try:
            asyncio.run(run())
        except Exception as error:  # noqa: BLE001 - the main loop reports it and stops
            report.collector_error = f"{type(error).__name__}: {error}"

    collector = threading.Thread(target=collect, name="atra-collector", daemon=True)
    collector.start()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    done, step = None, pd.Timedelta(seconds=spec.step_s)
    say(f"trading model {model_id} on paper ({', '.join(spec.symbols)}, decisions every {spec.step_s} s); "
        "Ctrl-C stops after the step under way")
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline) and collector.is_alive():
            began = time.monotonic()
            now = _utc_now()
            with connect() as conn:
                broker = broker_class(conn, spec.strategy.costs, name=broker_name, initial_equity=initial_equity)
                newest = latest_decision_time(conn, list(spec.symbols), spec.step_s)
                # every decision time since the last one scored, in order (a slow step skips none)
                pending = [] if newest is None or newest == done else \
                    list(pd.date_range(newest if done is None else done + step, newest, freq=step))
                steps = [(t, score(conn, t, record, now=now)) for t in pending] or [(None, pd.DataFrame())]
                for decision, signals in steps:
                    if len(signals):
                        write_signals(conn, signals)
                    step_report = trade_step(conn, broker, record, signals, now, limits, model_id, state)
                    done = decision or done
                    report.steps += 1
                    report.decisions += step_report.decisions
                    report.entries += step_report.entries
                    for reason, n in step_report.exits.items():
                        report.exits[reason] = report.exits.get(reason, 0) + n
                    if step_report.entries or step_report.exits:
                        say(f"{now:%H:%M:%S} entries {step_report.entries}, exits {step_report.exits or '{}'}, "
                            f"decisions {step_report.decisions}")
                    report.halted = report.halted or step_report.halted
                flat = open_positions(conn, broker_name).empty
            if state.halted or (report.halted and flat):  # the breaker is open, or the kill switch flattened all
                say(f"halted: {report.halted or state.halted}")
                break
            stop.wait(max(0.0, tick_s - (time.monotonic() - began)))
        if report.collector_error:
            say(f"collector stopped: {report.collector_error}")
    finally:
        stop.set()
        collector.join(timeout=30)
        report.collector = collected
        with connect() as conn:
            report.open_positions = open_positions(conn, broker_name)
    return report
