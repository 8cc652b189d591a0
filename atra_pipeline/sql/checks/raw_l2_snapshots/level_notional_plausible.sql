-- Offending rows: a side whose largest resting level is worth more than $max_level_notional in the
-- quote currency (a misplaced decimal, contracts taken for base units). A non-finite level is
-- sizes_positive_finite's finding, not this rule's.
SELECT ts, side, largest_level_notional
FROM (
    SELECT ts, 'bid' AS side, list_max(list_filter(
        list_transform(range(1, len(bid_px) + 1), lambda i: bid_px[i] * bid_sz[i]), lambda v: isfinite(v)))
        AS largest_level_notional
    FROM l2_as_lists('{target}')
    UNION ALL
    SELECT ts, 'ask' AS side, list_max(list_filter(
        list_transform(range(1, len(ask_px) + 1), lambda i: ask_px[i] * ask_sz[i]), lambda v: isfinite(v)))
    FROM l2_as_lists('{target}')
)
WHERE largest_level_notional > $max_level_notional
ORDER BY ts, side
