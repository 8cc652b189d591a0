"""The live executor: the strategy's rules (:mod:`atra_pipeline.core.strategy.rules`) applied to the live
path's signals (:mod:`atra_pipeline.core.live.scoring`) through a broker, with the rails of
:mod:`atra_pipeline.core.execution.rails`. The backtest engine calls the same rule functions.

One step of the live loop at time ``now`` (a run of the sensor-driven live job, a tick of
``atra trade``, or a replayed time) is :func:`trade_step`:

1. **exits**: each open position (table ``live_positions``, with its barriers) is judged on every
   snapshot since it was last checked, by :func:`~atra_pipeline.core.strategy.rules.first_exit`; the
   first barrier touched, or the vertical barrier passed, sends its closing order;
2. **kill switch**: the day's P&L of the broker's ledger, marked at the mids, below
   ``-max_daily_loss`` trips it: every position is closed (``kill``) and nothing opens until a
   person resets it;
3. **entries**: each signal of a decision time not decided yet gets a decision record (table
   ``live_decisions``, the backtest's columns) and, when taken, an order and a position. An
   entry whose order could not go out (broker error, circuit breaker) is not recorded, so the
   next step decides it again; one a rail refused is recorded as ``order_rejected``.

Equity for sizing is the broker's account equity at the decision; exposures are the open
positions' notionals at their decision mids, as in the backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from atra_pipeline.core.backtest.engine import DECISION_COLUMNS as BACKTEST_DECISION_COLUMNS
from atra_pipeline.core.execution.brokers import Broker, book_levels, latest_book, mid_of
from atra_pipeline.core.execution.orders import Order, client_order_id
from atra_pipeline.core.execution.rails import (
    RiskLimits,
    SendState,
    kill_switch_tripped,
    marked_pnl_today,
    risk_event,
    send_order,
)
from atra_pipeline.core.models.registry import ModelRecord
from atra_pipeline.core.storage.database import transaction
from atra_pipeline.core.strategy.rules import (
    EXIT_REASONS,
    KILL_SWITCH,
    NO_BOOK,
    NO_EVENT,
    NO_EXIT,
    NO_SIDE,
    NO_TARGET,
    POSITION_OPEN,
    REASONS,
    TAKEN,
    barriers,
    entry_decision,
    first_exit,
)

# the backtest's decision record (core/backtest/engine.py), with the model, the broker and when it was made
DECISION_COLUMNS = ["decision_ts", "symbol", "model_id", "broker", *BACKTEST_DECISION_COLUMNS[2:], "created_at"]


@dataclass
class StepReport:
    """What one step did."""

    exits: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    entries: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    orders: dict[str, int] = field(default_factory=dict)
    halted: str = ""

    def count(self, table: dict, key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def flat(self) -> dict:
        """One level of counts, for a run's metadata or a summary of many steps."""
        return {"decisions": self.decisions, "entries": self.entries, **{f"exit_{k}": v for k, v in self.exits.items()},
                **{f"skipped_{k}": v for k, v in self.skipped.items()},
                **{f"orders_{k}": v for k, v in self.orders.items()},
                **({"halted": self.halted} if self.halted else {})}


def open_positions(conn: duckdb.DuckDBPyConnection, broker: str) -> pd.DataFrame:
    return conn.execute("SELECT * FROM live_positions WHERE broker = ? AND status = 'open' "
                        "ORDER BY decision_ts, symbol", [broker]).fetchdf()


def exposures(conn: duckdb.DuckDBPyConnection, broker: str, at: pd.Timestamp) -> dict[str, float]:
    """Notional (at the decision mid) of each symbol's position that still holds it at ``at``:
    open, or closed by an exit fill after ``at``."""
    rows = conn.execute("SELECT symbol, sum(qty * entry_mid) FROM live_positions WHERE broker = ? AND decision_ts <= ? "
                        "AND (status = 'open' OR exit_ts > ?) GROUP BY symbol", [broker, at, at]).fetchall()
    return {s: float(n) for s, n in rows}


def newest_unjudged_snapshot(conn: duckdb.DuckDBPyConnection) -> pd.Timestamp | None:
    """The newest snapshot of a symbol with an open position (of a live broker) that is newer than
    what its position was last judged on; None when nothing waits."""
    row = conn.execute(
        "SELECT max(c.ts) FROM live_positions AS p JOIN collected_l2_snapshots AS c ON c.symbol = p.symbol "
        "AND c.ts > p.checked_to WHERE p.status = 'open' AND p.broker <> 'replay'").fetchall()[0][0]
    return None if row is None else pd.Timestamp(row)


def _mids(conn: duckdb.DuckDBPyConnection, symbol: str, after: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
    return conn.execute(
        "SELECT ts, (bid_px_0 + ask_px_0) / 2 AS mid FROM (SELECT ts, bid_px_0, ask_px_0 FROM collected_l2_snapshots "
        "WHERE symbol = $s AND ts > $a AND ts <= $u UNION SELECT ts, bid_px_0, ask_px_0 FROM raw_l2_snapshots "
        "WHERE symbol = $s AND ts > $a AND ts <= $u) ORDER BY ts",
        {"s": symbol, "a": pd.Timestamp(after).to_pydatetime(), "u": pd.Timestamp(until).to_pydatetime()}).fetchdf()


def _ns(t) -> int:
    return pd.Timestamp(t).as_unit("ns").value


def _close(conn, broker: Broker, pos, reason: str, event_at: pd.Timestamp, sent_at: pd.Timestamp, now: pd.Timestamp,
           limits: RiskLimits, approved: str | None, state: SendState, report: StepReport) -> None:
    """Send the closing order of ``pos`` for the exit ``reason`` that happened at ``event_at``."""
    order = Order(client_order_id(pos.model_id, pos.symbol, pos.decision_ts, "kill" if reason == "kill" else "exit"),
                  pos.symbol, -int(pos.side), float(pos.qty), pd.Timestamp(pos.decision_ts), pos.model_id, sent_at,
                  "kill" if reason == "kill" else "exit")
    status, fill = send_order(conn, broker, order, approved, limits, now, state)
    report.count(report.orders, status)
    if fill is None:  # not closed: judged again (and the order sent again or recovered) at the next step
        return
    conn.execute("UPDATE live_positions SET status = 'closed', exit_order_id = ?, exit_reason = ?, exit_event_ts = ?, "
                 "exit_ts = ?, exit_px = ? WHERE position_id = ?",
                 [order.client_order_id, reason, event_at, fill.ts, fill.price, pos.position_id])
    report.count(report.exits, reason)


def manage_exits(conn: duckdb.DuckDBPyConnection, broker: Broker, now: pd.Timestamp, limits: RiskLimits,
                 approved: str | None, state: SendState, report: StepReport, at_event_time: bool = False) -> None:
    """Close every open position whose barrier was touched (or whose vertical barrier passed) by
    ``now``, in the order the exits happened. ``at_event_time``: each closing order goes out at
    the tick that triggered it (a replay, or a loop that runs every tick); otherwise at ``now``.
    A position is judged on each snapshot once: ``checked_to`` moves to the last one judged (a
    snapshot stamped before ``now`` but written after this step is judged at the next)."""
    found = []
    for pos in open_positions(conn, broker.name).itertuples():
        mids = _mids(conn, pos.symbol, pos.checked_to, now)
        times = pd.DatetimeIndex(mids["ts"]).as_unit("ns").asi8
        code, at = first_exit(times, np.log(mids["mid"].to_numpy(dtype=float)), _ns(pos.decision_ts),
                              float(np.log(pos.entry_mid)), float(pos.side), float(pos.up), float(pos.down),
                              _ns(pos.vertical_ts), _ns(now))
        if code == NO_EXIT:
            if len(mids):
                conn.execute("UPDATE live_positions SET checked_to = ? WHERE position_id = ?",
                             [pd.Timestamp(mids["ts"].iloc[-1]), pos.position_id])
        else:
            found.append((pd.Timestamp(at, unit="ns"), pos, EXIT_REASONS[code]))
    for at, pos, reason in sorted(found, key=lambda x: (x[0], x[1].symbol)):
        _close(conn, broker, pos, reason, at, at if at_event_time else pd.Timestamp(now), now, limits, approved, state,
               report)


def check_kill_switch(conn: duckdb.DuckDBPyConnection, broker: Broker, now: pd.Timestamp, limits: RiskLimits,
                      approved: str | None, state: SendState, report: StepReport) -> bool:
    """Trip ``broker``'s kill switch when the day's marked P&L is below ``-max_daily_loss``; while
    it is tripped, close every open position at every step (a closing order that failed is sent
    again). True while it is tripped."""
    tripped = kill_switch_tripped(conn, broker.name)
    if not tripped:
        pnl = marked_pnl_today(conn, broker.name, now)
        if pnl >= -limits.max_daily_loss:
            return False
        risk_event(conn, "kill_switch_tripped", f"day P&L {pnl:.2f} (marked) below -{limits.max_daily_loss}", None,
                   now, broker.name)
        report.halted = "kill switch tripped"
    for pos in open_positions(conn, broker.name).itertuples():
        _close(conn, broker, pos, "kill", pd.Timestamp(now), pd.Timestamp(now), now, limits, approved, state, report)
    return True


def enter(conn: duckdb.DuckDBPyConnection, broker: Broker, record: ModelRecord, signals: pd.DataFrame,
          now: pd.Timestamp, limits: RiskLimits, approved: str | None, state: SendState, report: StepReport,
          halted: bool = False) -> pd.DataFrame:
    """The decision records of ``signals`` (one decision time, the model's symbols) not decided
    yet for this broker, and the entries they take. Returns the new records."""
    if signals.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    spec = record.require_spec()
    pt, sl = (float(x) for x in spec.labels.pt_sl)
    decided = {r[0] for r in conn.execute(
        "SELECT symbol FROM live_decisions WHERE decision_ts = ? AND model_id = ? AND broker = ?",
        [signals["decision_ts"].iloc[0], record.model_id, broker.name]).fetchall()}
    decision_ts = pd.Timestamp(signals["decision_ts"].iloc[0])
    equity = broker.equity(decision_ts)  # as the backtest: the account at the decision
    open_notional = exposures(conn, broker.name, decision_ts)
    rows: list[dict] = []
    for s in signals.sort_values("symbol").itertuples():
        if s.symbol in decided:
            continue
        qty, cost, edge = 0.0, np.nan, np.nan
        tau = float(s.barrier_width) if s.barrier_width is not None else np.nan
        if not s.event:
            reason = NO_EVENT
        elif not (tau > spec.labels.min_return):
            reason = NO_TARGET
        elif s.side == 0:
            reason = NO_SIDE
        elif halted:
            reason = KILL_SWITCH
        elif s.symbol in open_notional:
            reason = POSITION_OPEN
        elif (book := latest_book(conn, s.symbol, decision_ts)) is None:
            reason = NO_BOOK
        else:
            bid_px, bid_sz = book_levels(book, "bid")
            ask_px, ask_sz = book_levels(book, "ask")
            qty, cost, edge, reason = entry_decision(
                float(s.probability), float(s.side), tau, pt, sl, mid_of(book), bid_px, bid_sz, ask_px, ask_sz,
                equity, 0.0, sum(open_notional.values()), *spec.strategy.kernel_args())
        entry_id = client_order_id(record.model_id, s.symbol, decision_ts, "entry")
        sent = conn.execute("SELECT qty, status FROM orders WHERE client_order_id = ? AND status <> 'rejected'",
                            [entry_id]).fetchall()
        if sent and (sent[0][1] != "error" or not halted):
            # a run that died after sending it (or whose broker failed): the decision was taken, with
            # that order; it is recorded (filled), recovered from the broker, or sent again
            qty, reason = float(sent[0][0]), TAKEN
        taken = reason == TAKEN
        row = {"decision_ts": decision_ts, "symbol": s.symbol, "model_id": record.model_id, "broker": broker.name,
               "probability": s.probability, "side": int(s.side), "barrier_width": tau,
               "expected_cost_bps": cost * 1e4, "expected_edge_bps": edge * 1e4, "taken": taken,
               "reason_not_taken": REASONS[reason], "size_notional": qty * float(s.mid) if taken else 0.0,
               "equity": equity, "created_at": now}
        position = None
        if taken:
            order = Order(entry_id, s.symbol, int(s.side), qty, decision_ts, record.model_id, now, "entry")
            status, fill = send_order(conn, broker, order, approved, limits, now, state)
            report.count(report.orders, status)
            if fill is None and status != "rejected":
                continue  # not sent (outage, breaker, an answer pending): decided again at the next step
            if fill is None:
                row.update(taken=False, reason_not_taken="order_rejected", size_notional=0.0)
            else:
                up, down = barriers(tau, pt, sl)
                position = [order.client_order_id, broker.name, record.model_id, s.symbol, int(s.side), fill.qty,
                            decision_ts, s.probability, tau, cost * 1e4, edge * 1e4, float(s.mid), up, down,
                            decision_ts + pd.Timedelta(seconds=spec.labels.max_holding_s), fill.ts, fill.price,
                            decision_ts]
                open_notional[s.symbol] = fill.qty * float(s.mid)
                report.entries += 1
        else:
            report.count(report.skipped, REASONS[reason])
        # the decision and its position together: a run that dies before this decides it again,
        # and finds its order filled (the ledger) or at the broker (recovery)
        with transaction(conn):
            conn.execute(f"INSERT INTO live_decisions VALUES ({', '.join('?' * len(DECISION_COLUMNS))})",
                         [row[c] for c in DECISION_COLUMNS])
            if position is not None:
                conn.execute(
                    "INSERT INTO live_positions (position_id, broker, model_id, symbol, side, qty, decision_ts, "
                    "probability, barrier_width, expected_cost_bps, expected_edge_bps, entry_mid, up, down, "
                    "vertical_ts, entry_ts, entry_px, status, checked_to) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)", position)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=DECISION_COLUMNS)
    report.decisions += len(frame)
    return frame


def trade_step(conn: duckdb.DuckDBPyConnection, broker: Broker, record: ModelRecord | None, signals: pd.DataFrame,
               now: pd.Timestamp, limits: RiskLimits, approved: str | None, state: SendState | None = None,
               at_event_time: bool = False) -> StepReport:
    """One step of the live loop (module docstring): exits, kill switch, then the entries of
    ``signals`` (may be empty: an exit-only tick)."""
    now = pd.Timestamp(now)
    state = state or SendState.from_ledger(conn, broker.name, limits, now)
    report = StepReport()
    manage_exits(conn, broker, now, limits, approved, state, report, at_event_time)
    halted = check_kill_switch(conn, broker, now, limits, approved, state, report)
    if record is not None and len(signals):
        enter(conn, broker, record, signals, now, limits, approved, state, report, halted)
    report.halted = report.halted or state.halted or ("kill switch tripped" if halted else "")
    return report
