-- Per-snapshot quantities every family reads, for one symbol over [$load_start, $end): the
-- partition's day plus the look-back taken from the previous day. Each row uses only its own
-- snapshot and the one before it; cumulative sums (c_*) turn any window sum into a difference
-- of two as-of lookups, which is much faster than RANGE window frames.
CREATE OR REPLACE TEMP TABLE fx_book AS
WITH lists AS (
    SELECT * FROM l2_as_lists('raw_l2_snapshots')
    -- $cutoff < $end only when checking look-ahead: the data as they stood at that time
    WHERE symbol = $symbol AND ts >= $load_start AND ts < $end AND ts <= $cutoff
), steps AS (
    SELECT *,
        lag(bid_px) OVER w AS prev_bid_px, lag(bid_sz) OVER w AS prev_bid_sz,
        lag(ask_px) OVER w AS prev_ask_px, lag(ask_sz) OVER w AS prev_ask_sz,
        (bid_px_0 + ask_px_0) / 2 AS mid
    FROM lists
    WINDOW w AS (ORDER BY ts)
), ofi AS (
    SELECT ts, mid, bid_px_0, ask_px_0, bid_sz_0, ask_sz_0, bid_px, bid_sz, ask_px, ask_sz,
        -- Cont, Kukanov & Stoikov (2014) order-flow contribution of level m between two snapshots:
        -- e = 1{Pb >= Pb'} qb - 1{Pb <= Pb'} qb' - 1{Pa <= Pa'} qa + 1{Pa >= Pa'} qa'   (' = previous)
        list_transform(range(1, len(bid_px) + 1), lambda m:
            coalesce(CASE WHEN bid_px[m] >= prev_bid_px[m] THEN bid_sz[m] ELSE 0 END
                   - CASE WHEN bid_px[m] <= prev_bid_px[m] THEN prev_bid_sz[m] ELSE 0 END
                   - CASE WHEN ask_px[m] <= prev_ask_px[m] THEN ask_sz[m] ELSE 0 END
                   + CASE WHEN ask_px[m] >= prev_ask_px[m] THEN prev_ask_sz[m] ELSE 0 END, 0)) AS e,
        ln(mid / lag(mid) OVER (ORDER BY ts)) AS r
    FROM steps
), flows AS (
    SELECT *, e[1] AS ofi_0,
        -- level weights 1/(m+1), normalised to sum to 1 over the 10 levels (harmonic number H10)
        list_sum(list_transform(range(1, len(e) + 1), lambda m: e[m] / m)) / 2.9289682539682538 AS ofi_w,
        coalesce(r, 0) AS r0
    FROM ofi
)
SELECT ts, mid, bid_px_0, ask_px_0, bid_sz_0, ask_sz_0, bid_px, bid_sz, ask_px, ask_sz, ofi_0, ofi_w, r0 AS r,
    sum(ofi_0) OVER c AS c_ofi_0,
    sum(ofi_w) OVER c AS c_ofi_w,
    sum((bid_sz_0 + ask_sz_0) / 2) OVER c AS c_depth_0,
    sum(r0 * r0) OVER c AS c_r2,
    count(*) OVER c AS c_n
FROM flows
WINDOW c AS (ORDER BY ts ROWS UNBOUNDED PRECEDING)
ORDER BY ts;

-- The decision grid: every $step_s seconds in [$grid_start, $end). The partition's rows are the
-- times from $start on; the earlier ones feed the derived families (lags, rolling statistics).
CREATE OR REPLACE TEMP TABLE fx_grid AS
SELECT unnest(generate_series($grid_start::TIMESTAMP, $end::TIMESTAMP - to_microseconds(1), to_seconds($step_s))) AS ts;

-- The book's cumulative state as of each decision time t and as of t - w for every look-back w
-- the catalogue uses ($lookbacks_s, 0 = now). A window's sum is state(t) - state(t - w); a NULL
-- state (no snapshot at or before t - w) marks a window the loaded data does not cover: warm-up.
CREATE OR REPLACE TEMP TABLE fx_state AS
WITH probes AS (
    SELECT g.ts, l.lookback_s, g.ts - to_seconds(l.lookback_s) AS at
    FROM fx_grid AS g CROSS JOIN (SELECT unnest($lookbacks_s) AS lookback_s) AS l
)
SELECT p.ts, p.lookback_s, b.ts AS state_ts, b.mid, b.c_ofi_0, b.c_ofi_w, b.c_depth_0, b.c_r2, b.c_n
FROM probes AS p ASOF LEFT JOIN fx_book AS b ON p.at >= b.ts;
