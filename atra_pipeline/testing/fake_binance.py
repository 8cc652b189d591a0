"""A local fake of Binance spot's public REST API, for tests and the README walkthrough.

It answers the real paths with payloads in Binance's real shapes -- ``GET /api/v3/exchangeInfo``,
``POST/GET/DELETE /api/v3/order`` and ``GET /api/v3/account`` (signed calls: the key is checked,
not the signature; a repeated ``newClientOrderId`` is refused like Binance's -2010, an order
breaking the LOT_SIZE or NOTIONAL filter with -1013, one the balance cannot pay with -2010),
``/api/v3/depth``, ``/api/v3/trades``, ``/api/v3/aggTrades`` (with ``fromId``, what ccxt's
``fetch_trades`` calls), ``/api/v3/ping``, ``/api/v3/time`` -- for a few symbols
whose book moves a little on every request, and can be told to misbehave on the next requests:
HTTP 429 (rate limit, with ``Retry-After``), 5xx, 401 (bad API key), a response slower than the
client's timeout, or malformed JSON. It binds 127.0.0.1 only. Point ccxt at it with
:func:`atra_pipeline.core.raw.venue.point_ccxt_at`.

Run: ``python -m atra_pipeline.testing.fake_binance --port 8765``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SYMBOLS = {"BTCUSDT": ("BTC", "USDT", 60_000.0, "0.01", "0.00001"),
           "ETHUSDT": ("ETH", "USDT", 2_600.0, "0.01", "0.0001"),
           "SOLUSDT": ("SOL", "USDT", 150.0, "0.01", "0.001")}
FAULTS = ("429", "500", "503", "timeout", "malformed", "401")


class FakeBinance:
    """The server's state: books, trades, the queued faults and a log of what was asked."""

    def __init__(self, port: int = 0, slow_s: float = 3.0, prices: dict[str, float] | None = None,
                 bid_size_factor: float = 1.0):
        self.lock = threading.Lock()
        self.bid_size_factor = bid_size_factor  # > 1 leans the books towards buyers
        self.prices = {s: spec[2] for s, spec in SYMBOLS.items()} | (prices or {})
        self.update_id = 1_000
        self.trade_id = 5_000
        self.step = 0
        self.faults: deque[str] = deque()
        self.slow_s = slow_s
        self.requests: list[tuple[str, int]] = []  # (path, status)
        self.trades: dict[str, list[dict]] = {s: [] for s in SYMBOLS}
        self.orders: dict[int, dict] = {}
        self.balances: dict[str, float] = {"USDT": 1_000_000.0}
        self.api_key: str | None = None  # when set, signed calls must carry it
        self.seen_keys: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeBinance:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, *faults: str) -> None:
        """Answer the next requests (of the data paths) with these faults, in order."""
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
        with self.lock:
            self.faults.extend(faults)

    # -- payloads in Binance's shapes ------------------------------------------------------------

    def exchange_info(self) -> dict:
        symbols = []
        for name, (base, quote, _, tick, step) in SYMBOLS.items():
            symbols.append({
                "symbol": name, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
                "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
                "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00", "tickSize": tick},
                    {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
                    {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
            })
        return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [], "exchangeFilters": [],
                "symbols": symbols}

    def _mid(self, symbol: str) -> float:
        base = self.prices[symbol]
        return round(base * (1 + 0.0005 * ((self.step * 7919) % 11 - 5) / 5), 2)

    def depth(self, symbol: str, limit: int) -> dict:
        with self.lock:
            self.step += 1
            self.update_id += 3
            mid = self._mid(symbol)
            tick = float(SYMBOLS[symbol][3])
            bids = [[f"{mid - tick * (i + 1):.2f}", f"{(0.5 + 0.1 * ((self.step + i) % 7)) * self.bid_size_factor:.5f}"]
                    for i in range(limit)]
            asks = [[f"{mid + tick * (i + 1):.2f}", f"{0.5 + 0.1 * ((self.step + 2 * i) % 5):.5f}"]
                    for i in range(limit)]
            # each book poll also prints a trade, so trades accumulate like a market's
            self.trade_id += 1
            self.trades[symbol].append({"id": self.trade_id, "price": f"{mid:.2f}", "qty": "0.01000",
                                        "quoteQty": f"{mid * 0.01:.4f}", "time": int(time.time() * 1000),
                                        "isBuyerMaker": self.trade_id % 2 == 0, "isBestMatch": True})
            return {"lastUpdateId": self.update_id, "bids": bids, "asks": asks}

    def recent_trades(self, symbol: str, limit: int) -> list[dict]:
        with self.lock:
            return list(self.trades[symbol][-limit:])

    def agg_trades(self, symbol: str, limit: int, from_id: int | None) -> list[dict]:
        """Each trade is its own aggregate (``a`` = trade id): Binance's compressed shape."""
        with self.lock:
            rows = [t for t in self.trades[symbol] if from_id is None or t["id"] >= from_id]
            rows = rows[:limit] if from_id is not None else rows[-limit:]
            return [{"a": t["id"], "p": t["price"], "q": t["qty"], "f": t["id"], "l": t["id"], "T": t["time"],
                     "m": t["isBuyerMaker"], "M": True} for t in rows]

    def new_order(self, q: dict) -> tuple[int, dict]:
        with self.lock:
            if any(o["clientOrderId"] == q.get("newClientOrderId") for o in self.orders.values()):
                return 400, {"code": -2010, "msg": "Duplicate order sent."}
            symbol, qty = q["symbol"], float(q["quantity"])
            base, step = SYMBOLS[symbol][0], float(SYMBOLS[symbol][4])
            mid, tick = self._mid(symbol), float(SYMBOLS[symbol][3])
            price = mid + tick if q["side"] == "BUY" else mid - tick
            sign = 1 if q["side"] == "BUY" else -1
            # the exchangeInfo filters, refused as Binance refuses them
            if qty < step or abs(qty / step - round(qty / step)) > 1e-6:
                return 400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
            if qty * price < 5.0:
                return 400, {"code": -1013, "msg": "Filter failure: NOTIONAL"}
            if sign > 0 and qty * price > self.balances["USDT"]:
                return 400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
            self.balances[base] = self.balances.get(base, 0.0) + sign * qty
            self.balances["USDT"] -= sign * qty * price
            order_id = 100 + len(self.orders)
            now = int(time.time() * 1000)
            order = {"symbol": symbol, "orderId": order_id, "orderListId": -1,
                     "clientOrderId": q.get("newClientOrderId", f"x{order_id}"), "transactTime": now, "time": now,
                     "updateTime": now, "price": "0.00000000", "origQty": f"{qty:.8f}",
                     "executedQty": f"{qty:.8f}", "cummulativeQuoteQty": f"{qty * price:.8f}", "status": "FILLED",
                     "timeInForce": "GTC", "type": "MARKET", "side": q["side"], "workingTime": now, "isWorking": True,
                     "selfTradePreventionMode": "EXPIRE_MAKER", "origQuoteOrderQty": "0.00000000",
                     "fills": [{"price": f"{price:.2f}", "qty": f"{qty:.8f}",
                                "commission": f"{qty * price * 0.001:.8f}",
                                "commissionAsset": "USDT", "tradeId": self.trade_id}]}
            self.orders[order_id] = order
            return 200, order

    def find_order(self, q: dict) -> tuple[int, dict]:
        with self.lock:
            for o in self.orders.values():
                if str(o["orderId"]) == q.get("orderId") or o["clientOrderId"] == q.get("origClientOrderId"):
                    return 200, {k: v for k, v in o.items() if k != "fills"}
        return 400, {"code": -2013, "msg": "Order does not exist."}

    def account(self) -> dict:
        with self.lock:
            return {"makerCommission": 10, "takerCommission": 10, "canTrade": True, "accountType": "SPOT",
                    "updateTime": int(time.time() * 1000), "permissions": ["SPOT"],
                    "balances": [{"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"}
                                 for a, v in self.balances.items()]}

    # -- HTTP ------------------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: tests read fake.requests instead
                pass

            def _send(self, status: int, body: str, headers: dict | None = None) -> None:
                fake.requests.append((urlparse(self.path).path, status))
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def _signed(self) -> dict | None:
                """The query and form parameters of a signed call, or None (answered 401) without the key."""
                key = self.headers.get("X-MBX-APIKEY", "")
                fake.seen_keys.append(key)
                if fake.api_key is not None and key != fake.api_key:
                    self._send(401, json.dumps({"code": -2015,
                                                "msg": "Invalid API-key, IP, or permissions for action."}))
                    return None
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                params.update({k: v[0] for k, v in parse_qs(body).items()})
                return params

            def do_POST(self):  # noqa: N802
                if urlparse(self.path).path != "/api/v3/order":
                    return self._send(404, json.dumps({"code": -1, "msg": "no such path"}))
                if (q := self._signed()) is not None:
                    status, body = fake.new_order(q)
                    self._send(status, json.dumps(body))

            def do_DELETE(self):  # noqa: N802
                if (q := self._signed()) is not None:
                    status, body = fake.find_order(q)
                    if status == 200:
                        body = {**body, "status": "CANCELED", "origClientOrderId": body["clientOrderId"]}
                    self._send(status, json.dumps(body))

            def do_GET(self):  # noqa: N802 - the http.server interface
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path in ("/api/v3/order", "/api/v3/account"):
                    if (q := self._signed()) is not None:
                        status, body = fake.find_order(q) if url.path == "/api/v3/order" else (200, fake.account())
                        self._send(status, json.dumps(body))
                    return
                data_path = url.path in ("/api/v3/depth", "/api/v3/trades", "/api/v3/aggTrades")
                fault = None
                if data_path:
                    with fake.lock:
                        fault = fake.faults.popleft() if fake.faults else None
                if fault == "429":
                    return self._send(429, json.dumps({"code": -1003, "msg": "Too many requests."}),
                                      {"Retry-After": "1"})
                if fault in ("500", "503"):
                    return self._send(int(fault), "<html><body>Service Unavailable</body></html>")
                if fault == "timeout":
                    time.sleep(fake.slow_s)
                    return self._send(504, json.dumps({"code": -1007, "msg": "Timeout waiting for response."}))
                if fault == "401":
                    return self._send(401, json.dumps({"code": -2015,
                                                       "msg": "Invalid API-key, IP, or permissions for action."}))
                if fault == "malformed":
                    return self._send(200, '{"lastUpdateId": 1, "bids": [["1.0", ')
                symbol = query.get("symbol", "")
                if data_path and symbol not in SYMBOLS:
                    return self._send(400, json.dumps({"code": -1121, "msg": "Invalid symbol."}))
                if url.path == "/api/v3/exchangeInfo":
                    return self._send(200, json.dumps(fake.exchange_info()))
                if url.path == "/api/v3/depth":
                    return self._send(200, json.dumps(fake.depth(symbol, int(query.get("limit", 100)))))
                if url.path == "/api/v3/trades":
                    return self._send(200, json.dumps(fake.recent_trades(symbol, int(query.get("limit", 500)))))
                if url.path == "/api/v3/aggTrades":
                    from_id = int(query["fromId"]) if "fromId" in query else None
                    return self._send(200, json.dumps(fake.agg_trades(symbol, int(query.get("limit", 500)), from_id)))
                if url.path == "/api/v3/ping":
                    return self._send(200, "{}")
                if url.path == "/api/v3/time":
                    return self._send(200, json.dumps({"serverTime": int(time.time() * 1000)}))
                return self._send(404, json.dumps({"code": -1, "msg": f"no such path {url.path}"}))

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with FakeBinance(args.port) as fake:
        print(f"fake Binance spot API on {fake.url} (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
