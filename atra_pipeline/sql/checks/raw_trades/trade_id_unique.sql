-- Offending rows: trade ids that occur more than once for the exchange and symbol.
SELECT exchange, trade_id, count(*) AS n_rows, min(ts) AS first_ts
FROM {target}
GROUP BY exchange, trade_id
HAVING count(*) > 1
ORDER BY first_ts
