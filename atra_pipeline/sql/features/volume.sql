-- Trade volume features (base units; aggressor side from the trade). VWAP over the window; the
-- mid's distance from it; on-balance volume over the last hour on the decision grid (a grid
-- step's volume counted up when the mid rose over the step, down when it fell).
WITH s AS (
    SELECT ts,
        max(c_vol) FILTER (lookback_s = 0) AS v0, max(c_vol) FILTER (lookback_s = 60) AS v60,
        max(c_vol) FILTER (lookback_s = 300) AS v300, max(c_vol) FILTER (lookback_s = 900) AS v900,
        max(c_buy) FILTER (lookback_s = 0) AS b0, max(c_buy) FILTER (lookback_s = 60) AS b60,
        max(c_buy) FILTER (lookback_s = 300) AS b300,
        max(c_notional) FILTER (lookback_s = 0) AS n0, max(c_notional) FILTER (lookback_s = 300) AS n300,
        max(c_notional) FILTER (lookback_s = 900) AS n900
    FROM fx_trade_state
    GROUP BY ts
), m AS (
    SELECT ts, max(mid) FILTER (lookback_s = 0) AS mid, max(mid) FILTER (lookback_s = 3600) AS mid_1h
    FROM fx_state
    GROUP BY ts
), steps AS (
    -- volume and mid change of each grid step over the look-back too
    SELECT time_bucket(to_seconds($step_s), ts - to_microseconds(1), TIMESTAMP '2000-01-01') + to_seconds($step_s) AS ts,
           sum(vol ORDER BY ts) AS vol
    FROM fx_trades
    GROUP BY 1
), mids AS (
    SELECT time_bucket(to_seconds($step_s), ts - to_microseconds(1), TIMESTAMP '2000-01-01') + to_seconds($step_s) AS ts,
           last(mid ORDER BY ts) AS close
    FROM fx_book
    GROUP BY 1
), obv AS (
    SELECT mids.ts, sum(sign(close - prev_close) * coalesce(vol, 0)) OVER w AS obv_1h
    FROM (SELECT ts, close, lag(close) OVER (ORDER BY ts) AS prev_close FROM mids) AS mids
    LEFT JOIN steps USING (ts)
    WINDOW w AS (ORDER BY mids.ts RANGE BETWEEN INTERVAL 3599 SECONDS PRECEDING AND CURRENT ROW)
)
SELECT s.ts,
    v0 - v60 AS volume_1m, v0 - v300 AS volume_5m, v0 - v900 AS volume_15m,
    ((v0 - v60) / 60) / nullif((v0 - v900) / 900, 0) AS volume_ratio_1m_15m,
    (2 * (b0 - b60) - (v0 - v60)) / nullif(v0 - v60, 0) AS trade_imbalance_1m,
    (2 * (b0 - b300) - (v0 - v300)) / nullif(v0 - v300, 0) AS trade_imbalance_5m,
    1e4 * (m.mid - (n0 - n300) / nullif(v0 - v300, 0)) / m.mid AS vwap_dist_5m_bps,
    1e4 * (m.mid - (n0 - n900) / nullif(v0 - v900, 0)) / m.mid AS vwap_dist_15m_bps,
    CASE WHEN m.mid_1h IS NOT NULL THEN obv.obv_1h END AS obv_1h
FROM s JOIN m USING (ts) LEFT JOIN obv ON obv.ts = s.ts
