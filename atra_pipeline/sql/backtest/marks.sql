-- Each symbol's mid at each decision time of bt_decision_times (ts): the last snapshot at or
-- before it, for the marked-to-market equity of open positions.
SELECT d.ts, s.symbol, (b.bid_px_0 + b.ask_px_0) / 2 AS mid
FROM bt_decision_times AS d
CROSS JOIN (SELECT unnest($symbols::VARCHAR[]) AS symbol) AS s
ASOF LEFT JOIN raw_l2_snapshots AS b ON s.symbol = b.symbol AND d.ts >= b.ts
