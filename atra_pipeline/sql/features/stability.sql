-- Microstructure stability: how long the quotes at the touch live, how often they move, how noisy
-- the spread and the top-5 depth are, and how the book recovers from shocks (resilience).
--
-- Per snapshot (computed in prepare_book.sql's single pass, so no second window pass over the
-- snapshots here): spread in bps 1e4 (ask0 - bid0) / mid; top-5 depth d5 = bid plus ask sizes
-- over levels 0-4 (base units); the time the best bid / best ask price last changed. Cumulative
-- sums (c_*, exact or compensated so a window's difference keeps its precision over a day of
-- snapshots) turn the window (t - w, t] into the difference of two as-of lookups, as in ofi.sql.
-- A NULL state as of t - w (no snapshot at or before it) is a window the loaded data do not
-- cover: the column is NULL (warm-up).
-- Means and standard deviations are per snapshot, population (ddof = 0): sd = sqrt(E[x^2] - E[x]^2),
-- set to 0 where that variance is below 1e-12 E[x]^2 (rounding of the sums, not variation); a
-- window without any snapshot (a stale feed) has no mean or sd: NULL, while its change count is 0.
WITH prior AS (
    -- Each snapshot u against the mean of the snapshots in the 5 minutes before it, (u - 300 s, u):
    -- cumulative sums up to u without u, minus the state as of u - 300 s (NULL: data do not reach back).
    SELECT u.ts, u.spread, u.d5,
        ((u.c_s - p.c_s)::DOUBLE - u.spread) / nullif(u.c_n - 1 - p.c_n, 0) AS s_prior_5m,
        (u.c_d - u.d5 - p.c_d) / nullif(u.c_n - 1 - p.c_n, 0) AS d_prior_5m
    FROM fx_book AS u ASOF LEFT JOIN fx_book AS p ON u.ts - INTERVAL 300 SECOND >= p.ts
), shocks AS (
    -- Shocks (Foucault, Kadan & Kandel 2005; Large 2007 resiliency): a spread shock at u is a spread
    -- above 2x its prior 5-minute mean, a depth shock a top-5 depth below 1/2 of its prior 5-minute
    -- mean; unknown (not a shock) where the data do not reach 5 minutes before u.
    SELECT ts, spread > 2 * s_prior_5m AS spread_shock, d5 < 0.5 * d_prior_5m AS depth_shock FROM prior
), last_shock AS (
    -- the last shock at or before t: an as-of lookup into the shocks alone is cheaper than a
    -- running max over every snapshot (a second pass in ts order)
    SELECT g.ts, ss.ts AS spread_shock_at, ds.ts AS depth_shock_at
    FROM fx_grid AS g
    ASOF LEFT JOIN (SELECT ts FROM shocks WHERE spread_shock) AS ss ON g.ts >= ss.ts
    ASOF LEFT JOIN (SELECT ts FROM shocks WHERE depth_shock) AS ds ON g.ts >= ds.ts
), probes AS (
    SELECT g.ts, l.lookback_s, g.ts - to_seconds(l.lookback_s) AS at
    FROM fx_grid AS g CROSS JOIN (SELECT unnest([0, 60, 300, 900, 3600]) AS lookback_s) AS l
), state AS (
    SELECT p.ts, p.lookback_s, m.spread, m.d5, m.c_s, m.c_s2, m.c_d, m.c_d2, m.c_chg, m.c_n, m.c_bid_net, m.c_ask_net
    FROM probes AS p ASOF LEFT JOIN fx_book AS m ON p.at >= m.ts
), s AS (
    SELECT ts,
        max(spread) FILTER (lookback_s = 0) AS spread, max(d5) FILTER (lookback_s = 0) AS d5,
        max(c_bid_net) FILTER (lookback_s = 0) AS bn0, max(c_bid_net) FILTER (lookback_s = 300) AS bn300,
        max(c_ask_net) FILTER (lookback_s = 0) AS an0, max(c_ask_net) FILTER (lookback_s = 300) AS an300,
        max(c_s) FILTER (lookback_s = 0) AS s0, max(c_s) FILTER (lookback_s = 300) AS s300,
        max(c_s) FILTER (lookback_s = 3600) AS s3600,
        max(c_s2) FILTER (lookback_s = 0) AS q0, max(c_s2) FILTER (lookback_s = 300) AS q300,
        max(c_s2) FILTER (lookback_s = 3600) AS q3600,
        max(c_d) FILTER (lookback_s = 0) AS d0, max(c_d) FILTER (lookback_s = 60) AS d60,
        max(c_d) FILTER (lookback_s = 300) AS d300,
        max(c_d2) FILTER (lookback_s = 0) AS e0, max(c_d2) FILTER (lookback_s = 60) AS e60,
        max(c_d2) FILTER (lookback_s = 300) AS e300,
        max(c_chg) FILTER (lookback_s = 0) AS k0, max(c_chg) FILTER (lookback_s = 60) AS k60,
        max(c_chg) FILTER (lookback_s = 300) AS k300,
        max(c_n) FILTER (lookback_s = 0) AS n0, max(c_n) FILTER (lookback_s = 60) AS n60,
        max(c_n) FILTER (lookback_s = 300) AS n300, max(c_n) FILTER (lookback_s = 900) AS n900,
        max(c_n) FILTER (lookback_s = 3600) AS n3600
    FROM state
    GROUP BY ts
), moments AS (
    -- window means m and variances v; a NULL as-of-(t - w) state makes them NULL (warm-up)
    SELECT *,
        (s0 - s300)::DOUBLE / nullif(n0 - n300, 0) AS ms5, (q0 - q300)::DOUBLE / nullif(n0 - n300, 0) - ms5 * ms5 AS vs5,
        (s0 - s3600)::DOUBLE / nullif(n0 - n3600, 0) AS ms60, (q0 - q3600)::DOUBLE / nullif(n0 - n3600, 0) - ms60 * ms60 AS vs60,
        (d0 - d60) / nullif(n0 - n60, 0) AS md1, (e0 - e60) / nullif(n0 - n60, 0) - md1 * md1 AS vd1,
        (d0 - d300) / nullif(n0 - n300, 0) AS md5, (e0 - e300) / nullif(n0 - n300, 0) - md5 * md5 AS vd5
    FROM s
), sd AS (
    SELECT *,
        CASE WHEN vs5 > 1e-12 * ms5 * ms5 THEN sqrt(vs5) WHEN vs5 IS NOT NULL THEN 0 END AS sds5,
        CASE WHEN vs60 > 1e-12 * ms60 * ms60 THEN sqrt(vs60) WHEN vs60 IS NOT NULL THEN 0 END AS sds60,
        CASE WHEN vd1 > 1e-12 * md1 * md1 THEN sqrt(vd1) WHEN vd1 IS NOT NULL THEN 0 END AS sdd1,
        CASE WHEN vd5 > 1e-12 * md5 * md5 THEN sqrt(vd5) WHEN vd5 IS NOT NULL THEN 0 END AS sdd5
    FROM moments JOIN last_shock USING (ts)
)
SELECT ts,
    -- the best quotes' net direction over 5 minutes: (rises - falls) / snapshots, in [-1, 1]
    (bn0 - bn300)::DOUBLE / nullif(n0 - n300, 0) AS best_bid_drift_5m,
    (an0 - an300)::DOUBLE / nullif(n0 - n300, 0) AS best_ask_drift_5m,
    spread AS spread_bps,
    ms5 AS spread_bps_mean_5m,
    sds5 AS spread_bps_std_5m,
    sds60 AS spread_bps_std_1h,
    -- z-score of the spread at t in its window's distribution; 0 when the spread did not vary
    CASE WHEN sds5 > 0 THEN (spread - ms5) / sds5 WHEN sds5 = 0 THEN 0 END AS spread_zscore_5m,
    CASE WHEN sds60 > 0 THEN (spread - ms60) / sds60 WHEN sds60 = 0 THEN 0 END AS spread_zscore_1h,
    (k0 - k60)::DOUBLE AS best_changes_1m,
    (k0 - k300)::DOUBLE AS best_changes_5m,
    sdd1 AS depth5_std_1m,
    sdd5 AS depth5_std_5m,
    -- replenishment: top-5 depth at t over its 5-minute mean (< 1 depleted, back to 1 once refilled)
    d5 / nullif(md5, 0) AS depth5_replenish_ratio_5m,
    -- resilience: seconds from the last shock to t, capped at 600 s; a shock at u reads (u - 300 s, u),
    -- so the column reads 900 s before t and is NULL until the data reach back that far
    CASE WHEN n900 IS NOT NULL THEN least(600, coalesce(epoch(ts - spread_shock_at), 600)) END AS spread_shock_age_s,
    CASE WHEN n900 IS NOT NULL THEN least(600, coalesce(epoch(ts - depth_shock_at), 600)) END AS depth5_shock_age_s
FROM sd
