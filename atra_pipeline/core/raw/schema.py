"""Column layout of the raw tables: the one source of truth for code, SQL loaders and docs.

Level 0 is the best price on each side. Timestamps are UTC, stored as naive DuckDB
``TIMESTAMP`` (microsecond precision).
"""

from __future__ import annotations

N_LEVELS = 10
SIDES = ("bid", "ask")


def level_columns(n_levels: int = N_LEVELS) -> list[str]:
    """``bid_px_0..bid_px_{n-1}, bid_sz_.., ask_px_.., ask_sz_..`` in the stored order."""
    return [f"{side}_{kind}_{i}" for side in SIDES for kind in ("px", "sz") for i in range(n_levels)]


L2_KEY_COLUMNS = ["ts", "symbol", "exchange"]
L2_LEVEL_COLUMNS = level_columns()
L2_COLUMNS = L2_KEY_COLUMNS + L2_LEVEL_COLUMNS
TRADE_COLUMNS = ["ts", "symbol", "exchange", "price", "amount", "side", "trade_id"]
TRADE_SIDES = ("buy", "sell")

# Human-readable description of each column, read by the README generator and asset metadata.
L2_COLUMN_DOCS = {
    "ts": "snapshot time, UTC (TIMESTAMP, microsecond precision)",
    "symbol": "exchange symbol without separator, e.g. BTCUSDT",
    "exchange": "venue id, e.g. binance (spot), binance-futures (USD-M), binance-delivery (COIN-M), synthetic",
    "bid_px_i / ask_px_i": "price of level i (0 = best), NULL where the book has fewer levels",
    "bid_sz_i / ask_sz_i": "resting size at level i in base units, NULL where the price is NULL",
}
TRADE_COLUMN_DOCS = {
    "ts": "trade time, UTC",
    "symbol": "as in raw_l2_snapshots",
    "exchange": "as in raw_l2_snapshots",
    "price": "trade price",
    "amount": "trade size in base units (> 0)",
    "side": "aggressor side: 'buy' (taker bought, lifted the ask) or 'sell'",
    "trade_id": "exchange trade id as text, unique per symbol and exchange",
}
