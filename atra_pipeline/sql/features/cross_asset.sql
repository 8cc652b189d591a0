-- Cross-asset: this symbol against the market's reference. For every symbol but the reference
-- (BTCUSDT by default) the reference is that symbol's book; for the reference symbol itself it is
-- the equal-weighted aggregate of all the others ($peers lists the symbols that form it). A value
-- needs every peer: where one has no data it is NULL rather than a mean of fewer symbols.
--
-- Correlation and beta use 10-second mid log returns on clock-aligned bars (the last 360 complete
-- bars at or before t), whatever the decision step, so a model sees the same definition at any
-- step; 10 s rather than 1 s because asynchronous quotes bias very short-horizon correlations
-- towards zero (Epps 1979). Reference returns and OFI are read as of t exactly, like ret_* and
-- ofi_* of the symbol itself (ofi_contribution: sql/schema/003_feature_macros.sql).
WITH peer_book AS (
    SELECT symbol, ts, (bid_px_0 + ask_px_0) / 2 AS mid, (bid_sz_0 + ask_sz_0) / 2 AS depth,
        ofi_contribution(bid_px_0, bid_sz_0, lag(bid_px_0) OVER w, lag(bid_sz_0) OVER w,
                         ask_px_0, ask_sz_0, lag(ask_px_0) OVER w, lag(ask_sz_0) OVER w) AS e
    FROM raw_l2_snapshots
    WHERE list_contains($peers::VARCHAR[], symbol) AND ts >= $load_start AND ts < $end AND ts <= $cutoff
    WINDOW w AS (PARTITION BY symbol ORDER BY ts)
), peer_state AS (
    SELECT symbol, ts, mid, sum(e) OVER c AS c_ofi, sum(depth) OVER c AS c_depth, count(*) OVER c AS c_n
    FROM peer_book
    WINDOW c AS (PARTITION BY symbol ORDER BY ts ROWS UNBOUNDED PRECEDING)
), peers AS (
    SELECT unnest($peers::VARCHAR[]) AS symbol
), bars AS (
    -- range(), not unnest(generate_series()): an ASOF join from the latter is ~500x slower (DuckDB 2.0)
    SELECT range AS ts FROM range(time_bucket(INTERVAL 10 SECOND, $load_start::TIMESTAMP), $end::TIMESTAMP, INTERVAL 10 SECOND)
), peer_bars AS (
    SELECT g.ts, p.symbol, s.mid
    FROM bars AS g CROSS JOIN peers AS p ASOF LEFT JOIN peer_state AS s ON p.symbol = s.symbol AND g.ts >= s.ts
), market_bars AS (
    -- avg(... ORDER BY symbol): the peers' values summed in one order, so identical runs give identical bits
    SELECT ts, CASE WHEN count(r) = len($peers::VARCHAR[]) THEN avg(r ORDER BY symbol) END AS r_ref
    FROM (SELECT ts, symbol, ln(mid / lag(mid) OVER (PARTITION BY symbol ORDER BY ts)) AS r FROM peer_bars)
    GROUP BY ts
), own_bars AS (
    SELECT g.ts, b.mid FROM bars AS g ASOF LEFT JOIN fx_book AS b ON g.ts >= b.ts
), bar_stats AS (
    SELECT ts,
        regr_count(r_own, r_ref) OVER h AS n, corr(r_own, r_ref) OVER h AS rho, regr_slope(r_own, r_ref) OVER h AS beta
    FROM (SELECT o.ts, ln(o.mid / lag(o.mid) OVER (ORDER BY o.ts)) AS r_own, m.r_ref
          FROM own_bars AS o LEFT JOIN market_bars AS m USING (ts))
    WINDOW h AS (ORDER BY ts ROWS BETWEEN 359 PRECEDING AND CURRENT ROW)
), probes AS (
    SELECT g.ts, p.symbol, l.lookback_s, g.ts - to_seconds(l.lookback_s) AS at
    FROM fx_grid AS g CROSS JOIN peers AS p CROSS JOIN (VALUES (0), (60), (120), (300)) AS l(lookback_s)
), peer_at AS (
    SELECT p.ts, p.symbol,
        max(s.mid) FILTER (p.lookback_s = 0) AS m0, max(s.mid) FILTER (p.lookback_s = 60) AS m60,
        max(s.mid) FILTER (p.lookback_s = 120) AS m120, max(s.mid) FILTER (p.lookback_s = 300) AS m300,
        max(s.c_ofi) FILTER (p.lookback_s = 0) AS o0, max(s.c_ofi) FILTER (p.lookback_s = 60) AS o60,
        max(s.c_depth) FILTER (p.lookback_s = 0) AS d0, max(s.c_depth) FILTER (p.lookback_s = 60) AS d60,
        max(s.c_n) FILTER (p.lookback_s = 0) AS n0, max(s.c_n) FILTER (p.lookback_s = 60) AS n60
    FROM probes AS p ASOF LEFT JOIN peer_state AS s ON p.symbol = s.symbol AND p.at >= s.ts
    GROUP BY p.ts, p.symbol
), reference AS (
    SELECT ts,
        CASE WHEN count(ret_1m) = len($peers::VARCHAR[]) THEN avg(ret_1m ORDER BY symbol) END AS ret_1m,
        CASE WHEN count(ret_1m_prev) = len($peers::VARCHAR[]) THEN avg(ret_1m_prev ORDER BY symbol) END AS ret_1m_prev,
        CASE WHEN count(ret_5m) = len($peers::VARCHAR[]) THEN avg(ret_5m ORDER BY symbol) END AS ret_5m,
        CASE WHEN count(ofi_norm_1m) = len($peers::VARCHAR[]) THEN avg(ofi_norm_1m ORDER BY symbol) END AS ofi_norm_1m
    FROM (SELECT ts, symbol, ln(m0 / m60) AS ret_1m, ln(m60 / m120) AS ret_1m_prev, ln(m0 / m300) AS ret_5m,
                 (o0 - o60) / ((d0 - d60) / nullif(n0 - n60, 0)) AS ofi_norm_1m
          FROM peer_at)
    GROUP BY ts
), own AS (
    SELECT g.ts, ln(b0.mid / b60.mid) AS ret_1m
    FROM fx_grid AS g
    ASOF LEFT JOIN fx_book AS b0 ON g.ts >= b0.ts
    ASOF LEFT JOIN fx_book AS b60 ON g.ts - INTERVAL 60 SECOND >= b60.ts
), at_t AS (
    -- the last complete bar at or before t; a full hour of bars with both returns, or NULL (warm-up)
    SELECT g.ts, CASE WHEN s.n = 360 THEN s.rho END AS rho, CASE WHEN s.n = 360 THEN s.beta END AS beta
    FROM fx_grid AS g ASOF LEFT JOIN bar_stats AS s ON g.ts >= s.ts
)
SELECT g.ts,
    r.ret_1m AS xa_ref_ret_1m,
    r.ret_1m_prev AS xa_ref_ret_1m_prev,
    r.ret_5m AS xa_ref_ret_5m,
    r.ofi_norm_1m AS xa_ref_ofi_norm_1m,
    a.rho AS xa_corr_1h,
    a.beta AS xa_beta_1h,
    o.ret_1m - a.beta * r.ret_1m AS xa_resid_ret_1m
FROM fx_grid AS g
LEFT JOIN reference AS r USING (ts)
LEFT JOIN at_t AS a USING (ts)
LEFT JOIN own AS o USING (ts)
