-- Offending rows: a present level whose price or size is not finite and > 0, or a size without a price.
SELECT ts, side, px, sz
FROM (
    SELECT ts, 'bid' AS side, bid_px AS px, bid_sz AS sz, book_side_sizes_ok(bid_px, bid_sz) AS ok FROM l2_as_lists('{target}')
    UNION ALL
    SELECT ts, 'ask' AS side, ask_px AS px, ask_sz AS sz, book_side_sizes_ok(ask_px, ask_sz) AS ok FROM l2_as_lists('{target}')
)
WHERE NOT ok
ORDER BY ts, side
