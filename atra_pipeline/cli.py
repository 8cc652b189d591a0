"""``atra``: run the pipeline from a shell, on the same Dagster instance the UI shows.

``atra run`` materialises the ``main`` job for a date (or a date range) x the configured
symbols: :mod:`atra_pipeline.runner` launches its asset selections in the asset graph's order
(every partition's raw data before any features: the cross-asset features of one symbol read the
others' books) and waits on each, then the research (a model candidate on the stored labels,
``--trials``, its backtest and gate). This module parses the arguments and prints: each run's
check results, the gate's decision and where the data is; it exits non-zero when a run or a
blocking check fails (a rejected candidate is a decision, not a failure). ``atra train --trials
100`` trains and gates a candidate alone (the study resumes).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import pandas as pd

from atra_pipeline.core.storage.paths import duckdb_path

DEFAULT_DATE = "2024-08-08"  # the day of the real Binance capture in ../shared/data, for comparison


def _print_summaries(summaries: list[dict]) -> None:
    frame = pd.DataFrame(summaries)
    print(frame.drop(columns=["run_id", "why_not_built"]).to_string(index=False))
    for row in frame[frame["why_not_built"] != ""].itertuples():
        print(f"  {row.stage} {row.partition}: {row.why_not_built}")


def load_run_config(path: str) -> dict:
    """A run-config YAML (the launchpad's format); a clear error for a file that is not one."""
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f"atra: --config {path}: {error}") from None
    if config is not None and not isinstance(config, dict):
        raise SystemExit(f"atra: --config {path}: a run config is a mapping (ops:, resources:), "
                         f"got {type(config).__name__}")
    return config or {}


# ``atra run``'s study is a quick one on purpose (``make run``: the whole pipeline on a day of
# synthetic data in minutes), so it trains fewer trials than the model_candidate config's default
# (core TrainingSettings.trials), which ``atra train`` and the launchpad use.
QUICK_RUN_TRIALS = 10


def candidate_config(args, run_config: dict) -> dict:
    """The ``model_candidate`` config the command line sets: its options win over the run
    config's, which keeps the rest; a setting neither gives is the config's default (core
    TrainingSettings), but for ``atra run``'s trials, :data:`QUICK_RUN_TRIALS` unless set."""
    configured = run_config.get("ops", {}).get("model_candidate", {}).get("config", {})
    out = {}
    if args.trials is not None or args.command == "run":
        out["trials"] = args.trials if args.trials is not None else configured.get("trials", QUICK_RUN_TRIALS)
    if args.command == "train":
        given = {"start_date": args.start, "end_date": args.end, "cv": args.cv, "n_splits": args.n_splits}
        out.update({k: v for k, v in given.items() if v is not None})
    return out


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``10m``, ``1h`` or a plain number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def _collect(args) -> int:
    from atra_pipeline.definitions import defs
    from atra_pipeline.runner import instance

    config = {"duration_s": parse_duration(args.duration), "interval_s": args.interval, "base_url": args.exchange_url}
    result = defs.resolve_job_def("collect").execute_in_process(
        instance=instance(), run_config={"ops": {"collect_market_data": {"config": config}}}, raise_on_error=False)
    summary = result.output_for_node("collect_market_data") if result.success else None
    print(f"collect: {'succeeded' if result.success else 'FAILED'} {summary or ''}")
    print(f"DuckDB database: {duckdb_path()}  (tables collected_l2_snapshots, collected_trades)")
    return 0 if result.success else 1


def _monitor(args) -> int:
    import time

    import duckdb
    from prometheus_client import generate_latest, start_http_server

    from atra_pipeline.core.live.observability import REGISTRY, refresh

    def once() -> None:
        try:
            with duckdb.connect(str(duckdb_path()), read_only=True) as conn:
                refresh(conn, pd.Timestamp.now(tz="UTC").tz_localize(None))
        except duckdb.Error as error:  # a writer holds the file: keep the last values, try again
            print(f"monitor: database busy ({type(error).__name__}); metrics kept", file=sys.stderr)

    if args.once:
        once()
        print(generate_latest(REGISTRY).decode())
        return 0
    start_http_server(args.port, addr="127.0.0.1", registry=REGISTRY)
    print(f"metrics on http://127.0.0.1:{args.port}/metrics (refreshed every {args.every} s; Ctrl-C to stop)")
    while True:
        once()
        time.sleep(args.every)


def _reset(args) -> int:
    import duckdb

    from atra_pipeline.core.execution.rails import reset_kill_switch

    with duckdb.connect(str(duckdb_path())) as conn:
        reset_kill_switch(conn, args.who)
    print(f"kill switch reset by {args.who}")
    return 0


def _replay(args) -> int:
    from atra_pipeline.core.live.replay import replay
    from atra_pipeline.core.models.registry import latest
    from atra_pipeline.defs.common.partitions import parse_symbols
    from atra_pipeline.defs.common.resources import default_duckdb

    with default_duckdb().get_connection() as conn:
        if args.model == "approved":
            args.model = latest(conn, "approved")
            if args.model is None:
                print("atra replay: no approved model in the registry (the gate approved none)", file=sys.stderr)
                return 1
        result = replay(conn, args.model, args.date, parse_symbols(args.symbols) or None, args.start, args.end,
                        args.equity)
    trades = result.trades
    print(f"replay of {args.date} with model {args.model} through the live path (broker 'replay'): {result.report}")
    if len(trades):
        pnl = trades["side"] * (trades["exit_px"] - trades["entry_px"]) * trades["qty"]
        print(trades[["decision_ts", "symbol", "side", "qty", "entry_px", "exit_px", "exit_reason",
                      "expected_edge_bps"]].to_string(index=False))
        print(f"{len(trades)} trades, P&L before fees {pnl.sum():.2f}")
    print(f"DuckDB database: {duckdb_path()}  (tables live_signals, live_decisions, live_positions, orders, fills)")
    return 0


def _backtest(args) -> int:
    from atra_pipeline.core.backtest.runs import backtest_model, settings_for
    from atra_pipeline.core.models.registry import load_model
    from atra_pipeline.defs.common.partitions import parse_symbols
    from atra_pipeline.defs.common.resources import default_duckdb

    with default_duckdb().get_connection() as conn:
        record = load_model(conn, args.model)
        run = backtest_model(conn, record, settings_for(record, args.equity), stress=False, source="model",
                             start=args.start, end=args.end or args.start, symbols=parse_symbols(args.symbols) or None)
    ledger = run.ledger
    print(f"backtest of model {args.model} on {args.start} .. {args.end or args.start} (its own predictions, its "
          f"registered strategy): {run.report}")
    if len(ledger):
        print(ledger[["decision_ts", "symbol", "side", "qty", "entry_px", "exit_px", "exit_reason",
                      "expected_edge_bps", "net_pnl"]].to_string(index=False))
    print(f"{len(ledger)} trades, net P&L {ledger['net_pnl'].sum() if len(ledger) else 0.0:.2f}")
    return 0


def _trade(args) -> int:
    import signal
    import threading

    from atra_pipeline.core.execution.rails import RiskLimits
    from atra_pipeline.core.live.loop import trade_loop
    from atra_pipeline.defs.common.resources import default_duckdb

    if not args.paper:
        print("atra trade: only --paper is supported from the shell; live orders go through the execution asset "
              "with broker ccxt", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:  # finish the step under way, then stop: nothing half-written
        print(f"\n{signal.Signals(signum).name}: stopping after the step under way", flush=True)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        duration = parse_duration(args.duration) if args.duration else None
        report = trade_loop(default_duckdb().get_connection, duration, stop, args.exchange_url,
                            limits=RiskLimits(max_daily_loss=args.max_daily_loss), initial_equity=args.equity,
                            say=lambda line: print(line, flush=True))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"trade: model {report.model_id}, {report.steps} steps, {report.decisions} decisions, {report.entries} "
          f"entries, exits {report.exits or '{}'}{', halted: ' + report.halted if report.halted else ''}; "
          f"collector {report.collector}")
    open_now = report.open_positions
    if len(open_now):
        print(f"{len(open_now)} positions still open (their barriers are judged again at the next start):")
        print(open_now[["symbol", "side", "qty", "entry_px", "decision_ts", "vertical_ts"]].to_string(index=False))
    else:
        print("no position open")
    print(f"DuckDB database: {duckdb_path()}  (tables live_signals, live_decisions, live_positions, orders, fills)")
    return 1 if report.collector_error else 0


def _registry_summary_for(database: Path) -> str:
    """The latest model's status and reason, read from the registry in ``database``."""
    import duckdb

    from atra_pipeline.core.backtest.report import report_path
    from atra_pipeline.core.models.registry import latest, load_model

    try:
        with duckdb.connect(str(database), read_only=True) as conn:
            model_id, live = latest(conn), latest(conn, "approved")
            record = load_model(conn, model_id) if model_id else None
            figures = dict(conn.execute("SELECT metric, value FROM risk_metrics WHERE model_id = ?",
                                        [model_id]).fetchall())
    except duckdb.Error:
        return "no model registry yet"
    if record is None:
        return "no model trained yet"
    report = report_path(database, model_id)
    backtest = (f"backtest: {figures['decisions']:.0f} decisions, {figures['decisions_taken']:.0f} taken, "
                f"{figures['skipped_for_cost']:.0f} skipped for cost (expected net edge not above the minimum), "
                f"{figures['skipped_position_open']:.0f} with a position open; total return "
                f"{figures.get('total_return', float('nan')):+.2%}\n") if "decisions" in figures else ""
    return (f"latest model {model_id}: {record.status} ({record.reason}); live model: {live or 'none'}\n"
            f"{backtest}risk report: {report if report.exists() else 'not rendered'}")


def _dates(args) -> list[str]:
    """The dates ``--date`` or ``--start`` .. ``--end`` name; a date that is not one, or a range
    that ends before it starts, stops the command with what is wrong."""
    from atra_pipeline.core.settings import parse_date
    from atra_pipeline.defs.common.partitions import date_keys

    given = {"--date": args.date} if not args.start else {"--start": args.start, "--end": args.end or args.start}
    for option, text in given.items():
        try:
            parse_date(text)
        except ValueError as error:
            raise SystemExit(f"atra {args.command}: {option} {text!r}: {error}") from None
    if args.start and given["--end"] < args.start:
        raise SystemExit(f"atra {args.command}: --end {given['--end']} is before --start {args.start}: no date to run")
    return date_keys(args.start, given["--end"]) if args.start else [args.date]


def main(argv: list[str] | None = None) -> int:
    from atra_pipeline.core.settings import SettingsError, validate_environment

    try:
        validate_environment()
    except SettingsError as error:
        print(f"atra: {error}", file=sys.stderr)
        return 2
    from atra_pipeline.core.execution.rails import RiskLimits
    from atra_pipeline.defs.common.partitions import configured_symbols, parse_symbols

    parser = argparse.ArgumentParser(prog="atra", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialise the main job (synthetic data by default)")
    run.add_argument("--date", default=DEFAULT_DATE, help=f"UTC date (default {DEFAULT_DATE})")
    run.add_argument("--start", help="first date of a range (backfill in this process)")
    run.add_argument("--end", help="last date of the range, inclusive")
    run.add_argument("--stages", default="", help="comma-separated stages to run: asset groups of the main job (raw, "
                                                  "features, labels, models, backtest, gate) or research (models, "
                                                  "backtest and gate); default all, in the asset graph's order")
    run.add_argument("--symbols", default=",".join(configured_symbols()), help="comma-separated")
    run.add_argument("--trials", type=int, help=f"Optuna trials of the model candidate (default {QUICK_RUN_TRIALS}, "
                                                "or the config's)")
    run.add_argument("--config", help="run-config YAML applied to every run (e.g. resources.raw_source.config.seed, "
                                      "signal_strength; ops.model_candidate.config)")
    train = sub.add_parser("train", help="train a model candidate on the stored labels and gate it")
    train.add_argument("--trials", type=int, help="Optuna trials in the study (resumes a stored one; default the "
                                                  "config's, else the model_candidate default)")
    train.add_argument("--config", help="run-config YAML (e.g. ops.model_candidate.config)")
    train.add_argument("--start", help="first event date (default: the first stored label)")
    train.add_argument("--end", help="last event date, inclusive (default: the last stored label)")
    train.add_argument("--cv", choices=["purged_kfold", "cpcv", "walk_forward"], help="default purged_kfold")
    train.add_argument("--n-splits", type=int, help="default 5")
    coll = sub.add_parser("collect", help="run the live ccxt collector for a bounded time")
    coll.add_argument("--duration", default="10m", help="how long: 90s, 10m, 1h (default 10m)")
    coll.add_argument("--exchange-url", default="", help="send REST calls here (e.g. the local fake exchange)")
    coll.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    mon = sub.add_parser("monitor", help="serve the live path's Prometheus metrics")
    mon.add_argument("--port", type=int, default=9108)
    mon.add_argument("--every", type=float, default=5.0, help="seconds between refreshes from the database")
    mon.add_argument("--once", action="store_true", help="refresh once, print the metrics and exit")
    trade = sub.add_parser("trade", help="the live loop in the foreground: collect, score, execute, manage exits")
    trade.add_argument("--paper", action="store_true", help="trade on the paper broker (required)")
    trade.add_argument("--duration", default="", help="how long: 90s, 10m, 1h (default: until Ctrl-C)")
    trade.add_argument("--exchange-url", default="", help="send REST calls here (e.g. the local fake exchange)")
    trade.add_argument("--equity", type=float, default=100_000.0, help="the paper account's starting equity")
    trade.add_argument("--max-daily-loss", type=float, default=RiskLimits().max_daily_loss,
                       help="the kill switch's daily loss, marked to market (quote currency)")
    rep = sub.add_parser("replay", help="run the live path over a stored day with the paper broker (broker 'replay')")
    rep.add_argument("--model", required=True, help="model id (its registered settings are used), or 'approved': "
                                                   "the live model")
    rep.add_argument("--date", required=True, help="UTC date, YYYY-MM-DD")
    rep.add_argument("--symbols", default="", help="comma-separated (default: the model's universe)")
    rep.add_argument("--start", default=None, help="first decision time of the day, HH:MM (default 00:00)")
    rep.add_argument("--end", default=None,
                     help="decision times before this time of day, HH:MM (default: the whole day)")
    rep.add_argument("--equity", type=float, default=100_000.0, help="the paper account's starting equity")
    bt = sub.add_parser("backtest", help="backtest a model on chosen days with its own predictions and strategy")
    bt.add_argument("--model", required=True, help="model id")
    bt.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    bt.add_argument("--end", default="", help="last date, inclusive (default: the start date)")
    bt.add_argument("--symbols", default="", help="comma-separated (default: the model's universe)")
    bt.add_argument("--equity", type=float, default=100_000.0, help="starting equity")
    reset = sub.add_parser("reset-kill-switch", help="a person's decision to let execution trade again")
    reset.add_argument("--who", required=True, help="who decided (kept in risk_events)")
    args = parser.parse_args(argv)

    if args.command == "collect":
        return _collect(args)
    if args.command == "monitor":
        return _monitor(args)
    if args.command == "reset-kill-switch":
        return _reset(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "trade":
        return _trade(args)
    if args.command == "backtest":
        return _backtest(args)
    from atra_pipeline.runner import Interrupted, deep_merge, run_stages

    run_config = load_run_config(args.config) if args.config else {}
    # the command line's model_candidate options win over the file's (the rest of the file stays)
    run_config = deep_merge(run_config, {"ops": {"model_candidate": {"config": candidate_config(args, run_config)}}})
    # SIGTERM (a supervisor, `timeout`) stops like Ctrl-C: the run under way fails, no other starts
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    say = lambda line: print(f"atra: {line}")  # noqa: E731
    try:
        if args.command == "train":
            summaries = run_stages([], [], run_config, stages=("research",), say=say)
        else:
            stages = tuple(x.strip() for x in args.stages.split(",") if x.strip()) or None
            summaries = run_stages(_dates(args), parse_symbols(args.symbols), run_config, stages=stages, say=say)
    except (Interrupted, KeyboardInterrupt) as stop:
        done = getattr(stop, "summaries", [])
        if done:
            _print_summaries(done)
        last = f"run {done[-1]['run_id']} ({done[-1]['stage']} {done[-1]['partition']}) marked failed; " if done else ""
        print(f"atra {args.command}: interrupted: {last}no later run started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summaries(summaries)
    ok = all(s["success"] and not s["checks_failed"] for s in summaries)
    print(f"\n{_registry_summary_for(duckdb_path())}")
    print(f"DuckDB database: {duckdb_path()}  (tables raw_l2_snapshots, raw_trades, features, labels, "
          "model_registry, oof_predictions)")
    print(f"Dagster instance: {os.environ['DAGSTER_HOME']}")
    print("Open the Dagster UI with `make ui`, then http://127.0.0.1:3000 (runs, assets, check results).")
    print("All runs succeeded and every blocking check passed." if ok else "Some runs or checks FAILED (see above).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
