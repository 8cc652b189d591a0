-- Each row of a staged book file with its first problem, in the order listed (NULL: none), as
-- read by first_problem.sql. One pass over the file.
WITH rows AS (
    SELECT *, lag(ts) OVER (PARTITION BY src_symbol ORDER BY _row) AS prev_ts,
        book_side_first_bad_level(bid_px, bid_sz) AS bad_bid, book_side_first_bad_level(ask_px, ask_sz) AS bad_ask
    FROM l2_as_lists('{stage}')
)
SELECT _row, CASE
        WHEN ts IS NULL THEN {{'problem': 'missing timestamp', 'col': 'ts', 'detail': 'empty value'}}
        WHEN src_symbol IS NULL OR exchange IS NULL
            THEN {{'problem': 'missing symbol or exchange', 'col': 'symbol', 'detail': 'empty value'}}
        -- NaN sorts above every number, so a side holds a NaN price exactly when its maximum is NaN.
        WHEN isnan(list_max(bid_px)) THEN {{'problem': 'NaN price',
            'col': 'bid_px_' || (list_position(bid_px, 'nan'::DOUBLE) - 1), 'detail': 'price is NaN'}}
        WHEN isnan(list_max(ask_px)) THEN {{'problem': 'NaN price',
            'col': 'ask_px_' || (list_position(ask_px, 'nan'::DOUBLE) - 1), 'detail': 'price is NaN'}}
        -- a bad level (an infinite price, a size without a price) before the ordering rules, which
        -- an inf at the deepest level would pass: named at its own column
        WHEN bad_bid IS NOT NULL THEN {{'problem': 'bid level without a finite price and size > 0',
            'col': book_level_column('bid', bid_px, bad_bid),
            'detail': printf('price %s, size %s', bid_px[bad_bid]::VARCHAR, bid_sz[bad_bid]::VARCHAR)}}
        WHEN bad_ask IS NOT NULL THEN {{'problem': 'ask level without a finite price and size > 0',
            'col': book_level_column('ask', ask_px, bad_ask),
            'detail': printf('price %s, size %s', ask_px[bad_ask]::VARCHAR, ask_sz[bad_ask]::VARCHAR)}}
        WHEN ts < prev_ts THEN {{'problem': 'time goes backwards', 'col': 'ts',
            'detail': printf('%s after %s', ts::VARCHAR, prev_ts::VARCHAR)}}
        WHEN bid_px_0 >= ask_px_0 THEN {{'problem': 'crossed book', 'col': 'bid_px_0',
            'detail': printf('best bid %s >= best ask %s', bid_px_0::VARCHAR, ask_px_0::VARCHAR)}}
        WHEN NOT book_side_ordered(bid_px, true) THEN {{'problem':
            'bid levels not strictly descending (or a gap before a present level)', 'col': 'bid_px_0', 'detail': bid_px::VARCHAR}}
        WHEN NOT book_side_ordered(ask_px, false) THEN {{'problem':
            'ask levels not strictly ascending (or a gap before a present level)', 'col': 'ask_px_0', 'detail': ask_px::VARCHAR}}
    END AS p
FROM rows
