-- Offending rows: trades priced more than $band_bps basis points from the mid of the latest
-- book snapshot at or before the trade (trades before the day's first snapshot are not judged).
SELECT t.ts, t.trade_id, t.price, (b.bid_px_0 + b.ask_px_0) / 2 AS mid,
       round(abs(t.price / ((b.bid_px_0 + b.ask_px_0) / 2) - 1) * 1e4, 2) AS deviation_bps
FROM {target} AS t
ASOF JOIN {book} AS b ON t.ts >= b.ts
WHERE abs(t.price / ((b.bid_px_0 + b.ask_px_0) / 2) - 1) * 1e4 > $band_bps
   OR NOT isfinite(t.price)
ORDER BY t.ts
