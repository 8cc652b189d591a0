-- Book pressure from the latest snapshot at or before t. Distances from the mid in bps weight
-- the levels: a size far from the mid presses less on the price than one at the touch.
WITH b AS (
    SELECT g.ts, s.mid, s.bid_px_0, s.ask_px_0, s.bid_sz_0, s.ask_sz_0, s.bid_px, s.bid_sz, s.ask_px, s.ask_sz
    FROM fx_grid AS g ASOF LEFT JOIN fx_book AS s ON g.ts >= s.ts
), d AS (
    SELECT *,
        list_sum(list_slice(bid_sz, 1, 5)) AS b5, list_sum(list_slice(ask_sz, 1, 5)) AS a5,
        list_sum(bid_sz) AS b10, list_sum(ask_sz) AS a10,
        list_sum(list_transform(range(1, 11), lambda i: coalesce(bid_sz[i] / (1 + 1e4 * (mid - bid_px[i]) / mid), 0))) AS bp,
        list_sum(list_transform(range(1, 11), lambda i: coalesce(ask_sz[i] / (1 + 1e4 * (ask_px[i] - mid) / mid), 0))) AS ap
    FROM b
)
SELECT ts,
    (bid_sz_0 - ask_sz_0) / (bid_sz_0 + ask_sz_0) AS pressure_imbalance_1,
    (b5 - a5) / (b5 + a5) AS pressure_imbalance_5,
    (b10 - a10) / (b10 + a10) AS pressure_imbalance_10,
    (bp - ap) / (bp + ap) AS pressure_imbalance_weighted,
    -- side pressure per unit of distance: the same weights, asymmetry of the two sides
    (bp / nullif(b10, 0) - ap / nullif(a10, 0)) / (bp / nullif(b10, 0) + ap / nullif(a10, 0)) AS pressure_asymmetry,
    ln(b10 / a10) AS pressure_depth_ratio_log,
    1e4 * ((bid_px_0 * ask_sz_0 + ask_px_0 * bid_sz_0) / (bid_sz_0 + ask_sz_0) - mid) / mid AS microprice_mid_bps
FROM d
