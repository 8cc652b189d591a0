"""Raw data: sources (synthetic market, our files, Tardis, Binance captures, the ccxt collector) and the order book."""
