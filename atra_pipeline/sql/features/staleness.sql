-- Which decision times have a stale book behind a window: fx_stale(ts, lookback_s, stale) for each
-- look-back in $mask_lookbacks_s. The window (t - w, t] has a fresh book when the snapshot as of
-- t and the one as of t - w are each at most $max_book_age_s old and no two consecutive
-- snapshots between them are further apart than that (c_gap, prepare_book.sql). A stale window's
-- feature is NULL: a frozen book is not a quiet market, and the first snapshot after a hole
-- would book the whole outage's move as one return. A window the loaded data do not reach
-- (warm-up, no snapshot as of t - w) is not called stale here: it is NULL already.
CREATE OR REPLACE TEMP TABLE fx_stale AS
WITH probes AS (
    SELECT g.ts, l.lookback_s, g.ts - to_seconds(l.lookback_s) AS window_start
    FROM fx_grid AS g CROSS JOIN (SELECT unnest($mask_lookbacks_s) AS lookback_s) AS l
), ages AS (
    SELECT p.ts, p.lookback_s, p.window_start, n.ts AS now_ts, n.c_gap AS now_gap, b.ts AS then_ts, b.c_gap AS then_gap
    FROM probes AS p
    ASOF LEFT JOIN fx_book AS n ON p.ts >= n.ts
    ASOF LEFT JOIN fx_book AS b ON p.window_start >= b.ts
)
SELECT ts, lookback_s,
    coalesce(epoch(ts - now_ts) > $max_book_age_s
             OR epoch(window_start - then_ts) > $max_book_age_s
             OR now_gap > then_gap, false) AS stale
FROM ages;
