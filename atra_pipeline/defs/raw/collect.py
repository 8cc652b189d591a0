"""The ``collect`` job: run the live ccxt collector for a bounded time into the collected tables."""

import asyncio

import dagster as dg

from atra_pipeline.core.raw.collector import (
    EXCHANGE_TIMEOUT_MS,
    CollectedStore,
    Collector,
    CollectorSettings,
    async_exchange,
    call_timeout_s,
)
from atra_pipeline.defs.common.config import SettingsConfig, settings_config
from atra_pipeline.defs.common.resources import AtraDuckDB


class _Exchange(SettingsConfig):
    duration_s: float = 600.0
    """How long to collect, seconds."""
    exchange: str = "binance"
    """The ccxt exchange id."""
    base_url: str = ""
    """Send the REST calls here instead (the local fake exchange); empty: the exchange itself."""
    timeout_ms: int = EXCHANGE_TIMEOUT_MS
    """ccxt's timeout of a call, milliseconds; the collector's own per-call timeout is a second longer."""


CollectConfig = settings_config(
    CollectorSettings, name="CollectConfig", base=_Exchange,
    derived={"timeout_s": "timeout_ms plus one second, so ccxt's own timeout fires first"},
    doc="Where and how long to collect, and how the collector polls (core CollectorSettings).")


# Not in the duckdb pool: the step lasts the whole collection, and the store opens a connection
# only for each small batch, so other writers take the database between batches.
@dg.op(tags={"atra/live": "collector"})
def collect_market_data(context: dg.OpExecutionContext, config: CollectConfig, duckdb: AtraDuckDB) -> dict:
    settings = config.settings(base=CollectorSettings(timeout_s=call_timeout_s(config.timeout_ms)))

    async def main():
        exchange = async_exchange(config.exchange, config.timeout_ms, config.base_url or None)
        try:
            return await Collector(exchange, CollectedStore(duckdb.get_connection), settings).run(config.duration_s)
        finally:
            await exchange.close()

    stats = asyncio.run(main())
    summary = {"polls": stats.polls, "book_rows": stats.book_rows, "trade_rows": stats.trade_rows,
               "retries": stats.retries, "failed_calls": stats.failed_calls, "errors": dict(stats.errors)}
    context.log.info(f"collected: {summary}")
    context.add_output_metadata({k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in summary.items()})
    return summary


@dg.job(description="Poll the configured symbols' books and trades through ccxt for a bounded time.")
def collect():
    collect_market_data()
