"""Replay a stored day through the live path: the functions the sensor-driven live job runs
(:func:`atra_pipeline.core.live.scoring.score`, :func:`atra_pipeline.core.execution.executor.trade_step`), decision
time by decision time, with the clock set to the replayed time and the paper broker filling on the
stored snapshots, under the broker name ``replay``. Between decision times the exit step judges
every snapshot, each closing order going out at the tick that triggered it, as a loop running on
every tick would. Its trades are what the live path would have done that day, to compare with the
backtest of the same day (:mod:`atra_pipeline.core.live.parity`)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.execution.brokers import PaperBroker
from atra_pipeline.core.execution.executor import StepReport, trade_step
from atra_pipeline.core.execution.rails import RiskLimits, SendState
from atra_pipeline.core.live.scoring import score, write_signals
from atra_pipeline.core.models.registry import load_model
from atra_pipeline.core.storage.database import transaction

BROKER = "replay"
# The rails stay on in a replay, at limits that the tested strategy cannot reach: a replay shows
# the strategy, and a rail that binds shows up as a risk event, not as a silently different trade.
REPLAY_LIMITS = RiskLimits(max_position_notional=1e12, max_order_notional=1e12, max_daily_loss=1e12,
                           max_consecutive_errors=3, max_data_age_s=30.0)


@dataclass
class ReplayResult:
    model_id: str
    decisions: pd.DataFrame
    trades: pd.DataFrame
    steps: int
    report: dict


def time_of_day(text: str) -> pd.Timedelta:
    """``HH:MM`` or ``HH:MM:SS`` as the time since midnight."""
    try:
        return pd.Timedelta(text if text.count(":") == 2 else f"{text}:00")
    except ValueError:
        raise ValueError(f"{text!r}: a time of day is HH:MM or HH:MM:SS") from None


def _stored_window(conn, date: pd.Timestamp, symbols: list[str]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """When every symbol's stored book of ``date`` has begun, and the end of the stored snapshots
    from ``date`` on (exits run to it); refuses a symbol without a stored book that day."""
    rows = {s: (first, last, n) for s, first, last, n in conn.execute(
        "SELECT symbol, min(ts) FILTER (ts < $d + INTERVAL 1 DAY), max(ts), count(*) FILTER (ts < $d + INTERVAL 1 DAY) "
        "FROM raw_l2_snapshots WHERE list_contains($s, symbol) AND ts >= $d GROUP BY symbol",
        {"s": symbols, "d": date.to_pydatetime()}).fetchall()}
    if missing := [s for s in symbols if not rows.get(s, (None, None, 0))[2]]:
        raise DataError(f"raw_l2_snapshots {date.date()}|{missing[0]}",
                        f"no stored book for {missing} on {date.date()}: nothing to replay "
                        "(materialise the raw partitions)")
    return max(pd.Timestamp(r[0]) for r in rows.values()), min(pd.Timestamp(r[1]) for r in rows.values())


def clear(conn: duckdb.DuckDBPyConnection, model_id: str, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Remove an earlier replay of ``model_id`` over decisions in [start, end): replays are idempotent."""
    with transaction(conn):
        ids = ("SELECT position_id FROM live_positions WHERE broker = $b AND model_id = $m AND decision_ts >= $s "
               "AND decision_ts < $e")
        exit_ids = ids.replace("position_id", "exit_order_id")
        params = {"b": BROKER, "m": model_id, "s": start.to_pydatetime(), "e": end.to_pydatetime()}
        for sub in (ids, exit_ids):
            conn.execute(f"DELETE FROM fills WHERE client_order_id IN ({sub})", params)
            conn.execute(f"DELETE FROM paper_fills WHERE account = $b AND client_order_id IN ({sub})", params)
        conn.execute("DELETE FROM orders WHERE broker = $b AND model_id = $m AND decision_ts >= $s "
                     "AND decision_ts < $e", params)
        conn.execute("DELETE FROM live_positions WHERE broker = $b AND model_id = $m AND decision_ts >= $s "
                     "AND decision_ts < $e", params)
        conn.execute("DELETE FROM live_decisions WHERE broker = $b AND model_id = $m AND decision_ts >= $s "
                     "AND decision_ts < $e", params)


def replay(conn: duckdb.DuckDBPyConnection, model_id: str, date: str, symbols: list[str] | None = None,
           start: str | None = None, end: str | None = None, initial_equity: float = 100_000.0,
           limits: RiskLimits = REPLAY_LIMITS) -> ReplayResult:
    """Replay ``date`` (``start`` / ``end``: times of day bounding the decision times, default the
    whole day) for ``model_id`` on ``symbols`` (default: the model's universe)."""
    record = load_model(conn, model_id)
    spec = record.require_spec()
    symbols = list(symbols or spec.symbols)
    if outside := [s for s in symbols if s not in spec.symbols]:
        raise DataError(f"model {model_id}", f"symbols {outside} are not in the universe it was trained on "
                                             f"{list(spec.symbols)}")
    day = pd.Timestamp(date).normalize()
    first = day + time_of_day(start) if start else day
    last = day + time_of_day(end) if end else day + pd.Timedelta(days=1)
    readers = sorted({*symbols, *(p for s in symbols for p in spec.peers(s))})
    data_start, data_end = _stored_window(conn, day, readers)
    clear(conn, model_id, first, last)
    clock = {"now": first}
    broker = PaperBroker(conn, spec.strategy.costs, now=lambda: clock["now"], name=BROKER,
                         initial_equity=initial_equity)
    state, reports = SendState(), []
    times = pd.date_range(first, last, freq=f"{spec.step_s}s", inclusive="left")
    for t in times[(times >= data_start) & (times <= data_end)]:  # decision times the stored books cover
        clock["now"] = t
        signals = score(conn, t, record, symbols, now=t)
        write_signals(conn, signals)
        reports.append(trade_step(conn, broker, record, signals, t, limits, model_id, state, at_event_time=True))
    # no new entries after the window: the open positions run to their exits on the stored path
    clock["now"] = data_end
    reports.append(trade_step(conn, broker, None, pd.DataFrame(), data_end, limits, model_id, state,
                              at_event_time=True))
    decisions = conn.execute("SELECT * FROM live_decisions WHERE broker = ? AND model_id = ? AND decision_ts >= ? "
                             "AND decision_ts < ? ORDER BY decision_ts, symbol",
                             [BROKER, model_id, first, last]).fetchdf()
    trades = live_trades(conn, BROKER, model_id, first, last)
    return ReplayResult(model_id, decisions, trades, len(reports), _summary(reports, trades))


def live_trades(conn: duckdb.DuckDBPyConnection, broker: str, model_id: str, start: pd.Timestamp,
                end: pd.Timestamp) -> pd.DataFrame:
    """The positions of ``broker`` and ``model_id`` decided in [start, end), with their fills' fees
    and net P&L (the backtest ledger's columns where they exist)."""
    return conn.execute(
        "SELECT p.*, e.fee + coalesce(x.fee, 0) AS fee_cost, "
        "p.side * (p.exit_px - p.entry_px) * p.qty - e.fee - coalesce(x.fee, 0) AS net_pnl "
        "FROM live_positions AS p JOIN fills AS e ON e.client_order_id = p.position_id "
        "LEFT JOIN fills AS x ON x.client_order_id = p.exit_order_id "
        "WHERE p.broker = ? AND p.model_id = ? AND p.decision_ts >= ? AND p.decision_ts < ? "
        "ORDER BY p.decision_ts, p.symbol", [broker, model_id, start, end]).fetchdf()


def _summary(reports: list[StepReport], trades: pd.DataFrame) -> dict:
    out: dict = {}
    for report in reports:
        for key, value in report.flat().items():
            out[key] = value if isinstance(value, str) else out.get(key, 0) + value
    out["still_open"] = int((trades["status"] == "open").sum()) if len(trades) else 0
    return out
