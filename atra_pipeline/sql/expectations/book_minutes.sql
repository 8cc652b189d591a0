-- One row per minute of {symbol}'s book in [{start}, {end}): the spread (bps) and the top-5 depth
-- (bid + ask sizes of levels 0-4, base units) of the minute's last snapshot, and the mid's log
-- return (bps) from the previous minute's last snapshot (NULL when that minute has none). One
-- value per minute whatever the source's snapshot interval, so days of 1 s and 100 ms compare.
SELECT minute, CAST(minute AS DATE) AS day, spread_bps, depth5,
       CASE WHEN lag(minute) OVER w = minute - INTERVAL 1 MINUTE THEN 1e4 * ln(mid / lag(mid) OVER w) END AS ret_1m_bps
FROM (
    SELECT time_bucket(INTERVAL 1 MINUTE, ts) AS minute,
           arg_max((bid_px_0 + ask_px_0) / 2, ts) AS mid,
           arg_max(1e4 * (ask_px_0 - bid_px_0) / ((bid_px_0 + ask_px_0) / 2), ts) AS spread_bps,
           arg_max(coalesce(bid_sz_0, 0) + coalesce(bid_sz_1, 0) + coalesce(bid_sz_2, 0) + coalesce(bid_sz_3, 0)
                   + coalesce(bid_sz_4, 0) + coalesce(ask_sz_0, 0) + coalesce(ask_sz_1, 0) + coalesce(ask_sz_2, 0)
                   + coalesce(ask_sz_3, 0) + coalesce(ask_sz_4, 0), ts) AS depth5
    FROM raw_l2_snapshots
    WHERE symbol = '{symbol}' AND ts >= TIMESTAMP '{start}' AND ts < TIMESTAMP '{end}'
    GROUP BY minute
)
WINDOW w AS (ORDER BY minute)
