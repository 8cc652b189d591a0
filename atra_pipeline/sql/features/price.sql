-- Mid-price features: log returns over trailing windows, realised volatility (root of summed
-- squared snapshot-to-snapshot log returns), a momentum z-score and the distance from the last
-- hour's high and low.
WITH s AS (
    SELECT ts,
        max(mid) FILTER (lookback_s = 0) AS m0, max(mid) FILTER (lookback_s = 10) AS m10,
        max(mid) FILTER (lookback_s = 60) AS m60, max(mid) FILTER (lookback_s = 300) AS m300,
        max(mid) FILTER (lookback_s = 900) AS m900, max(mid) FILTER (lookback_s = 3600) AS m3600,
        max(c_r2) FILTER (lookback_s = 0) AS v0, max(c_r2) FILTER (lookback_s = 60) AS v60,
        max(c_r2) FILTER (lookback_s = 300) AS v300, max(c_r2) FILTER (lookback_s = 900) AS v900,
        max(c_r2) FILTER (lookback_s = 3600) AS v3600
    FROM fx_state
    GROUP BY ts
), buckets AS (
    -- highest and lowest mid of each grid step (g - step, g], over the look-back too
    SELECT time_bucket(to_seconds($step_s), ts - to_microseconds(1), TIMESTAMP '2000-01-01') + to_seconds($step_s) AS ts,
           max(mid) AS hi, min(mid) AS lo
    FROM fx_book
    GROUP BY 1
), rolling AS (
    SELECT ts, max(hi) OVER w AS hi_1h, min(lo) OVER w AS lo_1h
    FROM buckets
    WINDOW w AS (ORDER BY ts RANGE BETWEEN INTERVAL 3599 SECONDS PRECEDING AND CURRENT ROW)
)
SELECT s.ts,
    ln(m0 / m10) AS ret_10s, ln(m0 / m60) AS ret_1m, ln(m0 / m300) AS ret_5m,
    ln(m0 / m900) AS ret_15m, ln(m0 / m3600) AS ret_1h,
    sqrt(v0 - v60) AS rv_1m, sqrt(v0 - v300) AS rv_5m, sqrt(v0 - v900) AS rv_15m, sqrt(v0 - v3600) AS rv_1h,
    ln(m0 / m900) / nullif(sqrt(v0 - v3600) * 0.5, 0) AS momentum_zscore_15m,
    CASE WHEN m3600 IS NOT NULL THEN 1e4 * (m0 - r.hi_1h) / m0 END AS dist_high_1h_bps,
    CASE WHEN m3600 IS NOT NULL THEN 1e4 * (m0 - r.lo_1h) / m0 END AS dist_low_1h_bps
FROM s LEFT JOIN rolling AS r ON r.ts = s.ts
