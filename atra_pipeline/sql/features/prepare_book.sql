-- Per-snapshot quantities every family reads, for one symbol over [$load_start, $end): the
-- partition's day plus the look-back taken from the previous day. Each row uses only its own
-- snapshot and the one before it; cumulative sums (c_*) turn any window sum into a difference
-- of two as-of lookups, which is much faster than RANGE window frames.
-- Written out level by level (not with list lambdas): the per-snapshot pass is the catalogue's
-- largest cost, and scalar columns through one window pass are several times faster.
-- Every per-snapshot value of every family (stability's spread, top-5 depth and touch moves
-- too) comes out of this one lag pass and one cumulative pass, and only scalar columns are kept:
-- writing the 40 book columns or lists of them into the table cost more than the families that
-- read them.
-- Both passes are streaming windows (empty OVER, ROWS UNBOUNDED PRECEDING) over the snapshots
-- sorted once by ts: a window with ORDER BY ts sorts again and builds a segment tree for every
-- running sum, ~3x slower here. A streaming window reads its input in the order it arrives,
-- which DuckDB keeps from the ORDER BY but does not promise for a subquery, so c_n checks
-- that each pass saw every snapshot right after the previous one by ts and fails the build
-- otherwise. Running sums are fsum: streamed, it is correctly rounded at every row (and costs
-- no more than sum), so a window's difference of two of them is as precise as doubles allow.
-- Instantaneous families (pressure) read the raw snapshot as of each decision time instead.
CREATE OR REPLACE TEMP TABLE fx_book AS
WITH steps AS (
    SELECT *, lag(ts) OVER w AS p_ts, (bid_px_0 + ask_px_0) / 2 AS mid, lag((bid_px_0 + ask_px_0) / 2) OVER w AS prev_mid,
        lag(bid_px_0) OVER w AS p_bid_px_0, lag(bid_sz_0) OVER w AS p_bid_sz_0,
        lag(bid_px_1) OVER w AS p_bid_px_1, lag(bid_sz_1) OVER w AS p_bid_sz_1,
        lag(bid_px_2) OVER w AS p_bid_px_2, lag(bid_sz_2) OVER w AS p_bid_sz_2,
        lag(bid_px_3) OVER w AS p_bid_px_3, lag(bid_sz_3) OVER w AS p_bid_sz_3,
        lag(bid_px_4) OVER w AS p_bid_px_4, lag(bid_sz_4) OVER w AS p_bid_sz_4,
        lag(bid_px_5) OVER w AS p_bid_px_5, lag(bid_sz_5) OVER w AS p_bid_sz_5,
        lag(bid_px_6) OVER w AS p_bid_px_6, lag(bid_sz_6) OVER w AS p_bid_sz_6,
        lag(bid_px_7) OVER w AS p_bid_px_7, lag(bid_sz_7) OVER w AS p_bid_sz_7,
        lag(bid_px_8) OVER w AS p_bid_px_8, lag(bid_sz_8) OVER w AS p_bid_sz_8,
        lag(bid_px_9) OVER w AS p_bid_px_9, lag(bid_sz_9) OVER w AS p_bid_sz_9,
        lag(ask_px_0) OVER w AS p_ask_px_0, lag(ask_sz_0) OVER w AS p_ask_sz_0,
        lag(ask_px_1) OVER w AS p_ask_px_1, lag(ask_sz_1) OVER w AS p_ask_sz_1,
        lag(ask_px_2) OVER w AS p_ask_px_2, lag(ask_sz_2) OVER w AS p_ask_sz_2,
        lag(ask_px_3) OVER w AS p_ask_px_3, lag(ask_sz_3) OVER w AS p_ask_sz_3,
        lag(ask_px_4) OVER w AS p_ask_px_4, lag(ask_sz_4) OVER w AS p_ask_sz_4,
        lag(ask_px_5) OVER w AS p_ask_px_5, lag(ask_sz_5) OVER w AS p_ask_sz_5,
        lag(ask_px_6) OVER w AS p_ask_px_6, lag(ask_sz_6) OVER w AS p_ask_sz_6,
        lag(ask_px_7) OVER w AS p_ask_px_7, lag(ask_sz_7) OVER w AS p_ask_sz_7,
        lag(ask_px_8) OVER w AS p_ask_px_8, lag(ask_sz_8) OVER w AS p_ask_sz_8,
        lag(ask_px_9) OVER w AS p_ask_px_9, lag(ask_sz_9) OVER w AS p_ask_sz_9,
        -- list_sum skips a missing level (NULL) rather than making the depth NULL
        list_sum([bid_sz_0, bid_sz_1, bid_sz_2, bid_sz_3, bid_sz_4]) + list_sum([ask_sz_0, ask_sz_1, ask_sz_2, ask_sz_3, ask_sz_4]) AS d5
    FROM (
        SELECT * FROM raw_l2_snapshots
        -- $cutoff < $end only when checking look-ahead: the data as they stood at that time
        WHERE symbol = $symbol AND ts >= $load_start AND ts < $end AND ts <= $cutoff
        ORDER BY ts
    )
    WINDOW w AS ()
), levels AS (
    -- order-flow contribution of each level, ofi_contribution in sql/schema/003_feature_macros.sql
    SELECT *,
        ofi_contribution(bid_px_0, bid_sz_0, p_bid_px_0, p_bid_sz_0, ask_px_0, ask_sz_0, p_ask_px_0, p_ask_sz_0) AS e_0,
        ofi_contribution(bid_px_1, bid_sz_1, p_bid_px_1, p_bid_sz_1, ask_px_1, ask_sz_1, p_ask_px_1, p_ask_sz_1) AS e_1,
        ofi_contribution(bid_px_2, bid_sz_2, p_bid_px_2, p_bid_sz_2, ask_px_2, ask_sz_2, p_ask_px_2, p_ask_sz_2) AS e_2,
        ofi_contribution(bid_px_3, bid_sz_3, p_bid_px_3, p_bid_sz_3, ask_px_3, ask_sz_3, p_ask_px_3, p_ask_sz_3) AS e_3,
        ofi_contribution(bid_px_4, bid_sz_4, p_bid_px_4, p_bid_sz_4, ask_px_4, ask_sz_4, p_ask_px_4, p_ask_sz_4) AS e_4,
        ofi_contribution(bid_px_5, bid_sz_5, p_bid_px_5, p_bid_sz_5, ask_px_5, ask_sz_5, p_ask_px_5, p_ask_sz_5) AS e_5,
        ofi_contribution(bid_px_6, bid_sz_6, p_bid_px_6, p_bid_sz_6, ask_px_6, ask_sz_6, p_ask_px_6, p_ask_sz_6) AS e_6,
        ofi_contribution(bid_px_7, bid_sz_7, p_bid_px_7, p_bid_sz_7, ask_px_7, ask_sz_7, p_ask_px_7, p_ask_sz_7) AS e_7,
        ofi_contribution(bid_px_8, bid_sz_8, p_bid_px_8, p_bid_sz_8, ask_px_8, ask_sz_8, p_ask_px_8, p_ask_sz_8) AS e_8,
        ofi_contribution(bid_px_9, bid_sz_9, p_bid_px_9, p_bid_sz_9, ask_px_9, ask_sz_9, p_ask_px_9, p_ask_sz_9) AS e_9
    FROM steps
), flows AS (
    SELECT ts, p_ts, mid, d5,
        e_0 AS ofi_0,
        -- level weights 1/(m+1), normalised to sum to 1 over the 10 levels (harmonic number H10)
        (e_0 / 1 + e_1 / 2 + e_2 / 3 + e_3 / 4 + e_4 / 5 + e_5 / 6 + e_6 / 7 + e_7 / 8 + e_8 / 9 + e_9 / 10) / 2.9289682539682538 AS ofi_w,
        (bid_sz_0 + ask_sz_0) / 2 AS depth_0,
        coalesce(ln(mid / prev_mid), 0) AS r,
        1e4 * (ask_px_0 - bid_px_0) / mid AS spread,
        -- NULL on the first loaded snapshot (nothing to compare with): not counted as a change
        bid_px_0 <> p_bid_px_0 AS bid_moved,
        ask_px_0 <> p_ask_px_0 AS ask_moved,
        coalesce(sign(bid_px_0 - p_bid_px_0), 0)::INTEGER AS bid_step,
        coalesce(sign(ask_px_0 - p_ask_px_0), 0)::INTEGER AS ask_step
    FROM levels
)
SELECT ts, mid, spread, d5,
    fsum(ofi_0) OVER c AS c_ofi_0,
    fsum(ofi_w) OVER c AS c_ofi_w,
    fsum(depth_0) OVER c AS c_depth_0,
    fsum(r * r) OVER c AS c_r2,
    -- both passes must have seen the snapshots in ts order (see the note at the top)
    CASE WHEN p_ts IS NOT DISTINCT FROM lag(ts) OVER w AND (p_ts IS NULL OR p_ts <= ts) THEN count(*) OVER c
         ELSE error('prepare_book.sql: snapshots reached a window pass out of ts order') END AS c_n,
    -- stability's sums. The spread's are exact (fixed point, 1e-20 bps): its variance over a window
    -- is often a tiny difference E[x^2] - E[x]^2, and a running double sum, even correctly
    -- rounded, rounds by an amount that depends on how much history was loaded before the window.
    sum(spread::DECIMAL(38, 20)) OVER c AS c_s, sum((spread * spread)::DECIMAL(38, 20)) OVER c AS c_s2,
    fsum(d5) OVER c AS c_d, fsum(d5 * d5) OVER c AS c_d2,
    -- snapshots where the touch moved (sum, not count(*) FILTER: that window path is ~50x slower)
    sum(CASE WHEN bid_moved OR ask_moved THEN 1 ELSE 0 END) OVER c AS c_chg,
    -- net direction of the best bid's / best ask's moves so far: rises minus falls (exact integers)
    sum(bid_step) OVER c AS c_bid_net,
    sum(ask_step) OVER c AS c_ask_net,
    -- holes in the feed so far: snapshots more than $max_book_age_s after the one before them
    -- (staleness.sql: a window holding one has no book for part of its span)
    sum(CASE WHEN ts - p_ts > to_microseconds(($max_book_age_s * 1e6)::BIGINT) THEN 1 ELSE 0 END) OVER c AS c_gap
FROM flows
WINDOW w AS (), c AS (ROWS UNBOUNDED PRECEDING);

-- The decision grid: every $step_s seconds in [$grid_start, $end), none after $cutoff. The partition's rows are the
-- times from $start on; the earlier ones feed the derived families (lags, rolling statistics).
CREATE OR REPLACE TEMP TABLE fx_grid AS
SELECT unnest(generate_series($grid_start::TIMESTAMP, least($end::TIMESTAMP - to_microseconds(1), $cutoff::TIMESTAMP),
                              to_seconds($step_s))) AS ts;

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
