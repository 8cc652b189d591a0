-- The symbol's mid-price path over [$path_start, $path_end): every snapshot, in time order. The
-- barriers are judged on every price of it, not only at decision times.
SELECT ts, (bid_px_0 + ask_px_0) / 2 AS mid
FROM raw_l2_snapshots
WHERE symbol = $symbol AND ts >= $path_start AND ts < $path_end
ORDER BY ts
