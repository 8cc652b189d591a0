-- Offending rows: bid prices not strictly descending or ask prices not strictly ascending
-- across the present levels, or a missing level before a present one.
SELECT ts, side, px
FROM (
    SELECT ts, 'bid' AS side, bid_px AS px, book_side_ordered(bid_px, true) AS ok FROM l2_as_lists('{target}')
    UNION ALL
    SELECT ts, 'ask' AS side, ask_px AS px, book_side_ordered(ask_px, false) AS ok FROM l2_as_lists('{target}')
)
WHERE NOT ok
ORDER BY ts, side
