"""Rebuild a Binance L2 book from a raw websocket capture and sample it on a time grid.

Capture format
--------------
gzip (or plain) text, one message per line: ``<local receive time, ns since epoch> <JSON>``.
The JSON is a combined-stream message ``{"stream": "<symbol>@<kind>", "data": {...}}`` -- a
``depthUpdate`` (diff-depth stream), a ``trade``, or anything else such as ``bookTicker``, which
is skipped unparsed -- or a REST depth snapshot ``{"lastUpdateId": N, "bids": [...],
"asks": [...]}``. A snapshot names no symbol, so every snapshot in a file is taken to belong to
``symbol``: keep one symbol's snapshots per file (a COIN-M snapshot names its ``symbol``; one of
another symbol is skipped). Trades come from the ``trade`` stream, or from ``aggTrade`` (trade id
``a``) when the capture holds no ``trade`` message of the symbol -- never from both, which would
count a fill twice.

Markets
-------
``market`` declares what the capture is, and the messages' shapes must agree, or the replay stops
at the first message that disagrees with a :class:`DataError` naming both markets, the file and
the line (the shapes of Binance's API docs):

* depth update: spot has no ``pu``; USD-M and COIN-M carry ``pu``; COIN-M also carries ``ps``
  (the pair, e.g. ``BTCUSD``), and its symbols read ``BTCUSD_PERP`` / ``BTCUSD_240927``;
* trade: a COIN-M symbol is COIN-M; otherwise a futures trade carries ``X`` (trade type), a
  spot one ``M``;
* REST snapshot: COIN-M's ``/dapi/v1/depth`` carries ``symbol`` and ``pair``, USD-M's
  ``/fapi/v1/depth`` ``E`` and ``T`` without them; a snapshot of ``lastUpdateId``, ``bids`` and
  ``asks`` alone (spot's ``/api/v3/depth``, or a recorder that kept only those) names no market.

Units: spot and USD-M sizes are base units already. COIN-M sizes are contracts of a fixed USD
value (:data:`COINM_CONTRACT_SIZE_USD`, or ``contract_size_usd``) and are converted to base units
at each level's own price and each trade's price (:func:`contracts_to_base`).

Rebuild procedure (Binance's documented one)
--------------------------------------------
1. Depth updates that arrive while the book is not synced (before the first snapshot, or after
   a gap) are buffered -- in this capture some updates arrive *before* the snapshot line and
   already lie past ``lastUpdateId``, so they are needed.
2. At a snapshot with ``lastUpdateId`` ``L`` the book is reset to it, then the buffer is
   replayed: stale updates are dropped (spot: ``u <= L``; USD-M futures: ``u < L``) and the
   first applied update must straddle the snapshot (spot: ``U <= L+1 <= u``; futures:
   ``U <= L <= u``).
3. From then on every update must continue the chain (spot: ``U == previous u + 1``; futures:
   ``pu == previous u``). A break is a *gap*: the book is invalid from that update until a
   later snapshot re-syncs it. ``on_gap="drop"`` drops and reports the samples of the invalid
   interval (a wrong book is never emitted); ``on_gap="error"`` raises :class:`DataError`.
   A snapshot that arrives while the book is valid is not needed and is ignored (counted).
4. Levels with size 0 are removed. Files are replayed in the order given, one continuous
   stream: a day file without a snapshot (here 2024-08-09) gets its book by replaying the
   previous day's file first, with ``start`` set to the day's first instant, or from the book
   the previous day's replay ended in (below).

Carrying the book from one day's files to the next
--------------------------------------------------
A replay with an ``end`` keeps the book it had at the window's end as a :class:`BookState`
(``CaptureResult.book_state``): the full depth as rebuilt and the ids and time of the last update
applied. It is taken at the *cut*, just before the first depth update with ``E >= end``. The lines
from the cut on, and trades with ``T >= end`` that came before it, belong to the next window
though they sit in this file (a capture split at midnight by the local clock, 1.27 s behind
``E`` here, holds the next day's first second), so they travel with the book.

``previous=`` a :class:`BookState` continues from it: its lines are replayed first, then the
day's files. Only files that hold no REST snapshot need it: a file with one starts from its
snapshot as when read alone, and the carried book and lines are dropped (so a day's rows never
depend on whether the day before was replayed first). Carried on, the stream must continue by
Binance's rules: the files' first depth update follows the carried ``u`` (spot ``U == u + 1``,
futures ``pu == u``, or it repeats the last carried update), else the replay stops naming the
stored ``u``, the file, the line and the id found. ``previous=`` a text says why no book is
available; the files must then hold a snapshot, and the error says both.

Clock
-----
Book samples are stamped with the exchange's event time ``E`` of the depth updates and trades
with their trade time ``T`` (both ms, UTC), never with the local receive time: in the bundled
capture the local clock reads about 1.27 s *behind* ``E`` (a message is "received" before the
exchange says it happened), so it is off by at least that much. The report gives the measured
``receive - E`` offset.

Sampling
--------
Grid times ``g`` are multiples of ``interval_ms`` since the epoch. The row at ``g`` is the book
after every depth update with ``E <= g``. A row is emitted only while the book is valid and has
been valid since the last sync: the first row after a sync is the first grid time at or after
the first applied update's ``E``, grid times from a gap to the next re-sync are dropped, and no
row is emitted after the last depth update. Only rows and trades inside ``[start, end)`` are
returned; messages before ``start`` are still replayed to build the book.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.raw.order_book import OrderBook
from atra_pipeline.core.raw.schema import L2_COLUMNS, L2_LEVEL_COLUMNS, N_LEVELS, TRADE_COLUMNS
from atra_pipeline.core.raw.textio import open_binary

try:  # orjson is 3-5x faster on these small messages; the standard library does the same job.
    import orjson

    _loads = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads
    _JSON_ERRORS = (ValueError,)

Market = Literal["spot", "usdm_futures", "coinm_futures"]
# Venue ids as Tardis.dev names Binance's markets (ccxt: binance, binanceusdm, binancecoinm).
DEFAULT_EXCHANGE = {"spot": "binance", "usdm_futures": "binance-futures", "coinm_futures": "binance-delivery"}
CONTRACT_SPECS_URL = "https://www.binance.com/en/support/faq/a4470430e3164c13932be8967961aede"
# USD value of one COIN-M contract per pair (Binance's contract specs, CONTRACT_SPECS_URL, and
# contractSize in /dapi/v1/exchangeInfo): BTC 100 USD, the altcoins 10 USD. Kept short on purpose:
# Binance says an altcoin "may vary", so a pair not listed is an error, not a guessed 10.
COINM_CONTRACT_SIZE_USD: dict[str, float] = {
    "BTCUSD": 100.0,
    **dict.fromkeys(("ETHUSD", "BNBUSD", "SOLUSD", "XRPUSD", "ADAUSD", "DOGEUSD", "DOTUSD",
                     "LINKUSD", "LTCUSD", "BCHUSD"), 10.0),
}
_COINM_SYMBOL = re.compile(r"([A-Z0-9]+USD)_(PERP|\d{6})")  # BTCUSD_PERP, BTCUSD_240927
_ALL_MARKETS = frozenset(DEFAULT_EXCHANGE)
_SPOT, _USDM, _COINM = frozenset({"spot"}), frozenset({"usdm_futures"}), frozenset({"coinm_futures"})
BUFFER_MAX = 20_000  # depth updates kept while unsynced (~33 min at 100 ms); older ones are evicted
_INF = float("inf")
_FAR = 1 << 62  # "no bound" for the window, in ms
_STREAM_PREFIX = b'{"stream":"'
_EPOCH = datetime(1970, 1, 1)

# Book states.
_UNSYNCED, _AWAITING, _SYNCED = "unsynced", "awaiting first update after snapshot", "synced"
# Counts of what the book did, as opposed to what the files hold: a replay that drops the carried
# book starts these again, as if it had read its files alone.
_BOOK_COUNTS = ("depth_applied", "depth_stale_dropped", "depth_duplicates_skipped", "snapshots_used",
                "snapshots_ignored_book_valid", "samples_before_window", "samples_after_window",
                "samples_dropped_invalid")


@dataclass
class CaptureResult:
    """Output of :func:`read_binance_capture`.

    Attributes
    ----------
    book : pandas.DataFrame
        Columns exactly ``schema.L2_COLUMNS``; ``ts`` is ``datetime64[us]`` (naive UTC, exchange
        clock), strictly increasing, one row per emitted grid time.
    trades : pandas.DataFrame
        Columns exactly ``schema.TRADE_COLUMNS``; ``side`` is the aggressor ('buy'/'sell'),
        ``trade_id`` is text; sorted by ``ts`` (stable).
    report : dict
        JSON-serialisable account of the replay: files, message counts, updates applied,
        snapshots, gaps, invalid intervals, dropped samples, rows outside the window, clock.
    """

    book: pd.DataFrame
    trades: pd.DataFrame
    report: dict = field(default_factory=dict)
    book_state: BookState | None = None
    """The book at the window's end, for the next window's files (module docstring)."""


@dataclass
class BookState:
    """The book a replay had at its window's end, and the capture lines past it: what the next
    window's files continue (module docstring, "Carrying the book").

    Attributes
    ----------
    symbol, market : str
        Whose book, and of which market (only the same market continues it).
    until : str or None
        The window's end, ISO-8601 (naive UTC); None when the replay had no end.
    valid : bool
        The book was in sync at the cut. When False there is no book, and ``why_invalid`` says why.
    book_update_id : int or None
        ``u`` of the last depth update applied to the book.
    event_ms : int or None
        Its event time ``E`` (ms since epoch, UTC): where the next replay's sample grid resumes.
    update_ids : tuple or None
        Its ``(E, U, u, pu)``: the same message again is a duplicate, not a gap.
    file, line : str or None, int or None
        Where that update was.
    bids, asks : list of (price, size)
        Full depth as rebuilt, sizes as the capture gives them (COIN-M: contracts).
    lines : list of (file, line number, text)
        The capture lines past the cut, replayed before the next window's files.
    last_update_id : int or None
        ``u`` of the last depth update the replay read (after ``lines``): the next file's first
        update continues it.
    why_invalid : str or None
        Why the book was not in sync at the cut.
    """

    symbol: str
    market: str
    until: str | None
    valid: bool
    book_update_id: int | None = None
    event_ms: int | None = None
    update_ids: tuple | None = None
    file: str | None = None
    line: int | None = None
    bids: list = field(default_factory=list)
    asks: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    last_update_id: int | None = None
    why_invalid: str | None = None

    def to_json(self) -> str:
        """The state as JSON text; floats are written exactly (shortest repr), so a book read back
        is the book written."""
        return json.dumps({"version": 1, **self.__dict__}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> BookState:
        data = json.loads(text)
        if data.pop("version", None) != 1:
            raise ValueError("not a stored book state of version 1")
        ids = data.get("update_ids")
        return cls(**{**data, "update_ids": None if ids is None else tuple(ids),
                      "bids": [tuple(level) for level in data["bids"]],
                      "asks": [tuple(level) for level in data["asks"]],
                      "lines": [tuple(line) for line in data["lines"]]})

    def describe(self) -> str:
        """Where the book comes from, as an error message names it."""
        return f"the stored book of {Path(self.file).name if self.file else self.symbol} up to {self.until}"

    def summary(self) -> dict:
        """What a report shows of the state (the book itself is too large for it)."""
        return {"valid": self.valid, "until": self.until, "last_update_id": self.last_update_id,
                "book_update_id": self.book_update_id, "bid_levels": len(self.bids), "ask_levels": len(self.asks),
                "lines_carried": len(self.lines), "why_invalid": self.why_invalid}


def read_binance_capture(paths, symbol: str, *, market: Market = "spot", interval_ms: int = 1000,
                         start=None, end=None, exchange: str | None = None,
                         on_gap: Literal["drop", "error"] = "drop",
                         contract_size_usd: float | None = None,
                         previous: BookState | str | None = None) -> CaptureResult:
    """Replay capture files, rebuild the book and sample it every ``interval_ms``.

    Parameters
    ----------
    paths : path or sequence of paths
        Capture files in replay order (the caller sorts them).
    symbol : str
        Symbol to rebuild, e.g. ``"BTCUSDT"``; stream messages of other symbols are skipped
        and counted. Case-insensitive.
    market : {"spot", "usdm_futures", "coinm_futures"}
        What the capture is: selects the sequence rules (spot ``U``/``u``, futures ``pu``), the
        units (COIN-M contracts are converted to base units) and the default exchange. Messages
        of another market's shape are refused (module docstring, "Markets").
    interval_ms : int
        Grid step in ms (e.g. 100 or 1000).
    start, end : pandas.Timestamp, str or None
        Window ``[start, end)`` (naive UTC; tz-aware values are converted) of the returned rows
        and trades. Earlier messages are still replayed.
    exchange : str, optional
        Value of the ``exchange`` column; default :data:`DEFAULT_EXCHANGE` of ``market``
        (``binance``, ``binance-futures``, ``binance-delivery``).
    on_gap : {"drop", "error"}
        What a sequence gap does: drop the samples until the next snapshot re-syncs (and report
        them), or raise :class:`DataError`.
    contract_size_usd : float, optional
        COIN-M only: the USD value of one contract of ``symbol``, for a contract missing from
        :data:`COINM_CONTRACT_SIZE_USD` or to override it.
    previous : BookState or str, optional
        The files continue another window's (one UTC day's files after the day before's): the
        book that window ended in, used when the files hold no REST snapshot, or a text saying
        why there is none (module docstring, "Carrying the book"). None: the files stand alone.

    Returns
    -------
    CaptureResult

    Raises
    ------
    DataError
        Malformed line or JSON, missing or non-integer field, unparsable / NaN / non-positive
        price or size, event time ``E`` going backwards in the depth stream, a crossed book at a
        sample time, a message of another market than ``market``, or (with ``on_gap="error"``) a
        sequence gap; with ``previous``, files without a REST snapshot that the previous book
        does not continue, or no previous book. The message names the file, the 1-based line
        and, where relevant, the field. Nothing partial is returned.
    ValueError
        Bad arguments; with ``market="coinm_futures"``, a symbol whose contract size is unknown
        (no ``contract_size_usd`` given); a ``previous`` book of another symbol or market.
    """
    if market not in DEFAULT_EXCHANGE:
        raise ValueError(f"market must be one of {sorted(DEFAULT_EXCHANGE)}, not {market!r}")
    if on_gap not in ("drop", "error"):
        raise ValueError(f"on_gap must be 'drop' or 'error', not {on_gap!r}")
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or interval_ms <= 0:
        raise ValueError(f"interval_ms must be a positive integer, not {interval_ms!r}")
    if not symbol:
        raise ValueError("symbol must be a non-empty string")
    start_ns, end_ns = _window_ns(start), _window_ns(end)
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise ValueError(f"start {start} must be before end {end}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if contract_size_usd is not None and market != "coinm_futures":
        raise ValueError(f"contract_size_usd is for market 'coinm_futures' (sizes in contracts), not {market!r}")
    # An unknown COIN-M contract fails before the replay; a symbol of no COIN-M shape only after
    # it, so that a capture of another market is refused for what it is, at its first line.
    early = market == "coinm_futures" and (contract_size_usd is not None or coinm_pair(symbol) is not None)
    replay = _Replay(symbol, market, interval_ms, start_ns, end_ns, on_gap)
    replay.contract_size = coinm_contract_size(symbol, contract_size_usd) if early else None
    if previous is not None:
        replay.continue_from(previous)
    for path in paths:
        replay.read_file(Path(path))
    replay.finish()
    if market == "coinm_futures" and replay.contract_size is None:
        replay.contract_size = coinm_contract_size(symbol, contract_size_usd)
    exchange = exchange or DEFAULT_EXCHANGE[market]
    return CaptureResult(replay.book_frame(exchange), replay.trade_frame(exchange),
                         replay.report(exchange, start_ns, end_ns), replay.state_out)


def _gap_text(gap: dict) -> str:
    """A sequence gap of the report as a reader finds it: file, line, which id and what it held."""
    return (f"gap at {Path(gap['file']).name} line {gap['line']} ({gap['kind']}: expected "
            f"{gap['field']}={gap['expected']}, got {gap['got']})")


def why_no_rows(report: dict, table: str) -> str:
    """Why a replay of :func:`read_binance_capture` gave no row of ``table`` ("raw_l2_snapshots"
    or "raw_trades"), from its report: what the reader knows and a user needs to fix the input."""
    m = report["messages"]
    files = ", ".join(Path(f["path"]).name for f in report["files"]) or "no file"
    if m["lines"] == 0:
        return f"the capture files ({files}) hold no message"
    if m["other_symbol"] and not (m["depth_updates"] or m["trades"] or m["snapshots"]):
        return f"all {m['other_symbol']} stream messages are for other symbols than {report['symbol']}"
    if table == "raw_trades":
        return f"no trade message of {report['symbol']} in the window ({m['trades']} trade messages in all)"
    if m["depth_updates"] == 0:
        ignored = ", ".join(f"{k}: {v}" for k, v in m["ignored"].items())
        return ("no depth update of the declared market "
                f"'{report['market']}' ({ignored or 'no message of a known stream'})")
    if report["snapshots_used"] == 0:
        return (f"no REST depth snapshot to start the book from ({m['snapshots']} snapshot messages in {files}; "
                "a capture starts with one, or the previous day's book must be carried over (a per-day "
                "template) or its file read first (a template matching every day)")
    if report["gaps"]:
        return (f"the book was invalid at every sample: the first sequence {_gap_text(report['gaps'][0])} was never "
                f"re-synced by a snapshot ({len(report['gaps'])} gaps)")
    s = report["samples"]
    return (f"no sample inside the window ({s['before_window']} before it, {s['after_window']} after it, "
            f"{s['dropped_invalid']} dropped as invalid)")


# --------------------------------------------------------------------------- COIN-M units


def coinm_pair(symbol: str) -> str | None:
    """The pair of a COIN-M contract symbol (``BTCUSD_PERP`` -> ``BTCUSD``), None for another shape."""
    match = _COINM_SYMBOL.fullmatch(symbol.upper())
    return match.group(1) if match else None


def coinm_contract_size(symbol: str, override: float | None = None) -> float:
    """USD value of one contract of the COIN-M ``symbol``.

    Parameters
    ----------
    symbol : str
        A COIN-M contract, ``<pair>_PERP`` or ``<pair>_<yymmdd>`` (e.g. ``BTCUSD_PERP``).
    override : float, optional
        The size to use instead of the table, for a contract it lacks.

    Returns
    -------
    float
        ``override``, else :data:`COINM_CONTRACT_SIZE_USD` of the symbol's pair.

    Raises
    ------
    ValueError
        ``override`` not a finite number > 0; the symbol is no COIN-M contract or its pair is not
        in the table (the message names the symbol and how to state the size).

    References
    ----------
    Binance, "Coin-Margined Futures Contract Specifications",
    https://www.binance.com/en/support/faq/a4470430e3164c13932be8967961aede
    """
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, (int, float)) or not 0 < override < _INF:
            raise ValueError(f"contract_size_usd must be a finite number of USD > 0, not {override!r}")
        return float(override)
    pair = coinm_pair(symbol)
    if pair is None:
        raise ValueError(f"{symbol!r} is not a COIN-M contract symbol (<pair>_PERP or <pair>_<yymmdd>, e.g. "
                         "BTCUSD_PERP): name the contract, or state its size with contract_size_usd")
    if pair not in COINM_CONTRACT_SIZE_USD:
        raise ValueError(f"contract size of COIN-M symbol {symbol!r} unknown (pair {pair} is not in "
                         f"COINM_CONTRACT_SIZE_USD: {', '.join(COINM_CONTRACT_SIZE_USD)}): state it with "
                         f"contract_size_usd, from contractSize in /dapi/v1/exchangeInfo or {CONTRACT_SPECS_URL}")
    return COINM_CONTRACT_SIZE_USD[pair]


def contracts_to_base(contracts, price, contract_size_usd: float) -> np.ndarray:
    """Base units of COIN-M sizes given in contracts.

    A COIN-M contract is worth ``contract_size_usd`` USD, so at price ``p`` (USD per base unit)::

        base = contracts * contract_size_usd / p

    which keeps the USD notional: ``base * p == contracts * contract_size_usd``. A level's size
    converts at that level's price, a trade's at the trade price. NaN (a missing level) stays NaN.

    Parameters
    ----------
    contracts, price : array_like
        Sizes in contracts and their prices (broadcast together).
    contract_size_usd : float
        USD value of one contract (:func:`coinm_contract_size`).

    Returns
    -------
    numpy.ndarray
        float64 sizes in base units.

    References
    ----------
    Binance, "Coin-Margined Futures Contract Specifications",
    https://www.binance.com/en/support/faq/a4470430e3164c13932be8967961aede

    Examples
    --------
    >>> float(contracts_to_base(3, 60_000.0, 100.0)[()])  # 3 x 100 USD at 60,000 USD per BTC
    0.005
    """
    return np.asarray(contracts, dtype=np.float64) * contract_size_usd / np.asarray(price, dtype=np.float64)


# --------------------------------------------------------------------------- market shapes
# Each returns (markets the message can belong to, why, the field that shows it).


def _depth_markets(d: dict, coinm_symbol: bool) -> tuple[frozenset, str, str]:
    if "ps" in d:
        return _COINM, f"its depthUpdate carries 'ps' (pair {d['ps']!r}), as COIN-M's do", "ps"
    if "pu" not in d:
        return _SPOT, "its depthUpdate has no 'pu', as spot's", "pu"
    if coinm_symbol:
        return _COINM, "its depthUpdate carries 'pu' and a COIN-M contract symbol", "s"
    return _USDM, "its depthUpdate carries 'pu' but no 'ps' (pair), as USD-M's", "pu"


def _trade_markets(d: dict, coinm_symbol: bool) -> tuple[frozenset, str, str]:
    if coinm_symbol:
        return _COINM, "its trade is of a COIN-M contract symbol", "s"
    if "X" in d:
        return _USDM, "its trade carries 'X' (futures trade type) and no COIN-M symbol", "X"
    if "M" in d:
        return _SPOT, "its trade carries 'M', as spot's", "M"
    return _SPOT | _USDM, "its trade symbol is no COIN-M contract (<pair>_PERP)", "s"


def _snapshot_markets(msg: dict) -> tuple[frozenset, str, str | None]:
    if "pair" in msg or "symbol" in msg:
        return _COINM, "its REST depth snapshot names 'symbol'/'pair', as /dapi/v1/depth", "pair"
    if "E" in msg or "T" in msg:
        return _USDM, "its REST depth snapshot carries 'E'/'T' and no 'pair', as /fapi/v1/depth", "E"
    return _ALL_MARKETS, "", None


# --------------------------------------------------------------------------- helpers


def _window_ns(value) -> int | None:
    """Window bound as ns since epoch (naive = UTC), or None."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _iso(ms: int | None) -> str | None:
    """ms since epoch -> ISO-8601 text (naive UTC), None stays None."""
    return None if ms is None else (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")


def _levels(raw, src: str, line: int, name: str) -> list[tuple[float, float]]:
    """Parse ``[[price, qty], ...]`` to floats; price finite > 0, qty finite >= 0."""
    try:
        levels = [(float(px), float(qty)) for px, qty in raw]
    except (TypeError, ValueError) as exc:
        raise DataError(src, f"unparsable price level: {exc}", line=line, column=name) from None
    for px, qty in levels:
        if not (0.0 < px < _INF and 0.0 <= qty < _INF):
            raise DataError(src, f"invalid price level [{px!r}, {qty!r}]: price must be finite and > 0, "
                                 "size finite and >= 0", line=line, column=name)
    return levels


def _require_ints(d: dict, names: Iterable[str], what: str, src: str, line: int) -> list[int]:
    """Fields ``names`` of ``d`` as ints, or a DataError naming the missing / bad field."""
    out = []
    for name in names:
        try:
            value = d[name]
        except KeyError:
            raise DataError(src, f"{what} has no field '{name}'", line=line, column=name) from None
        if type(value) is not int:
            raise DataError(src, f"{what} field '{name}' is not an integer: {value!r}", line=line, column=name)
        out.append(value)
    return out


def _require(d: dict, name: str, what: str, src: str, line: int):
    try:
        return d[name]
    except KeyError:
        raise DataError(src, f"{what} has no field '{name}'", line=line, column=name) from None
    except TypeError:
        raise DataError(src, f"{what} is not a JSON object", line=line) from None


def _positive(value, src: str, line: int, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(src, f"unparsable number {value!r}", line=line, column=name) from None
    if not 0.0 < x < _INF:
        raise DataError(src, f"{value!r} is not a finite number > 0", line=line, column=name)
    return x


# --------------------------------------------------------------------------- replay


class _TradeLog:
    """The trades of one stream kind (``trade`` or ``aggTrade``) kept in the window, and counts."""

    __slots__ = ("ts", "px", "qty", "sell", "ids", "messages", "before", "after")

    def __init__(self) -> None:
        self.ts, self.px, self.qty, self.sell = array("q"), array("d"), array("d"), array("b")
        self.ids: list[str] = []
        self.messages = self.before = self.after = 0

    def prepend(self, first: _TradeLog) -> None:
        """Put ``first``'s trades before these: they arrived earlier (in the carried lines)."""
        self.ts, self.px, self.qty = first.ts + self.ts, first.px + self.px, first.qty + self.qty
        self.sell, self.ids = first.sell + self.sell, first.ids + self.ids
        self.messages += first.messages
        self.before += first.before
        self.after += first.after


class _Replay:
    """State of one replay: the book, its sync state, the sample grid and the outputs.

    A depth update travels as a tuple ``(E, U, u, pu, bids, asks, line, src)``.
    """

    def __init__(self, symbol: str, market: str, interval_ms: int, start_ns, end_ns, on_gap: str):
        self.symbol = symbol.upper()
        self.sym_b = symbol.lower().encode()
        self.futures = market != "spot"
        self.market = market
        self.coinm_symbol = coinm_pair(symbol) is not None
        self.contract_size: float | None = None  # USD per contract (COIN-M), set by the caller
        self.on_gap = on_gap
        self.step = interval_ms
        step_ns = interval_ms * 1_000_000
        # Grid bounds: grid time g is in the window iff start_g <= g < end_g.
        self.start_g = -_FAR if start_ns is None else _ceil_div(start_ns, step_ns) * interval_ms
        self.end_g = _FAR if end_ns is None else _ceil_div(end_ns, step_ns) * interval_ms
        # Trade bounds in ms, same reasoning with a 1 ms grid.
        self.start_ms = -_FAR if start_ns is None else _ceil_div(start_ns, 1_000_000)
        self.end_ms = _FAR if end_ns is None else _ceil_div(end_ns, 1_000_000)

        self.book = OrderBook()
        self.state = _UNSYNCED
        self.snap_id = 0          # lastUpdateId of the snapshot being synced to
        self.last_u = 0           # u of the last applied update
        self.last_applied = None  # (E, line, src) of the last applied update
        self.last_ids = None      # (E, U, u, pu) of the last applied update: a repeat of it is a duplicate
        self.last_E = None        # E of the last depth update received (arrival order)
        self.buffer: deque = deque(maxlen=BUFFER_MAX)
        self.next_g = None        # next grid time not yet emitted or dropped
        self.src = ""             # the file being read, as errors name it
        self.src_file = ""        # ... and its path

        # Carrying the book across windows (module docstring).
        self.state_out: BookState | None = None  # the book at the cut, once the replay is past it
        self.lines_out: list = []  # the lines that travel with it
        self.keep_line = False     # the message just read goes with them (a trade past the end)
        self.last_seen_u = None    # u of the last depth update read
        self.carry_in: dict | None = None  # what became of the previous window's book (report)
        self.carrying = False      # the files are continuing the carried book (no snapshot seen yet)
        self.no_carry: tuple | None = None  # (why, file, line, column): no carried book to start from
        self.alone: deque | None = None  # the files' updates as a replay of them alone buffers them
        self.alone_evicted = 0
        self.files_first_E = None  # E of the files' first depth update (not the carried lines')
        self.carried_logs: dict | None = None  # trades of the carried lines
        self.deferred_gap: DataError | None = None  # on_gap="error" while carrying

        self.ts = array("q")
        self.rows = array("d")
        self.trade_logs = {"trade": _TradeLog(), "aggTrade": _TradeLog()}
        self.offsets = array("q")  # local receive - E, ms, per depth update

        self.files: list[dict] = []
        self.counts = dict.fromkeys((
            "lines", "blank_lines", "depth_updates", "snapshots", "other_symbol", "buffer_evicted", *_BOOK_COUNTS), 0)
        self.ignored: dict[str, int] = {}
        self.gaps: list[dict] = []
        self.intervals: list[dict] = []
        self.open_interval: dict | None = None

    # ----------------------------------------------------------------- reading

    def read_file(self, path: Path) -> None:
        """Replay every line of one capture file."""
        self.src = self.src_file = src = str(path)
        prefix, name_start = _STREAM_PREFIX, len(_STREAM_PREFIX)
        book_ticker = self.sym_b + b"@bookTicker"
        n_book_ticker = lineno = 0
        with open_binary(path) as fh:
            try:
                for lineno, line in enumerate(fh, 1):
                    sp = line.find(b" ")
                    if sp > 0 and line.startswith(prefix, sp + 1):
                        # Fast path: read the stream name without parsing the JSON.
                        begin = sp + 1 + name_start
                        stream = line[begin:line.find(b'"', begin)]
                        if stream == book_ticker:  # most lines of a capture
                            n_book_ticker += 1
                            continue
                        if self._skipped(stream):
                            continue
                    elif not line.strip():
                        self.counts["blank_lines"] += 1
                        continue
                    self._message(line, sp, lineno)
            except (OSError, EOFError, zlib.error) as exc:
                raise DataError(src, f"corrupt or truncated file after line {lineno}: {exc}",
                                line=lineno + 1) from None
        if n_book_ticker:
            self.ignored["bookTicker"] = self.ignored.get("bookTicker", 0) + n_book_ticker
        self.counts["lines"] += lineno
        self.files.append({"path": src, "lines": lineno})

    def _skipped(self, stream: bytes) -> bool:
        """Count and skip a stream message of another symbol, or a bookTicker, unparsed."""
        at = stream.find(b"@")
        if at < 0:
            return False  # let the JSON parser judge the line
        if stream[:at].lower() != self.sym_b:
            self.counts["other_symbol"] += 1
            return True
        if stream.startswith(b"bookTicker", at + 1):
            self.ignored["bookTicker"] = self.ignored.get("bookTicker", 0) + 1
            return True
        return False

    def _message(self, line: bytes, sp: int, lineno: int) -> None:
        """Parse one line and dispatch it; keep it for the next window if it belongs there."""
        self._dispatch(line, sp, lineno)
        if self.keep_line or self.state_out is not None:
            self.keep_line = False
            self.lines_out.append((self.src_file, lineno, line.rstrip(b"\r\n").decode()))

    def _dispatch(self, line: bytes, sp: int, lineno: int) -> None:
        src = self.src
        if sp <= 0:
            raise DataError(src, "expected '<local receive ns> <JSON>'", line=lineno)
        try:
            msg = _loads(line[sp + 1:])
        except _JSON_ERRORS as exc:
            raise DataError(src, f"malformed JSON: {exc}", line=lineno) from None
        if not isinstance(msg, dict):
            raise DataError(src, "message is not a JSON object", line=lineno)
        if "stream" in msg:
            self._stream_message(msg, line, sp, lineno)
        elif "lastUpdateId" in msg:
            self._snapshot(msg, lineno)
        else:
            raise DataError(src, "neither a stream message nor a REST depth snapshot", line=lineno)

    def _stream_message(self, msg: dict, line: bytes, sp: int, lineno: int) -> None:
        stream = msg["stream"]
        if not isinstance(stream, str):
            raise DataError(self.src, f"stream name is not text: {stream!r}", line=lineno, column="stream")
        stream_sym, _, kind = stream.partition("@")
        if stream_sym.lower().encode() != self.sym_b:
            self.counts["other_symbol"] += 1
            return
        data = _require(msg, "data", "stream message", self.src, lineno)
        event = data.get("e") if isinstance(data, dict) else None
        if event == "depthUpdate":
            self._depth(data, self._receive_ms(line, sp, lineno), lineno)
        elif event == "trade" or event == "aggTrade":
            self._trade(data, lineno, event)
        elif isinstance(data, dict):
            key = kind.split("@")[0] or "?"
            self.ignored[key] = self.ignored.get(key, 0) + 1
        else:
            raise DataError(self.src, "stream data is not a JSON object", line=lineno, column="data")

    def _check_market(self, shape: tuple, lineno: int) -> None:
        """Refuse a message whose shape belongs to another market than the declared one."""
        markets, why, column = shape
        if self.market in markets:
            return
        found = " or ".join(sorted(markets))
        fix = f"; set market: {found}" if len(markets) == 1 else ""
        raise DataError(self.src, f"market mismatch: declared market '{self.market}', but the capture is "
                                  f"{found}: {why}{fix}", line=lineno, column=column)

    def _receive_ms(self, line: bytes, sp: int, lineno: int) -> int:
        try:
            return int(line[:sp]) // 1_000_000
        except ValueError:
            raise DataError(self.src, f"local receive time is not an integer: {line[:sp][:40]!r}",
                            line=lineno) from None

    # ----------------------------------------------------------------- depth

    def _depth(self, d: dict, receive_ms: int, lineno: int) -> None:
        """Validate one depthUpdate and feed it to the sync state machine."""
        src = self.src
        self._check_market(_depth_markets(d, self.coinm_symbol), lineno)
        names = ("E", "U", "u", "pu") if self.futures else ("E", "U", "u")
        ints = _require_ints(d, names, "depthUpdate", src, lineno)
        E, U, u = ints[0], ints[1], ints[2]
        pu = ints[3] if self.futures else None
        if U > u:
            raise DataError(src, f"first update id U={U} > last update id u={u}", line=lineno, column="U")
        if self.files_first_E is None:
            if self.carrying:
                self._check_continues((E, U, u, pu), lineno)
            self.files_first_E = E
        if self.last_E is not None and E < self.last_E:
            raise DataError(src, f"event time went backwards in the depth stream: E={E} "
                                 f"({_iso(E)}) after E={self.last_E} ({_iso(self.last_E)})",
                            line=lineno, column="E")
        self.last_E = E
        if E >= self.end_ms and self.state_out is None:
            self.state_out = self._book_state()  # the cut: this update is the next window's
        if self.next_g is None:
            self.next_g = _ceil_div(E, self.step) * self.step
            self.open_interval = {"from": _iso(E), "until": None, "reason": "before the first snapshot",
                                  "samples_dropped": 0}
        self.counts["depth_updates"] += 1
        self.offsets.append(receive_ms - E)
        bids = _levels(_require(d, "b", "depthUpdate", src, lineno), src, lineno, "b")
        asks = _levels(_require(d, "a", "depthUpdate", src, lineno), src, lineno, "a")
        upd = (E, U, u, pu, bids, asks, lineno, src)
        if self.carrying:
            if len(self.alone) == BUFFER_MAX:
                self.alone_evicted += 1
            self.alone.append(upd)
        self.last_seen_u = u
        self._feed(upd)

    def _feed(self, upd: tuple) -> None:
        """Sync state machine: apply, buffer, drop as stale, or detect a gap."""
        state = self.state
        if state is _SYNCED and upd[:4] == self.last_ids:
            # the same message again (a capture or relay artefact): the book already holds it, and
            # it is no gap in the sequence (before, it dropped every sample to the next snapshot)
            self.counts["depth_duplicates_skipped"] += 1
            return
        if state is _SYNCED:
            if (upd[3] == self.last_u) if self.futures else (upd[1] == self.last_u + 1):
                self._apply(upd)
            elif self.futures:
                self._gap(upd, "sequence", "pu", self.last_u, upd[3])
            else:
                self._gap(upd, "sequence", "U", self.last_u + 1, upd[1])
        elif state is _AWAITING:
            U, u = upd[1], upd[2]
            L = self.snap_id
            if (u < L) if self.futures else (u <= L):
                self.counts["depth_stale_dropped"] += 1
                return
            target = L if self.futures else L + 1
            if U <= target <= u:
                self._apply(upd)
            else:
                self._gap(upd, "first update does not straddle the snapshot", "U", target, U)
        else:
            if len(self.buffer) == BUFFER_MAX:
                self.counts["buffer_evicted"] += 1
            self.buffer.append(upd)

    def _apply(self, upd: tuple) -> None:
        """Emit the grid rows before ``upd``'s event time, then apply it."""
        E = upd[0]
        if self.state is _SYNCED:
            if self.next_g < E:
                self._emit(E)
        else:  # this update (re)syncs the book
            self._drop(E)
            self._close_interval(E)
            self.state = _SYNCED
        self.book.apply(upd[4], upd[5])
        self.last_u = upd[2]
        self.last_applied = (E, upd[6], upd[7])
        self.last_ids = upd[:4]
        self.counts["depth_applied"] += 1

    def _gap(self, upd: tuple, kind: str, field_name: str, expected: int, got: int) -> None:
        """Sequence break: invalidate the book (or raise) and start buffering for a re-sync."""
        line, src = upd[6], upd[7]
        if self.on_gap == "error":
            error = DataError(src, f"sequence gap ({kind}): expected {field_name}={expected}, got "
                                   f"{field_name}={got}; the book is invalid until the next REST snapshot",
                              line=line, column=field_name)
            if not self.carrying:
                raise error
            # a snapshot later in the files makes them start from it, and this gap never was
            self.deferred_gap = self.deferred_gap or error
        if self.open_interval is None:  # the book was valid up to the last applied update
            self.open_interval = {"from": _iso(self.last_applied[0]), "until": None,
                                  "reason": f"gap at {Path(src).name} line {line}", "samples_dropped": 0}
        gap = {"file": src, "line": line, "kind": kind, "field": field_name, "expected": expected,
               "got": got, "invalid_from": self.open_interval["from"], "invalid_until": None}
        self.gaps.append(gap)
        self.open_interval.setdefault("_gaps", []).append(gap)
        self.state = _UNSYNCED
        self._feed(upd)

    # ----------------------------------------------------------------- snapshot

    def _snapshot(self, msg: dict, lineno: int) -> None:
        """Reset the book to a REST snapshot (unless the book is valid) and replay the buffer."""
        src = self.src
        named = msg.get("symbol")
        if named is not None and str(named).upper() != self.symbol:
            self.counts["other_symbol"] += 1  # COIN-M snapshots name their contract
            return
        self._check_market(_snapshot_markets(msg), lineno)
        (last_id,) = _require_ints(msg, ("lastUpdateId",), "depth snapshot", src, lineno)
        bids = _levels(_require(msg, "bids", "depth snapshot", src, lineno), src, lineno, "bids")
        asks = _levels(_require(msg, "asks", "depth snapshot", src, lineno), src, lineno, "asks")
        if self.carrying:
            self._drop_carry(f"{Path(src).name} line {lineno} holds a REST snapshot, which the day starts from "
                             "as when its files are read alone")
        self.counts["snapshots"] += 1
        if self.state is _SYNCED:
            self.counts["snapshots_ignored_book_valid"] += 1
            return
        self.book.load_snapshot(bids, asks)
        self.snap_id = last_id
        self.state = _AWAITING
        self.counts["snapshots_used"] += 1
        pending = list(self.buffer)
        self.buffer.clear()
        for upd in pending:
            self._feed(upd)

    # ----------------------------------------------------------------- carrying the book

    def continue_from(self, previous: BookState | str) -> None:
        """Start from the book the previous window ended in and replay the lines it carries; the
        files read next continue it (or start from their own snapshot)."""
        if isinstance(previous, str):
            self.no_carry = (previous, None, None, None)
            self.carry_in = {"used": False, "why_not": previous}
            return
        if (previous.symbol, previous.market) != (self.symbol, self.market):
            raise ValueError(f"the previous book is of {previous.symbol} ({previous.market}), "
                             f"not {self.symbol} ({self.market})")
        self.carry_in = {"from": previous.file, "until": previous.until, "last_update_id": previous.last_update_id,
                         "lines": len(previous.lines), "used": False, "why_not": None}
        if not previous.valid:
            self._no_book(f"{previous.describe()} was not in sync: {previous.why_invalid}")
            return
        self._restore(previous)
        self._replay_carried(previous.lines)
        self.files_first_E = None
        if self.state is not _SYNCED:
            self._no_book(f"{previous.describe()} went out of sync in its carried lines "
                          f"({self._why_not_synced()})")
            return
        self.carrying = True
        self.alone = deque(maxlen=BUFFER_MAX)

    def _replay_carried(self, lines: list) -> None:
        """Replay the previous window's lines past its cut. What they hold is counted apart from
        the files' (the report's ``carried_in``); their trades are kept apart until the files
        turn out to continue the carried book."""
        files_own = self.counts, self.ignored, self.offsets, self.trade_logs
        self.counts, self.ignored, self.offsets = dict.fromkeys(self.counts, 0), {}, array("q")
        self.trade_logs = {kind: _TradeLog() for kind in self.trade_logs}
        for src, lineno, text in lines:
            self.src, self.src_file = f"{src} (carried)", src
            raw = text.encode()
            self._message(raw, raw.find(b" "), lineno)
        carried, self.carried_logs = self.counts, self.trade_logs
        self.counts, self.ignored, self.offsets, self.trade_logs = files_own
        for key in _BOOK_COUNTS:
            self.counts[key] += carried[key]
        self.carry_in["depth_updates_carried"] = carried["depth_updates"]

    def _restore(self, previous: BookState) -> None:
        """The replay state right after the last update applied to ``previous``'s book."""
        self.book.load_snapshot(previous.bids, previous.asks)
        self.state = _SYNCED
        self.last_u = previous.book_update_id
        self.last_ids = previous.update_ids
        self.last_applied = (previous.event_ms, previous.line, f"{previous.file} (stored book)")
        self.last_E = previous.event_ms
        # every grid time before the first one at or after E was emitted by the previous window
        self.next_g = _ceil_div(previous.event_ms, self.step) * self.step

    def _check_continues(self, ids: tuple, lineno: int) -> None:
        """The files' first depth update must continue the carried book (Binance's chain rule)."""
        E, U, u, pu = ids
        if ids == self.last_ids:
            return  # the carried last update again: a duplicate, skipped by _feed
        field_name, expected, got = ("pu", self.last_u, pu) if self.futures else ("U", self.last_u + 1, U)
        if got != expected:
            off = f"a gap of {got - expected} update ids" if got > expected else "an overlap"
            found = (f"ends at u={self.last_u}, its first depth update has {field_name}={got} "
                     f"(expected {field_name}={expected}: {off})")
        elif E < self.last_E:
            found, field_name = (f"ends at E={self.last_E} ({_iso(self.last_E)}), its first depth update is older: "
                                 f"E={E} ({_iso(E)})"), "E"
        else:
            return
        self._drop_carry(f"the stored book of the previous day does not continue into it: the book {found}",
                         self.src, lineno, field_name)

    def _no_book(self, why: str) -> None:
        self.no_carry = (why, None, None, None)
        self.carry_in["why_not"] = why

    def _drop_carry(self, why: str, src: str | None = None, line: int | None = None,
                    column: str | None = None) -> None:
        """Forget the carried book and all that followed from it: from here the replay is the one
        of the files read alone (their updates so far buffered, nothing emitted)."""
        self.no_carry = (why, src, line, column)
        self.carry_in["why_not"] = why
        self.carrying = False
        self.book.clear()
        self.state = _UNSYNCED
        self.last_u, self.last_applied, self.last_ids = 0, None, None
        self.buffer, self.alone = self.alone, None
        first = self.files_first_E
        self.last_E = None if first is None else self.last_E
        self.next_g = None if first is None else _ceil_div(first, self.step) * self.step
        self.open_interval = None if first is None else {
            "from": _iso(first), "until": None, "reason": "before the first snapshot", "samples_dropped": 0}
        self.ts, self.rows = array("q"), array("d")
        self.gaps, self.intervals = [], []
        for key in _BOOK_COUNTS:
            self.counts[key] = 0
        self.counts["buffer_evicted"] = self.alone_evicted
        self.carried_logs = self.deferred_gap = None
        if self.state_out is not None:  # past the cut already: read alone, the files had no book there
            self.state_out = self._book_state()

    def _keep_carry(self) -> None:
        """The files held no snapshot: their rows are the carried book's continuation."""
        if self.deferred_gap is not None:
            raise self.deferred_gap
        for kind, log in self.trade_logs.items():
            log.prepend(self.carried_logs[kind])
        self.carry_in["used"] = True

    def _no_start(self) -> DataError:
        why, src, line, column = self.no_carry
        names = ", ".join(Path(f["path"]).name for f in self.files) or "the capture files"
        return DataError(src or (self.files[0]["path"] if self.files else "capture"),
                         f"no REST depth snapshot in {names} to start the book from, and {why}",
                         line=line, column=column)

    def _book_state(self) -> BookState:
        """The book now, as the next window continues it; the lines read from here on go with it."""
        until = None if self.end_ms >= _FAR else _iso(self.end_ms)
        if self.state is not _SYNCED:
            return BookState(self.symbol, self.market, until, False, file=self.src_file, lines=self.lines_out,
                             why_invalid=self._why_not_synced())
        E, line, src = self.last_applied
        return BookState(self.symbol, self.market, until, True, self.last_u, E, self.last_ids, src, line,
                         list(self.book.bids.items()), list(self.book.asks.items()), self.lines_out)

    def _why_not_synced(self) -> str:
        pending = self.open_interval.get("_gaps") if self.open_interval else None
        if pending:
            return f"sequence {_gap_text(pending[0])}, not re-synced by a REST snapshot"
        if self.counts["snapshots_used"] == 0:
            return "no REST depth snapshot had started the book"
        return f"the book was {self.state}"

    # ----------------------------------------------------------------- sampling

    def _emit(self, until: int) -> None:
        """Emit the valid book at grid times in ``[next_g, until)``; count those outside the window."""
        g, step, counts = self.next_g, self.step, self.counts
        if g >= until:
            return
        if g < self.start_g:
            skip = _ceil_div(min(until, self.start_g) - g, step)
            counts["samples_before_window"] += skip
            g += skip * step
        row = None
        stop = min(until, self.end_g)
        while g < stop:
            if row is None:
                row = self.book.top_row(N_LEVELS)
                if not row[0] < row[2 * N_LEVELS]:  # also an empty side (NaN)
                    self._crossed(g, row)
            self.ts.append(g)
            self.rows.extend(row)
            g += step
        if g < until:
            skip = _ceil_div(until - g, step)
            counts["samples_after_window"] += skip
            g += skip * step
        self.next_g = g

    def _crossed(self, g: int, row: list[float]) -> None:
        _, line, src = self.last_applied
        raise DataError(src, f"crossed or one-sided book at sample {_iso(g)}: best bid {row[0]}, best ask "
                             f"{row[2 * N_LEVELS]} after applying the depth update on this line",
                        line=line)

    def _drop(self, until: int) -> None:
        """Drop the grid times in ``[next_g, until)``: the book is invalid there."""
        g = self.next_g
        if g >= until:
            return
        n = _ceil_div(until - g, self.step)
        lo, hi = max(g, self.start_g), min(g + n * self.step, self.end_g)
        dropped = max(0, _ceil_div(hi - lo, self.step))
        self.counts["samples_dropped_invalid"] += dropped
        if self.open_interval is not None:
            self.open_interval["samples_dropped"] += dropped
        self.next_g = g + n * self.step

    def _close_interval(self, until_ms: int | None) -> None:
        interval, self.open_interval = self.open_interval, None
        if interval is None:
            return
        interval["until"] = _iso(until_ms)
        if interval["until"] == interval["from"] and "_gaps" not in interval:
            return  # the snapshot came before any update: nothing was ever invalid
        for gap in interval.pop("_gaps", ()):
            gap["invalid_until"] = interval["until"]
        self.intervals.append(interval)

    def finish(self) -> None:
        """End of data: keep or refuse the carried book, take the book state if the window's end
        was not reached, emit up to the last update's E, or drop up to it when invalid."""
        if self.carrying:
            self._keep_carry()
        elif self.no_carry is not None and self.counts["snapshots_used"] == 0:
            raise self._no_start()
        if self.state_out is None:
            self.state_out = self._book_state()
        self.state_out.last_update_id = self.last_seen_u
        if self.next_g is None:
            return
        if self.state is _SYNCED:
            self._emit(self.last_applied[0] + 1)
        else:
            self._drop(self.last_E + 1)
            self._close_interval(None)

    # ----------------------------------------------------------------- trades

    def _trade(self, d: dict, lineno: int, kind: str) -> None:
        """One ``trade`` (id ``t``) or ``aggTrade`` (id ``a``) message into its kind's log."""
        src = self.src
        self._check_market(_trade_markets(d, self.coinm_symbol), lineno)
        trade_ms, trade_id = _require_ints(d, ("T", "t" if kind == "trade" else "a"), kind, src, lineno)
        price = _positive(_require(d, "p", kind, src, lineno), src, lineno, "p")
        amount = _positive(_require(d, "q", kind, src, lineno), src, lineno, "q")
        maker = _require(d, "m", kind, src, lineno)
        if type(maker) is not bool:
            raise DataError(src, f"{kind} field 'm' is not true/false: {maker!r}", line=lineno, column="m")
        log = self.trade_logs[kind]
        log.messages += 1
        if trade_ms < self.start_ms:
            log.before += 1
        elif trade_ms >= self.end_ms:
            log.after += 1
            self.keep_line = True  # the next window's trade
        else:
            log.ts.append(trade_ms)
            log.px.append(price)
            log.qty.append(amount)
            log.sell.append(maker)  # buyer is maker -> the seller was the aggressor
            log.ids.append(str(trade_id))

    def _trade_stream(self) -> str:
        """The trade stream the output comes from: ``trade`` when the capture has it."""
        return "trade" if self.trade_logs["trade"].messages or not self.trade_logs["aggTrade"].messages \
            else "aggTrade"

    # ----------------------------------------------------------------- outputs

    def book_frame(self, exchange: str) -> pd.DataFrame:
        n, width = len(self.ts), 4 * N_LEVELS
        levels = np.frombuffer(self.rows, dtype=np.float64).reshape(n, width).T.copy() if n else \
            np.empty((width, 0))
        if self.contract_size is not None:  # rows: bid_px, bid_sz, ask_px, ask_sz blocks of N_LEVELS
            for px in (0, 2 * N_LEVELS):
                sz = slice(px + N_LEVELS, px + 2 * N_LEVELS)
                levels[sz] = contracts_to_base(levels[sz], levels[px:px + N_LEVELS], self.contract_size)
        data = {"ts": _ms_to_ts(self.ts), "symbol": [self.symbol] * n, "exchange": [exchange] * n}
        data.update(zip(L2_LEVEL_COLUMNS, levels))
        return pd.DataFrame(data, columns=L2_COLUMNS)

    def trade_frame(self, exchange: str) -> pd.DataFrame:
        log = self.trade_logs[self._trade_stream()]
        n = len(log.ts)
        ts = np.frombuffer(log.ts, dtype=np.int64) if n else np.empty(0, np.int64)
        order = np.argsort(ts, kind="stable") if n and np.any(np.diff(ts) < 0) else slice(None)
        sell = np.frombuffer(log.sell, dtype=np.int8).astype(bool) if n else np.empty(0, bool)
        price = np.frombuffer(log.px, dtype=np.float64) if n else np.empty(0)
        amount = np.frombuffer(log.qty, dtype=np.float64) if n else np.empty(0)
        if self.contract_size is not None:
            amount = contracts_to_base(amount, price, self.contract_size)
        frame = pd.DataFrame({
            "ts": _ms_to_ts(ts), "symbol": [self.symbol] * n, "exchange": [exchange] * n,
            "price": price, "amount": amount,
            "side": np.where(sell, "sell", "buy").astype(object),
            "trade_id": log.ids,
        }, columns=TRADE_COLUMNS)
        if isinstance(order, np.ndarray):
            frame = frame.iloc[order].reset_index(drop=True)
        return frame

    def _units(self) -> dict:
        if self.contract_size is None:
            return {"sizes": "base units, as the capture gives them"}
        return {"sizes": "base units, converted from contracts: contracts x contract_size_usd / price "
                         "(book: each level's price; trades: the trade price)",
                "contract_size_usd": self.contract_size, "reference": CONTRACT_SPECS_URL}

    def report(self, exchange: str, start_ns, end_ns) -> dict:
        c = self.counts
        stream = self._trade_stream()
        other = "aggTrade" if stream == "trade" else "trade"
        log, ignored = self.trade_logs[stream], dict(self.ignored)
        if self.trade_logs[other].messages:  # both trade streams captured: using both counts each fill twice
            ignored[other] = self.trade_logs[other].messages
        offsets = np.frombuffer(self.offsets, dtype=np.int64) if len(self.offsets) else None
        offset = None if offsets is None else {
            "min": int(offsets.min()), "median": float(np.median(offsets)), "max": int(offsets.max())}
        return {
            "symbol": self.symbol, "market": self.market, "exchange": exchange, "interval_ms": self.step,
            "window": {"start": None if start_ns is None else pd.Timestamp(start_ns).isoformat(),
                       "end": None if end_ns is None else pd.Timestamp(end_ns).isoformat()},
            "files": self.files,
            "messages": {"lines": c["lines"], "depth_updates": c["depth_updates"], "trades": log.messages,
                         "snapshots": c["snapshots"], "other_symbol": c["other_symbol"],
                         "blank_lines": c["blank_lines"], "ignored": ignored},
            "trade_stream": stream,
            "units": self._units(),
            "depth_updates_applied": c["depth_applied"],
            "depth_updates_stale_dropped": c["depth_stale_dropped"],
            "depth_updates_duplicates_skipped": c["depth_duplicates_skipped"],
            "depth_updates_left_in_buffer": len(self.buffer),
            "depth_updates_evicted_from_buffer": c["buffer_evicted"],
            "snapshots_used": c["snapshots_used"],
            "snapshots_ignored_book_valid": c["snapshots_ignored_book_valid"],
            "book_synced_at_end": self.state is _SYNCED,
            "carried_in": self.carry_in,
            "book_state_out": None if self.state_out is None else self.state_out.summary(),
            "gaps": self.gaps,
            "invalid_intervals": self.intervals,
            "samples": {"emitted": len(self.ts), "dropped_invalid": c["samples_dropped_invalid"],
                        "before_window": c["samples_before_window"],
                        "after_window": c["samples_after_window"]},
            "rows_before_window": {"book": c["samples_before_window"], "trades": log.before},
            "rows_after_window": {"book": c["samples_after_window"], "trades": log.after},
            "trades_emitted": len(log.ids),
            "clock": {
                "book_ts": "exchange event time E of the depth updates (ms, UTC)",
                "trade_ts": "exchange trade time T (ms, UTC)",
                "local_receive_minus_E_ms": offset,
                "note": "the local receive time is not used: it differs from the exchange clock "
                        "(see local_receive_minus_E_ms; negative = local clock behind)",
            },
        }


def _ms_to_ts(ms) -> np.ndarray:
    """int ms since epoch -> datetime64[us] (naive UTC)."""
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]").astype("datetime64[us]")
