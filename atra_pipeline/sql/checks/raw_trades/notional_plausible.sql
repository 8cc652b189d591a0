-- Offending rows: a trade worth more than $max_trade_notional in the quote currency, more than
-- one trade can plausibly be (a misplaced decimal, contracts taken for base units).
SELECT ts, trade_id, price, amount, price * amount AS notional
FROM {target}
WHERE price * amount > $max_trade_notional
ORDER BY ts
