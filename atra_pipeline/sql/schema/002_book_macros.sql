-- Book-shape rules shared by ingest validation and the asset checks (one definition each).
-- Lists are level-ordered, level 0 (the best price) first; DuckDB lists are 1-based.

-- Present prices of one side strictly monotone (descending for bids), best level present,
-- missing (NULL) levels only after the present ones.
CREATE OR REPLACE MACRO book_side_ordered(px, descending) AS
    px[1] IS NOT NULL
    AND list_bool_and(list_transform(range(1, len(px)), lambda i:
        px[i + 1] IS NULL
        OR (px[i] IS NOT NULL AND CASE WHEN descending THEN px[i] > px[i + 1] ELSE px[i] < px[i + 1] END)));

-- Every present level has a finite positive price and a finite size > 0; a missing price has no size.
CREATE OR REPLACE MACRO book_side_sizes_ok(px, sz) AS
    list_bool_and(list_transform(range(1, len(px) + 1), lambda i:
        (px[i] IS NULL) = (sz[i] IS NULL)
        AND (px[i] IS NULL OR (isfinite(px[i]) AND px[i] > 0 AND isfinite(sz[i]) AND sz[i] > 0))));

-- A relation in the raw book layout, as level lists, so the rules above read any table or stage.
CREATE OR REPLACE MACRO l2_as_lists(rel) AS TABLE
    SELECT *,
        [bid_px_0, bid_px_1, bid_px_2, bid_px_3, bid_px_4, bid_px_5, bid_px_6, bid_px_7, bid_px_8, bid_px_9] AS bid_px,
        [bid_sz_0, bid_sz_1, bid_sz_2, bid_sz_3, bid_sz_4, bid_sz_5, bid_sz_6, bid_sz_7, bid_sz_8, bid_sz_9] AS bid_sz,
        [ask_px_0, ask_px_1, ask_px_2, ask_px_3, ask_px_4, ask_px_5, ask_px_6, ask_px_7, ask_px_8, ask_px_9] AS ask_px,
        [ask_sz_0, ask_sz_1, ask_sz_2, ask_sz_3, ask_sz_4, ask_sz_5, ask_sz_6, ask_sz_7, ask_sz_8, ask_sz_9] AS ask_sz
    FROM query_table(rel);

-- Symbols compare without separators and case: btc-usdt, BTC/USDT and BTCUSDT are one symbol.
CREATE OR REPLACE MACRO normalise_symbol(s) AS upper(regexp_replace(s, '[-/_]', '', 'g'));
