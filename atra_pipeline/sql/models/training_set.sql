-- The events of [$start_date, $end_date] (inclusive) with their labels and the features at the
-- event time, for the symbols in $symbols, in time order.
SELECT l.ts, l.symbol, l.t1, l.ret, l.weight, l.label, l.outcome, l.side, f.* EXCLUDE (ts, symbol)
FROM labels AS l
JOIN features AS f USING (ts, symbol)
WHERE l.ts >= $start_date::DATE AND l.ts < $end_date::DATE + INTERVAL 1 DAY
  AND list_contains($symbols::VARCHAR[], l.symbol)
ORDER BY l.ts, l.symbol
