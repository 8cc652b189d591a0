-- Each row of a staged trades file with its first problem, in the order listed (NULL: none), as
-- read by first_problem.sql. One pass over the file.
WITH rows AS (
    SELECT *, lag(ts) OVER (PARTITION BY src_symbol ORDER BY _row) AS prev_ts FROM {stage}
)
SELECT _row, CASE
        WHEN ts IS NULL THEN {{'problem': 'missing timestamp', 'col': 'ts', 'detail': 'empty value'}}
        WHEN src_symbol IS NULL OR exchange IS NULL
            THEN {{'problem': 'missing symbol or exchange', 'col': 'symbol', 'detail': 'empty value'}}
        WHEN price IS NULL OR isnan(price) THEN {{'problem': 'NaN or missing price', 'col': 'price',
            'detail': coalesce(price::VARCHAR, 'empty')}}
        WHEN NOT (isfinite(price) AND price > 0) THEN {{'problem': 'price not finite and > 0', 'col': 'price',
            'detail': price::VARCHAR}}
        WHEN amount IS NULL OR NOT (isfinite(amount) AND amount > 0) THEN {{'problem':
            'amount not a finite number > 0', 'col': 'amount', 'detail': coalesce(amount::VARCHAR, 'empty')}}
        WHEN side IS NULL OR side NOT IN ('buy', 'sell') THEN {{'problem': 'side is not buy or sell', 'col': 'side',
            'detail': coalesce(side, 'empty')}}
        WHEN trade_id IS NULL THEN {{'problem': 'missing trade id', 'col': 'trade_id', 'detail': 'empty value'}}
        WHEN ts < prev_ts THEN {{'problem': 'time goes backwards', 'col': 'ts',
            'detail': printf('%s after %s', ts::VARCHAR, prev_ts::VARCHAR)}}
    END AS p
FROM rows
