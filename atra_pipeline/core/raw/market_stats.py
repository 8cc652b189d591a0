"""Summary statistics of an L2 book + trades sample, comparable across markets.

:func:`market_stats` condenses one symbol's snapshots (raw ``L2_COLUMNS`` layout, see
:mod:`atra_pipeline.core.raw.schema`) and trades (``TRADE_COLUMNS``) into a flat ``dict`` of floats.
Prices are turned into basis points or ticks and sizes into quote currency, so that a synthetic
BTCUSDT day, a real Binance capture and an altcoin can be put side by side, e.g. to check that
the synthetic market (:mod:`atra_pipeline.core.raw.synthetic`) looks like a real one.

Conventions
-----------
* mid = (bid_px_0 + ask_px_0) / 2; spread = ask_px_0 - bid_px_0; bps = 1e4 * spread / mid.
* Returns are log returns of the mid in bps. The 1-second (1-minute) return is the change of
  the last mid of a calendar second (minute) bucket from the last mid of the previous bucket;
  a pair is only used when the two buckets are consecutive, so gaps in the data (e.g. between
  non-adjacent days) never produce a return.
* Depth at top-k on one side = sum over levels 0..k-1 of price * size, in quote currency.
  Missing levels (NULL) count as zero.
* Top-5 depth imbalance of a snapshot = (B5 - A5) / (B5 + A5), B5/A5 the summed base sizes of
  the first five bid/ask levels, in [-1, 1]. The 1-minute imbalance is its mean over the
  snapshots of a minute; ``imbalance_next_ret_corr`` is the Pearson correlation between the
  1-minute imbalance of minute m and the return from the end of minute m to the end of minute
  m+1, i.e. a forecast made only with data of minute m. ``ofi_next_ret_corr`` does the same
  with the trade order-flow imbalance (buy - sell quote volume) / (buy + sell quote volume).

The function never raises for a small sample: statistics that need more data than given are NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["market_stats", "infer_tick"]

_IMBALANCE_LEVELS = 5


def _level_cols(side: str, kind: str, df: pd.DataFrame) -> list[str]:
    cols, i = [], 0
    while f"{side}_{kind}_{i}" in df.columns:
        cols.append(f"{side}_{kind}_{i}")
        i += 1
    return cols


def infer_tick(book: pd.DataFrame) -> float:
    """Infer the price tick of a book as the smallest positive price gap it shows.

    The candidates are the best spread and the gaps between adjacent levels on each side. The
    result is right whenever some two quoted prices are one tick apart somewhere in the sample
    (in liquid books the spread alone nearly always is); otherwise it is a multiple of the tick.

    Parameters
    ----------
    book : pandas.DataFrame
        Snapshots with ``bid_px_i`` / ``ask_px_i`` columns.

    Returns
    -------
    float
        The inferred tick, rounded to 10 significant digits; NaN if no positive gap exists.
    """
    bid = book[_level_cols("bid", "px", book)].to_numpy(dtype=float)
    ask = book[_level_cols("ask", "px", book)].to_numpy(dtype=float)
    gaps = [ask[:, :1] - bid[:, :1], bid[:, :-1] - bid[:, 1:], ask[:, 1:] - ask[:, :-1]]
    flat = np.concatenate([g.ravel() for g in gaps])
    flat = flat[np.isfinite(flat) & (flat > 0)]
    if flat.size == 0:
        return math.nan
    return float(f"{flat.min():.10g}")


def _bucket_returns(ts: pd.Series, logmid: np.ndarray, freq: str) -> pd.Series:
    """Log-mid change between consecutive ``freq`` buckets (last value per bucket), in bps."""
    bucket = ts.dt.floor(freq)
    last = pd.Series(logmid, index=ts.index).groupby(bucket.to_numpy()).last()
    step = pd.Timedelta(freq)
    idx = last.index
    consecutive = (idx[1:] - idx[:-1]) == step
    rets = np.diff(last.to_numpy())[consecutive] * 1e4
    return pd.Series(rets, index=idx[1:][consecutive])


def _corr(x: pd.Series, y: pd.Series) -> float:
    both = pd.concat([x, y], axis=1).dropna()
    if len(both) < 3 or both.iloc[:, 0].std() == 0 or both.iloc[:, 1].std() == 0:
        return math.nan
    return float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1])


def _next_minute_returns(ts: pd.Series, logmid: np.ndarray) -> pd.Series:
    """For each minute m: log mid(end of m+1) - log mid(end of m), bps, indexed by m."""
    r = _bucket_returns(ts, logmid, "1min")  # indexed by the later minute
    r.index = r.index - pd.Timedelta("1min")
    return r


def market_stats(book: pd.DataFrame, trades: pd.DataFrame, tick: float | None = None) -> dict[str, float]:
    """Summarise one symbol's book snapshots and trades in market-comparable units.

    Parameters
    ----------
    book : pandas.DataFrame
        L2 snapshots of ONE symbol on one exchange in the raw layout (``ts``, ``bid_px_i``,
        ``bid_sz_i``, ``ask_px_i``, ``ask_sz_i``; level 0 best). Need not be sorted; rows with a
        missing or crossed top of book are ignored.
    trades : pandas.DataFrame
        Trades of the same symbol (``ts``, ``price``, ``amount``, ``side``); may be empty.
    tick : float, optional
        Price tick. Inferred with :func:`infer_tick` when omitted.

    Returns
    -------
    dict[str, float]
        ``n_snapshots``, ``n_trades``, ``minutes`` (time covered by the book: span plus one
        median snapshot interval), ``snapshot_interval_s`` (median), ``tick``,
        ``mid_median``;
        ``spread_bps_median``, ``spread_bps_mean``, ``spread_ticks_median``,
        ``spread_ticks_mean``, ``spread_1tick_share`` (share of snapshots whose spread is one
        tick);
        ``depth1_bid_quote_median``, ``depth1_ask_quote_median``,
        ``depth10_bid_quote_median``, ``depth10_ask_quote_median`` (top-1 / top-10 depth per
        side in quote currency);
        ``ret_std_1s_bps`` (NaN unless snapshots are at most 1 s apart), ``ret_std_1m_bps``,
        ``ret_kurt_1m`` (excess kurtosis of 1-minute returns);
        ``trades_per_min``, ``trade_quote_median`` (median price * amount), ``buy_share``
        (share of trades whose aggressor bought), ``buy_volume_share`` (same, quote-volume
        weighted);
        ``imbalance_next_ret_corr`` (1-minute top-5 depth imbalance vs next-minute return),
        ``ofi_next_ret_corr`` (1-minute trade order-flow imbalance vs next-minute return),
        ``n_minutes_signal`` (number of minute pairs behind the two correlations).

    Notes
    -----
    With ~1,400 minutes per day the sampling standard error of a correlation is about
    ``1 / sqrt(1400) ~ 0.027``: a single day cannot separate a signal of 0.05 from noise.
    """
    out: dict[str, float] = {}
    b = book.sort_values("ts", kind="stable") if len(book) else book
    bid0 = b["bid_px_0"].to_numpy(dtype=float) if len(b) else np.array([])
    ask0 = b["ask_px_0"].to_numpy(dtype=float) if len(b) else np.array([])
    ok = np.isfinite(bid0) & np.isfinite(ask0) & (ask0 > bid0)
    b = b.loc[ok] if len(b) else b
    bid0, ask0 = bid0[ok], ask0[ok]
    ts = b["ts"] if len(b) else pd.Series([], dtype="datetime64[us]")
    out["n_snapshots"] = float(len(b))
    out["n_trades"] = float(len(trades))

    if len(b) > 1:
        interval_s = float(np.median(np.diff(ts.to_numpy()).astype("timedelta64[us]").astype(np.int64)) / 1e6)
    else:
        interval_s = math.nan
    if len(b):
        span_s = (ts.iloc[-1] - ts.iloc[0]).total_seconds() + (interval_s if np.isfinite(interval_s) else 0.0)
    elif len(trades):
        span_s = (trades["ts"].max() - trades["ts"].min()).total_seconds()
    else:
        span_s = math.nan
    minutes = span_s / 60.0 if span_s and np.isfinite(span_s) and span_s > 0 else math.nan
    out["minutes"] = minutes
    out["snapshot_interval_s"] = interval_s

    if tick is None:
        tick = infer_tick(b) if len(b) else math.nan
    out["tick"] = float(tick)

    mid = (bid0 + ask0) / 2.0
    spread = ask0 - bid0
    nan = math.nan
    out["mid_median"] = float(np.median(mid)) if len(mid) else nan
    spread_bps = 1e4 * spread / mid if len(mid) else np.array([])
    spread_ticks = spread / tick if len(mid) else np.array([])
    # snap float noise (e.g. 60000.01 - 60000.00 = 0.0100000007) to whole ticks
    near = np.abs(spread_ticks - np.rint(spread_ticks)) < 1e-6 * np.maximum(1.0, np.abs(spread_ticks))
    spread_ticks = np.where(near, np.rint(spread_ticks), spread_ticks)
    out["spread_bps_median"] = float(np.median(spread_bps)) if len(mid) else nan
    out["spread_bps_mean"] = float(np.mean(spread_bps)) if len(mid) else nan
    out["spread_ticks_median"] = float(np.median(spread_ticks)) if len(mid) else nan
    out["spread_ticks_mean"] = float(np.mean(spread_ticks)) if len(mid) else nan
    out["spread_1tick_share"] = float(np.mean(spread_ticks == 1.0)) if len(mid) else nan

    for side in ("bid", "ask"):
        px = b[_level_cols(side, "px", b)].to_numpy(dtype=float) if len(b) else np.zeros((0, 1))
        sz = b[_level_cols(side, "sz", b)].to_numpy(dtype=float) if len(b) else np.zeros((0, 1))
        quote = np.nan_to_num(px * sz, nan=0.0)
        out[f"depth1_{side}_quote_median"] = float(np.median(quote[:, 0])) if len(quote) else nan
        out[f"depth10_{side}_quote_median"] = float(np.median(quote[:, :10].sum(axis=1))) if len(quote) else nan

    logmid = np.log(mid) if len(mid) else np.array([])
    if len(mid) > 2 and np.isfinite(interval_s) and interval_s <= 1.0:
        r1s = _bucket_returns(ts, logmid, "1s")
        out["ret_std_1s_bps"] = float(r1s.std()) if len(r1s) > 1 else nan
    else:
        out["ret_std_1s_bps"] = nan
    r1m = _bucket_returns(ts, logmid, "1min") if len(mid) > 2 else pd.Series([], dtype=float)
    out["ret_std_1m_bps"] = float(r1m.std()) if len(r1m) > 1 else nan
    out["ret_kurt_1m"] = float(r1m.kurt()) if len(r1m) > 3 else nan

    if len(trades):
        tq = trades["price"].to_numpy(dtype=float) * trades["amount"].to_numpy(dtype=float)
        is_buy = (trades["side"] == "buy").to_numpy()
        out["trades_per_min"] = float(len(trades) / minutes) if np.isfinite(minutes) else nan
        out["trade_quote_median"] = float(np.median(tq))
        out["buy_share"] = float(is_buy.mean())
        out["buy_volume_share"] = float(tq[is_buy].sum() / tq.sum()) if tq.sum() > 0 else nan
    else:
        out["trades_per_min"] = 0.0 if np.isfinite(minutes) else nan
        out["trade_quote_median"] = nan
        out["buy_share"] = nan
        out["buy_volume_share"] = nan

    # --- the signal: 1-minute imbalance / order flow vs the next minute's return -------------
    imb_corr = ofi_corr = nan
    n_sig = 0.0
    if len(mid) > 2:
        k = _IMBALANCE_LEVELS
        bsz = np.nan_to_num(b[_level_cols("bid", "sz", b)[:k]].to_numpy(dtype=float), nan=0.0).sum(axis=1)
        asz = np.nan_to_num(b[_level_cols("ask", "sz", b)[:k]].to_numpy(dtype=float), nan=0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            imb = (bsz - asz) / (bsz + asz)
        minute = ts.dt.floor("1min").to_numpy()
        imb_1m = pd.Series(imb).groupby(minute).mean()
        nxt = _next_minute_returns(ts, logmid)
        imb_corr = _corr(imb_1m, nxt)
        n_sig = float(len(pd.concat([imb_1m, nxt], axis=1).dropna()))
        if len(trades):
            signed = np.where(is_buy, tq, -tq)
            tmin = trades["ts"].dt.floor("1min").to_numpy()
            g = pd.DataFrame({"s": signed, "v": tq}).groupby(tmin).sum()
            ofi = (g["s"] / g["v"]).reindex(imb_1m.index)  # minutes without trades: NaN
            ofi_corr = _corr(ofi, nxt)
    out["imbalance_next_ret_corr"] = imb_corr
    out["ofi_next_ret_corr"] = ofi_corr
    out["n_minutes_signal"] = n_sig
    return out
