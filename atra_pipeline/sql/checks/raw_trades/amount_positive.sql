-- Offending rows: trade amount not a finite number > 0.
SELECT ts, trade_id, amount
FROM {target}
WHERE amount IS NULL OR NOT isfinite(amount) OR amount <= 0
ORDER BY ts
