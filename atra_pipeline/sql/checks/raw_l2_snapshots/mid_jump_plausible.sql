-- Offending rows: a mid that moves more than $max_mid_jump_bps basis points (log return) from the
-- previous snapshot: a price out by a factor, a symbol's rows mixed with another's.
SELECT ts, prev_ts, prev_mid, mid, round(abs(ln(mid / prev_mid)) * 1e4, 2) AS jump_bps
FROM (
    SELECT ts, (bid_px_0 + ask_px_0) / 2 AS mid,
           lag(ts) OVER (ORDER BY ts) AS prev_ts, lag((bid_px_0 + ask_px_0) / 2) OVER (ORDER BY ts) AS prev_mid
    FROM {target}
)
WHERE prev_mid > 0 AND mid > 0 AND abs(ln(mid / prev_mid)) * 1e4 > $max_mid_jump_bps
ORDER BY ts
