-- Order-flow imbalance (Cont, Kukanov & Stoikov 2014) summed over trailing windows (t - w, t].
-- raw: best level, base units; norm: raw / mean best-level depth (bid+ask)/2 over the window's
-- snapshots; weighted: the 10-level version, level m weighted 1/(m+1) (weights sum to 1).
WITH s AS (
    SELECT ts,
        max(c_ofi_0) FILTER (lookback_s = 0) AS o0, max(c_ofi_w) FILTER (lookback_s = 0) AS w0,
        max(c_depth_0) FILTER (lookback_s = 0) AS d0, max(c_n) FILTER (lookback_s = 0) AS n0,
        max(c_ofi_0) FILTER (lookback_s = 10) AS o10, max(c_ofi_w) FILTER (lookback_s = 10) AS w10,
        max(c_depth_0) FILTER (lookback_s = 10) AS d10, max(c_n) FILTER (lookback_s = 10) AS n10,
        max(c_ofi_0) FILTER (lookback_s = 30) AS o30, max(c_ofi_w) FILTER (lookback_s = 30) AS w30,
        max(c_depth_0) FILTER (lookback_s = 30) AS d30, max(c_n) FILTER (lookback_s = 30) AS n30,
        max(c_ofi_0) FILTER (lookback_s = 60) AS o60, max(c_ofi_w) FILTER (lookback_s = 60) AS w60,
        max(c_depth_0) FILTER (lookback_s = 60) AS d60, max(c_n) FILTER (lookback_s = 60) AS n60,
        max(c_ofi_0) FILTER (lookback_s = 300) AS o300, max(c_ofi_w) FILTER (lookback_s = 300) AS w300,
        max(c_depth_0) FILTER (lookback_s = 300) AS d300, max(c_n) FILTER (lookback_s = 300) AS n300
    FROM fx_state
    GROUP BY ts
)
SELECT ts,
    o0 - o10 AS ofi_raw_10s, (o0 - o10) / ((d0 - d10) / nullif(n0 - n10, 0)) AS ofi_norm_10s, w0 - w10 AS ofi_weighted_10s,
    o0 - o30 AS ofi_raw_30s, (o0 - o30) / ((d0 - d30) / nullif(n0 - n30, 0)) AS ofi_norm_30s, w0 - w30 AS ofi_weighted_30s,
    o0 - o60 AS ofi_raw_1m, (o0 - o60) / ((d0 - d60) / nullif(n0 - n60, 0)) AS ofi_norm_1m, w0 - w60 AS ofi_weighted_1m,
    o0 - o300 AS ofi_raw_5m, (o0 - o300) / ((d0 - d300) / nullif(n0 - n300, 0)) AS ofi_norm_5m, w0 - w300 AS ofi_weighted_5m
FROM s
