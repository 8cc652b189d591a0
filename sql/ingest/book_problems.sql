-- The first problem (in file order) of a staged book file: problem, column, row, detail, rows with it.
WITH lists AS (
    SELECT *, lag(ts) OVER (PARTITION BY src_symbol ORDER BY _row) AS prev_ts FROM l2_as_lists('{stage}')
), problems AS (
    SELECT 'missing timestamp' AS problem, 'ts' AS col, _row, 'empty value' AS detail FROM lists WHERE ts IS NULL
    UNION ALL
    SELECT 'missing symbol or exchange', 'symbol', _row, 'empty value' FROM lists WHERE src_symbol IS NULL OR exchange IS NULL
    UNION ALL
    SELECT 'NaN price', 'bid_px_' || (list_position(list_transform(bid_px, lambda x: coalesce(isnan(x), false)), true) - 1),
           _row, 'price is NaN' FROM lists WHERE list_bool_or(list_transform(bid_px, lambda x: coalesce(isnan(x), false)))
    UNION ALL
    SELECT 'NaN price', 'ask_px_' || (list_position(list_transform(ask_px, lambda x: coalesce(isnan(x), false)), true) - 1),
           _row, 'price is NaN' FROM lists WHERE list_bool_or(list_transform(ask_px, lambda x: coalesce(isnan(x), false)))
    UNION ALL
    SELECT 'time goes backwards', 'ts', _row, printf('%s after %s', ts::VARCHAR, prev_ts::VARCHAR) FROM lists WHERE ts < prev_ts
    UNION ALL
    SELECT 'crossed book', 'bid_px_0', _row, printf('best bid %s >= best ask %s', bid_px_0::VARCHAR, ask_px_0::VARCHAR)
    FROM lists WHERE bid_px_0 >= ask_px_0
    UNION ALL
    SELECT 'bid levels not strictly descending (or a gap before a present level)', 'bid_px_0', _row, CAST(bid_px AS VARCHAR)
    FROM lists WHERE NOT book_side_ordered(bid_px, true)
    UNION ALL
    SELECT 'ask levels not strictly ascending (or a gap before a present level)', 'ask_px_0', _row, CAST(ask_px AS VARCHAR)
    FROM lists WHERE NOT book_side_ordered(ask_px, false)
    UNION ALL
    SELECT 'bid size not a finite number > 0, or size without price', 'bid_sz_0', _row, CAST(bid_sz AS VARCHAR)
    FROM lists WHERE NOT book_side_sizes_ok(bid_px, bid_sz)
    UNION ALL
    SELECT 'ask size not a finite number > 0, or size without price', 'ask_sz_0', _row, CAST(ask_sz AS VARCHAR)
    FROM lists WHERE NOT book_side_sizes_ok(ask_px, ask_sz)
)
SELECT problem, col, _row, detail, count(*) OVER (PARTITION BY problem) AS n_rows
FROM problems
ORDER BY _row, problem
LIMIT 1
