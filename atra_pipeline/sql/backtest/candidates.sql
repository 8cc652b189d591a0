-- Every labelled event with a prediction in bt_predictions (ts, symbol, probability; registered
-- by the caller: out-of-fold, or the registered model's own), with its label, the mid at the
-- decision time and at t1 (last snapshot at or before), and the books the strategy reads: the
-- last snapshot at or before the decision (expected cost, sizing), and the books its orders meet,
-- the first snapshot at or after the decision time + $latency_us (entry) and t1 + $latency_us (exit).
-- The as-of joins find snapshot times only; the 40 book columns of each book are then joined by
-- (symbol, ts): as-of joins carrying wide rows were ~100x slower.
WITH events AS (
    SELECT p.ts, p.symbol, p.probability, l.side, l.t1, l.target, l.barrier, l.ret,
        p.ts + to_microseconds($latency_us) AS entry_at, l.t1 + to_microseconds($latency_us) AS exit_at
    FROM bt_predictions AS p
    JOIN labels AS l USING (ts, symbol)
), fills AS (
    SELECT e.ts, e.symbol, e.probability, e.side, e.t1, e.target, e.barrier, e.ret,
        (em.bid_px_0 + em.ask_px_0) / 2 AS entry_mid, (xm.bid_px_0 + xm.ask_px_0) / 2 AS exit_mid,
        em.ts AS dec_book_ts, eb.ts AS entry_fill_ts, xb.ts AS exit_fill_ts
    FROM events AS e
    ASOF LEFT JOIN raw_l2_snapshots AS em ON e.symbol = em.symbol AND e.ts >= em.ts
    ASOF LEFT JOIN raw_l2_snapshots AS xm ON e.symbol = xm.symbol AND e.t1 >= xm.ts
    ASOF LEFT JOIN raw_l2_snapshots AS eb ON e.symbol = eb.symbol AND e.entry_at <= eb.ts
    ASOF LEFT JOIN raw_l2_snapshots AS xb ON e.symbol = xb.symbol AND e.exit_at <= xb.ts
)
SELECT f.*, db.* EXCLUDE (symbol, dec_book_ts), eb.* EXCLUDE (symbol, entry_fill_ts), xb.* EXCLUDE (symbol, exit_fill_ts)
FROM fills AS f
LEFT JOIN (SELECT symbol, ts AS dec_book_ts, COLUMNS('^(bid|ask)_(px|sz)_[0-9]$') AS 'dec_\0'
           FROM raw_l2_snapshots) AS db USING (symbol, dec_book_ts)
LEFT JOIN (SELECT symbol, ts AS entry_fill_ts, COLUMNS('^(bid|ask)_(px|sz)_[0-9]$') AS 'entry_\0'
           FROM raw_l2_snapshots) AS eb USING (symbol, entry_fill_ts)
LEFT JOIN (SELECT symbol, ts AS exit_fill_ts, COLUMNS('^(bid|ask)_(px|sz)_[0-9]$') AS 'exit_\0'
           FROM raw_l2_snapshots) AS xb USING (symbol, exit_fill_ts)
ORDER BY f.ts, f.symbol
