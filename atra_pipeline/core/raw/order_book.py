"""A price-level limit order book: price -> resting size on each side.

Both sides are :class:`sortedcontainers.SortedDict` keyed by price in ascending order, so an
update is one dict write plus a sorted-list insert (O(log n)) and the best ``n`` levels are a
slice off one end of the sorted keys, which is what a sampler calls once per sample.
Prices and sizes are plain floats: the caller parses and validates them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sortedcontainers import SortedDict

NAN = float("nan")

Levels = Iterable[tuple[float, float]]


class OrderBook:
    """Aggregated (L2) book: one size per price level on each side.

    Examples
    --------
    >>> book = OrderBook()
    >>> book.load_snapshot([(99.0, 1.0), (98.0, 2.0)], [(101.0, 3.0)])
    >>> book.apply([(99.0, 0.0)], [(100.5, 1.5)])   # qty 0 removes the level
    >>> book.best_bid(), book.best_ask()
    (98.0, 100.5)
    """

    __slots__ = ("bids", "asks", "_bid_keys", "_ask_keys")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        # Live views (they survive clear()); slicing them is the fast top-N path.
        self._bid_keys = self.bids.keys()
        self._ask_keys = self.asks.keys()

    def clear(self) -> None:
        """Remove every level from both sides."""
        self.bids.clear()
        self.asks.clear()

    def load_snapshot(self, bids: Levels, asks: Levels) -> None:
        """Replace the whole book by a snapshot; levels with size 0 are left out.

        Parameters
        ----------
        bids, asks : iterable of (price, size)
            Full depth of each side, in any order.
        """
        self.clear()
        self.bids.update((px, qty) for px, qty in bids if qty)
        self.asks.update((px, qty) for px, qty in asks if qty)

    def apply(self, bids: Levels, asks: Levels) -> None:
        """Apply one incremental update: each level's new absolute size, 0 removes it.

        Parameters
        ----------
        bids, asks : iterable of (price, size)
            Changed levels of each side. Removing a level the book does not hold is a no-op
            (an exchange may delete levels outside the depth a snapshot carried).
        """
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for px, qty in levels:
                if qty:
                    side[px] = qty
                else:
                    side.pop(px, None)

    def best_bid(self) -> float:
        """Highest bid price, NaN when the bid side is empty."""
        return self._bid_keys[-1] if self.bids else NAN

    def best_ask(self) -> float:
        """Lowest ask price, NaN when the ask side is empty."""
        return self._ask_keys[0] if self.asks else NAN

    def is_crossed(self) -> bool:
        """True when both sides are non-empty and best bid >= best ask."""
        return bool(self.bids) and bool(self.asks) and self._bid_keys[-1] >= self._ask_keys[0]

    def top_row(self, n: int) -> list[float]:
        """Best ``n`` levels as one flat list ``bid_px*n, bid_sz*n, ask_px*n, ask_sz*n``.

        Level 0 is the best price; missing levels are NaN. This is the layout of
        ``schema.L2_LEVEL_COLUMNS`` and the sampler's hot path.
        """
        bid_px = self._bid_keys[-n:]
        bid_px.reverse()
        ask_px = self._ask_keys[:n]
        bids, asks = self.bids, self.asks
        bid_sz = [bids[px] for px in bid_px]
        ask_sz = [asks[px] for px in ask_px]
        if len(bid_px) < n:
            pad = [NAN] * (n - len(bid_px))
            bid_px += pad
            bid_sz += pad
        if len(ask_px) < n:
            pad = [NAN] * (n - len(ask_px))
            ask_px += pad
            ask_sz += pad
        return bid_px + bid_sz + ask_px + ask_sz

    def top(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Best ``n`` levels of each side.

        Returns
        -------
        bid_px, bid_sz, ask_px, ask_sz : numpy.ndarray
            float64 arrays of length ``n``, best level first, padded with NaN.
        """
        row = np.asarray(self.top_row(n), dtype=np.float64)
        return row[:n], row[n:2 * n], row[2 * n:3 * n], row[3 * n:]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def __repr__(self) -> str:
        return (f"OrderBook({len(self.bids)} bids, {len(self.asks)} asks, "
                f"best {self.best_bid()} / {self.best_ask()})")
