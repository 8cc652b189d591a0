-- Offending rows: best bid not strictly below best ask (or a side empty).
SELECT ts, bid_px_0, ask_px_0
FROM {target}
WHERE bid_px_0 IS NULL OR ask_px_0 IS NULL OR NOT (bid_px_0 < ask_px_0)
ORDER BY ts
