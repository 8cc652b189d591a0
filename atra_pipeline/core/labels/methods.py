"""Labels: CUSUM events, triple-barrier labels, meta-labels and sample weights.

The methods of Lopez de Prado, *Advances in Financial Machine Learning* (AFML, 2018): the
symmetric CUSUM filter (2.5.2.1), volatility-scaled triple barriers (3.2-3.4), meta-labelling
(3.6) and sample weights from label concurrency (4.3-4.5, 4.7). pandas in, pandas out; the
path-dependent scans are numba kernels (a per-event pandas loop is ~1000x slower).

Conventions
-----------
* Prices are compared in log space: a return is ``ln(p_t / p_event)``.
* ``close`` is the full price path (every tick or snapshot, sorted by time); barriers are judged
  on every price in it, not on decision times only. Prices sharing a timestamp are taken in the
  given order.
* Ties: a barrier is touched by the first price at or beyond it (``>=`` take-profit, ``<=``
  stop-loss). One price cannot touch both (take-profit > 0 > stop-loss), so two barriers inside
  one bar are resolved by which price of the path came first; a coarser path (bar closes) can
  only resolve them as finely as its prices.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

BARRIERS = ("pt", "sl", "vertical")
_PT, _SL, _VERTICAL, _INCOMPLETE, _NO_ENTRY = 0, 1, 2, 3, 4
_BLOCK = 64  # prices per block of the block max/min that lets the barrier scan skip quiet stretches


def _log_path(close: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(close.index, pd.DatetimeIndex):
        raise TypeError("close: needs a DatetimeIndex (the time of each price)")
    if not close.index.is_monotonic_increasing:
        raise ValueError("close: the index must be sorted by time")
    values = close.to_numpy(dtype=float)
    if not (np.isfinite(values).all() and (values > 0).all()):
        bad = close.index[~(np.isfinite(values) & (values > 0))][0]
        raise ValueError(f"close: prices must be finite and > 0 (first bad one at {bad})")
    return close.index.as_unit("ns").asi8, np.log(values)


def asof(values: pd.Series, times: pd.DatetimeIndex) -> np.ndarray:
    """``values`` as of each of ``times``: the last value at or before it (NaN before the first)."""
    values = values.sort_index()
    values = values[~values.index.duplicated(keep="last")]
    return values.reindex(times, method="ffill").to_numpy(dtype=float)


# -- CUSUM events --------------------------------------------------------------------------------

@numba.njit(cache=True)
def _cusum(r: np.ndarray, h: np.ndarray) -> np.ndarray:
    hits = np.zeros(r.size, dtype=np.bool_)
    s_pos = 0.0
    s_neg = 0.0
    for i in range(1, r.size):
        s_pos = max(0.0, s_pos + r[i])
        s_neg = min(0.0, s_neg + r[i])
        if s_neg < -h[i]:
            s_neg = 0.0
            hits[i] = True
        elif s_pos > h[i]:
            s_pos = 0.0
            hits[i] = True
    return hits


def cusum_events(close: pd.Series, threshold: float | pd.Series) -> pd.DatetimeIndex:
    """Times where the symmetric CUSUM filter fires (AFML 2.5.2.1, snippet 2.4).

    With log returns :math:`r_t = \\ln(p_t / p_{t-1})`,

    .. math:: S^+_t = \\max(0, S^+_{t-1} + r_t), \\qquad S^-_t = \\min(0, S^-_{t-1} + r_t)

    and an event at ``t`` when :math:`S^-_t < -h_t` (then :math:`S^-_t := 0`) or else when
    :math:`S^+_t > h_t` (then :math:`S^+_t := 0`).

    Parameters
    ----------
    close : pandas.Series
        Prices indexed by time, sorted.
    threshold : float or pandas.Series
        :math:`h`, in log-return units; a Series is aligned to ``close`` as of each time (the
        last value at or before it), and where it is NaN no event fires (the sums still run).

    Returns
    -------
    pandas.DatetimeIndex
        The event times, a subset of ``close.index``.
    """
    times, logp = _log_path(close)
    r = np.diff(logp, prepend=logp[:1])
    if isinstance(threshold, pd.Series):
        h = asof(threshold, close.index)
    else:
        h = np.full(r.size, float(threshold))
    h = np.where(np.isnan(h), np.inf, h)
    return close.index[_cusum(r, h)]


def daily_volatility(close: pd.Series, span: int = 100, lookback: pd.Timedelta = pd.Timedelta(days=1)) -> pd.Series:
    """Exponentially weighted std of returns over ``lookback`` (AFML 3.1, snippet 3.1).

    :math:`\\sigma_t = \\mathrm{EWMstd}_{span}(\\ln(p_t / p_{t - lookback}))`, where
    :math:`p_{t - lookback}` is the last price at or before ``t - lookback``. The barrier width
    unit: with ``lookback`` equal to the holding period, it is the typical move over one holding
    period. NaN where the path does not reach ``lookback`` back.
    """
    times, logp = _log_path(close)
    back = np.searchsorted(times, times - pd.Timedelta(lookback).value, side="right") - 1
    ret = np.where(back >= 0, logp - logp[np.maximum(back, 0)], np.nan)
    return pd.Series(ret, index=close.index).ewm(span=span).std().rename("volatility")


# -- triple barrier ------------------------------------------------------------------------------

@numba.njit(cache=True)
def _block_extremes(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_blocks = (logp.size + _BLOCK - 1) // _BLOCK
    hi = np.full(n_blocks, -np.inf)
    lo = np.full(n_blocks, np.inf)
    for j in range(logp.size):
        b = j // _BLOCK
        hi[b] = max(hi[b], logp[j])
        lo[b] = min(lo[b], logp[j])
    return hi, lo


@numba.njit(cache=True)
def touch(x: float, side: float, up: float, down: float) -> int:
    """``_PT``/``_SL`` if the side-signed return ``x`` touches a barrier, else -1."""
    r = side * x
    if r >= up:
        return _PT
    if r <= down:
        return _SL
    return -1


@numba.njit(cache=True, parallel=True)
def _scan(times, logp, blk_hi, blk_lo, entry, last, vertical_ns, path_end_ns, side, up, down):
    """For each event: the index of the first price touching a barrier and which, the vertical
    barrier, or incomplete. Blocks whose max and min touch nothing are skipped: the side-signed
    return is monotone in the price, so the block's extremes decide for the whole block."""
    n = entry.size
    code = np.empty(n, dtype=np.int8)
    hit = np.empty(n, dtype=np.int64)
    for e in numba.prange(n):
        i0 = entry[e]
        if i0 < 0:
            code[e] = _NO_ENTRY
            hit[e] = -1
            continue
        p0 = logp[i0]
        j = i0 + 1
        found = -1
        kind = -1
        while j <= last[e]:
            b = j // _BLOCK
            if j % _BLOCK == 0 and (b + 1) * _BLOCK - 1 <= last[e]:
                if touch(blk_hi[b] - p0, side[e], up[e], down[e]) < 0 and \
                        touch(blk_lo[b] - p0, side[e], up[e], down[e]) < 0:
                    j += _BLOCK
                    continue
            kind = touch(logp[j] - p0, side[e], up[e], down[e])
            if kind >= 0:
                found = j
                break
            j += 1
        if found >= 0:
            code[e] = kind
            hit[e] = found
        elif vertical_ns[e] <= path_end_ns:
            code[e] = _VERTICAL
            hit[e] = last[e]
        else:
            code[e] = _INCOMPLETE
            hit[e] = -1
    return code, hit


def triple_barrier_labels(close: pd.Series, events: pd.DatetimeIndex, target: pd.Series,
                          pt_sl: tuple[float, float], max_holding: pd.Timedelta, side: pd.Series | None = None,
                          min_return: float = 0.0, path_end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Triple-barrier labels (AFML 3.4, snippets 3.2-3.4, 3.6), judged on every price of the path.

    For an event at :math:`t_0` with entry price :math:`p_0` (the last price at or before
    :math:`t_0`), side :math:`s` (+1 without ``side``) and width :math:`\\tau` = ``target`` at
    :math:`t_0`, the path after :math:`t_0` touches

    * the take-profit at the first :math:`t > t_0` with :math:`s \\ln(p_t/p_0) \\ge pt\\,\\tau`,
    * the stop-loss at the first :math:`t > t_0` with :math:`s \\ln(p_t/p_0) \\le -sl\\,\\tau`,
    * else the vertical barrier :math:`t_0 + max\\_holding` (return to the last price at or
      before it). A horizontal barrier with multiplier 0 is disabled.

    Parameters
    ----------
    close : pandas.Series
        The price path, every price (ticks or snapshots), indexed by time and sorted.
    events : pandas.DatetimeIndex
        Event times (need not be times of ``close``).
    target : pandas.Series
        Barrier width unit in log-return units, read as of each event (e.g. ``daily_volatility``).
    pt_sl : (float, float)
        Take-profit and stop-loss multipliers of ``target``; 0 disables that barrier.
    max_holding : pandas.Timedelta
        Distance of the vertical barrier.
    side : pandas.Series, optional
        +1 long / -1 short per event (meta-labelling); events with side 0 or NaN are left out.
    min_return : float
        Events whose target is NaN or <= ``min_return`` are left out (AFML's ``minRet``).
    path_end : pandas.Timestamp, optional
        Time up to which the path is known complete (default: its last price). An event whose
        path touches no horizontal barrier by ``path_end`` while its vertical barrier lies beyond
        it is *incomplete*: left out, never guessed.

    Returns
    -------
    pandas.DataFrame
        Indexed by event time: ``t1`` (time of the touching price, or the vertical barrier),
        ``ret`` (:math:`s \\ln(p_{t1}/p_0)`), ``label`` (without ``side``: 1 take-profit, -1
        stop-loss, 0 vertical; with ``side``: 1 if ``ret > 0`` else 0), ``barrier`` ('pt', 'sl',
        'vertical'). ``attrs`` counts the events left out: ``incomplete``, ``no_entry_price``,
        ``below_min_return``, ``no_side``.
    """
    pt, sl = (float(x) for x in pt_sl)
    if pt < 0 or sl < 0:
        raise ValueError(f"pt_sl={pt_sl}: multipliers must be >= 0 (0 disables a barrier)")
    times, logp = _log_path(close)
    events = pd.DatetimeIndex(events).sort_values().unique()
    ev_ns = events.as_unit("ns").asi8
    width = asof(target, events)
    keep = np.isfinite(width) & (width > min_return)
    counts = {"below_min_return": int((~keep).sum()), "no_side": 0}
    sides = np.ones(events.size)
    if side is not None:
        sides = side.reindex(events).to_numpy(dtype=float)
        has_side = np.isfinite(sides) & (sides != 0)
        counts["no_side"] = int((keep & ~has_side).sum())
        keep &= has_side
        sides = np.sign(np.where(has_side, sides, 1.0))
    events, ev_ns, width, sides = events[keep], ev_ns[keep], width[keep], sides[keep]

    horizon = pd.Timedelta(max_holding).value
    entry = np.searchsorted(times, ev_ns, side="right") - 1
    last = np.searchsorted(times, ev_ns + horizon, side="right") - 1
    end_ns = times[-1] if path_end is None else pd.Timestamp(path_end).as_unit("ns").value
    up = np.where(pt > 0, pt * width, np.inf)
    down = np.where(sl > 0, -sl * width, -np.inf)
    blk_hi, blk_lo = _block_extremes(logp)
    code, hit = _scan(times, logp, blk_hi, blk_lo, entry, last, ev_ns + horizon, end_ns, sides, up, down)

    done = code <= _VERTICAL
    counts["incomplete"] = int((code == _INCOMPLETE).sum())
    counts["no_entry_price"] = int((code == _NO_ENTRY).sum())
    code, hit, entry, sides, ev_ns = code[done], hit[done], entry[done], sides[done], ev_ns[done]
    t1 = np.where(code == _VERTICAL, ev_ns + horizon, times[hit])
    ret = sides * (logp[hit] - logp[entry])
    if side is None:
        label = np.select([code == _PT, code == _SL], [1, -1], 0)
    else:
        label = (ret > 0).astype(int)
    out = pd.DataFrame({"t1": pd.to_datetime(t1, unit="ns"), "ret": ret, "label": label,
                        "barrier": np.asarray(BARRIERS, dtype=object)[code]},
                       index=events[done].rename("event"))
    out.attrs.update(counts)
    return out


# -- meta-labels ---------------------------------------------------------------------------------

def flow_momentum_side(features: pd.DataFrame, threshold: float = 1.0, signal: str = "pressure_imbalance_5",
                       zscore: str | None = None) -> pd.Series:
    """The primary model of the meta-labelling: order-flow momentum.

    Bet with the order flow when it is unusual: side :math:`= \\mathrm{sign}(\\text{signal}_t)`
    where :math:`|z_t| >` ``threshold``, ``z`` the signal's z-score over the last hour of decision
    steps (column ``zscore``, default ``<signal>_step_zscore_1h``), else 0 (no bet). The default
    signal is the top-5 depth imbalance: resting depth leans towards the side the flow is coming
    from, and that imbalance predicts short-horizon mid moves (Cont, Kukanov & Stoikov 2014;
    Cartea, Donnelly & Jaimungal 2018). ``signal="ofi_norm_1m"`` gives OFI momentum. The
    meta-label then learns when to trust the bet (AFML 3.6). ``features`` is indexed by time.
    """
    z = features[zscore or f"{signal}_step_zscore_1h"]
    return np.sign(features[signal]).where(z.abs() > threshold, 0.0).fillna(0.0).rename("side")


def meta_labels(close: pd.Series, features: pd.DataFrame, events: pd.DatetimeIndex, target: pd.Series,
                pt_sl: tuple[float, float], max_holding: pd.Timedelta, threshold: float = 1.0,
                min_return: float = 0.0, path_end: pd.Timestamp | None = None,
                signal: str = "pressure_imbalance_5", zscore: str | None = None) -> pd.DataFrame:
    """Meta-labels (AFML 3.6) of the order-flow momentum primary model at ``events``.

    The side comes from :func:`flow_momentum_side` (on ``signal``, gated on ``zscore``) at each
    event; events where it does not bet are left out (counted in ``attrs['no_side']``). The label
    is 1 when the side's trade, exited at the first barrier, made money, else 0. Returns
    :func:`triple_barrier_labels`'s frame plus ``side`` and ``outcome`` (the barrier in the
    side's terms: 1 take-profit, -1 stop-loss, 0 vertical, for a multiclass model).
    """
    side = flow_momentum_side(features, threshold, signal, zscore).reindex(pd.DatetimeIndex(events))
    out = triple_barrier_labels(close, events, target, pt_sl, max_holding, side=side,
                                min_return=min_return, path_end=path_end)
    out["side"] = side.reindex(out.index).astype(int)
    out["outcome"] = out["barrier"].map({"pt": 1, "sl": -1, "vertical": 0}).astype(int)
    return out


# -- sample weights ------------------------------------------------------------------------------

def _spans(t1: pd.Series, index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``[start, stop)`` in ``index`` of each label's closed interval [event, t1]."""
    ns = index.as_unit("ns").asi8
    start = np.searchsorted(ns, pd.DatetimeIndex(t1.index).as_unit("ns").asi8, side="left")
    stop = np.searchsorted(ns, pd.DatetimeIndex(t1.to_numpy()).as_unit("ns").asi8, side="right")
    return start, stop


def _concurrency(start: np.ndarray, stop: np.ndarray, n: int) -> np.ndarray:
    delta = np.zeros(n + 1)
    np.add.at(delta, start, 1.0)
    np.add.at(delta, stop, -1.0)
    return np.cumsum(delta)[:n]


def average_uniqueness(t1: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    """Average uniqueness of each label over its life (AFML 4.3-4.4, snippets 4.1-4.2).

    With concurrency :math:`c_t = \\#\\{j : t_{0,j} \\le t \\le t_{1,j}\\}` on the times ``index``,
    label :math:`i`'s uniqueness is the mean of :math:`1/c_t` over the times of
    :math:`[t_{0,i}, t_{1,i}]`: 1 for a label sharing its life with none, 1/2 for two identical
    ones. ``t1`` is indexed by event time. NaN for a label spanning no time of ``index``.
    """
    start, stop = _spans(t1, index)
    c = _concurrency(start, stop, len(index))
    inv = np.concatenate([[0.0], np.cumsum(np.divide(1.0, c, out=np.zeros_like(c), where=c > 0))])
    n = stop - start
    avg = np.divide(inv[stop] - inv[start], n, out=np.full(n.size, np.nan), where=n > 0)
    return pd.Series(avg, index=t1.index, name="uniqueness")


def sample_weights(labels: pd.DataFrame, close: pd.Series, decay: float = 1.0, balanced: bool = False,
                   floor: float = 0.01) -> pd.Series:
    """Sample weights: uniqueness x absolute-return attribution x time decay (AFML ch. 4).

    .. math:: w_i \\propto \\bar u_i \\cdot \\max\\Big(\\Big|\\sum_{t \\in (t_{0,i}, t_{1,i}]}
              \\frac{r_t}{c_t}\\Big|, \\; floor \\cdot \\overline{a}\\Big) \\cdot d_i

    :math:`\\bar u_i` from :func:`average_uniqueness` on ``close``'s times, :math:`r_t` the log
    returns of ``close`` and :math:`c_t` the concurrency (snippet 4.10), :math:`\\overline{a}` the
    mean attribution (the floor keeps a label whose path did not move at a small positive
    weight), and :math:`d_i` the linear time decay of snippet 4.11 on cumulative uniqueness:
    the newest label 1, the oldest ``decay`` (in (0, 1]; 1 = no decay). ``balanced`` then scales
    each class of ``labels['label']`` to an equal total. Normalised to sum to the number of labels.
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay={decay}: must be in (0, 1] (weights stay positive)")
    labels = labels.sort_index()
    index = close.index
    _, logp = _log_path(close)
    start, stop = _spans(labels["t1"], index)
    c = _concurrency(start, stop, len(index))
    r = np.diff(logp, prepend=logp[:1])
    attributed = np.concatenate([[0.0], np.cumsum(np.divide(r, c, out=np.zeros_like(r), where=c > 0))])
    # the returns accrued after the entry, those of the prices in (t0, t1]
    after = np.searchsorted(index.as_unit("ns").asi8, pd.DatetimeIndex(labels.index).as_unit("ns").asi8, side="right")
    attribution = np.abs(attributed[stop] - attributed[np.minimum(after, stop)])
    attribution = np.maximum(attribution, floor * attribution.mean()) if attribution.mean() > 0 else \
        np.ones(len(labels))
    uniqueness = average_uniqueness(labels["t1"], index).fillna(1.0).to_numpy()
    cum = np.cumsum(uniqueness)
    slope = (1.0 - decay) / cum[-1] if len(cum) else 0.0
    time_decay = 1.0 - slope * (cum[-1] - cum) if len(cum) else cum
    w = uniqueness * attribution * time_decay
    if balanced:
        classes = labels["label"].to_numpy()
        for k in np.unique(classes):
            w[classes == k] /= w[classes == k].sum()
    w = w * len(w) / w.sum() if len(w) else w
    return pd.Series(w, index=labels.index, name="weight")
