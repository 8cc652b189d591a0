"""Where a ccxt exchange sends its REST calls: another base URL (a venue's mirror, or a local fake
server that speaks the venue's paths), for the collector and the broker alike."""

from __future__ import annotations


def point_ccxt_at(exchange, base_url: str) -> None:
    """Send every REST call of a ccxt Binance instance to ``base_url`` and load spot markets only."""
    def rebase(value):
        if isinstance(value, dict):
            return {k: rebase(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("https://"):
            path = "/" + value.split("/", 3)[3] if value.count("/") >= 3 else ""
            return base_url + path
        return value

    exchange.urls["api"] = rebase(exchange.urls["api"])
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    exchange.options["fetchCurrencies"] = False  # a private sapi call the fake does not serve
