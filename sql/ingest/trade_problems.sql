-- The first problem (in file order) of a staged trades file: problem, column, row, detail, rows with it.
WITH rows AS (
    SELECT *, lag(ts) OVER (PARTITION BY src_symbol ORDER BY _row) AS prev_ts FROM {stage}
), problems AS (
    SELECT 'missing timestamp' AS problem, 'ts' AS col, _row, 'empty value' AS detail FROM rows WHERE ts IS NULL
    UNION ALL
    SELECT 'missing symbol or exchange', 'symbol', _row, 'empty value' FROM rows WHERE src_symbol IS NULL OR exchange IS NULL
    UNION ALL
    SELECT 'NaN or missing price', 'price', _row, CAST(price AS VARCHAR) FROM rows WHERE price IS NULL OR isnan(price)
    UNION ALL
    SELECT 'price not finite and > 0', 'price', _row, CAST(price AS VARCHAR) FROM rows WHERE NOT isnan(price) AND NOT (isfinite(price) AND price > 0)
    UNION ALL
    SELECT 'amount not a finite number > 0', 'amount', _row, CAST(amount AS VARCHAR)
    FROM rows WHERE amount IS NULL OR NOT (isfinite(amount) AND amount > 0)
    UNION ALL
    SELECT 'side is not buy or sell', 'side', _row, coalesce(side, 'empty') FROM rows WHERE side IS NULL OR side NOT IN ('buy', 'sell')
    UNION ALL
    SELECT 'missing trade id', 'trade_id', _row, 'empty value' FROM rows WHERE trade_id IS NULL
    UNION ALL
    SELECT 'time goes backwards', 'ts', _row, printf('%s after %s', ts::VARCHAR, prev_ts::VARCHAR) FROM rows WHERE ts < prev_ts
)
SELECT problem, col, _row, detail, count(*) OVER (PARTITION BY problem) AS n_rows
FROM problems
ORDER BY _row, problem
LIMIT 1
