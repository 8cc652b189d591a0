-- Book pressure from the latest snapshot at or before t. Distances from the mid in bps weight
-- the levels: a size far from the mid presses less on the price than one at the touch.
-- An instantaneous family: only the snapshot as of each decision time is read. fx_book carries no
-- book levels (writing them per snapshot cost more than this family), so the as-of lookup finds
-- the snapshot's ts there and the levels come from the raw table by (symbol, ts), unique per
-- stored partition; the join's key filter lets the scan skip all but those rows.
WITH snap AS (
    SELECT g.ts, s.ts AS snap_ts FROM fx_grid AS g ASOF LEFT JOIN fx_book AS s ON g.ts >= s.ts
), b AS (
    SELECT snap.ts, (s.bid_px_0 + s.ask_px_0) / 2 AS mid, s.bid_px_0, s.ask_px_0, s.bid_sz_0, s.ask_sz_0,
        [s.bid_px_0, s.bid_px_1, s.bid_px_2, s.bid_px_3, s.bid_px_4, s.bid_px_5, s.bid_px_6, s.bid_px_7, s.bid_px_8, s.bid_px_9] AS bid_px,
        [s.bid_sz_0, s.bid_sz_1, s.bid_sz_2, s.bid_sz_3, s.bid_sz_4, s.bid_sz_5, s.bid_sz_6, s.bid_sz_7, s.bid_sz_8, s.bid_sz_9] AS bid_sz,
        [s.ask_px_0, s.ask_px_1, s.ask_px_2, s.ask_px_3, s.ask_px_4, s.ask_px_5, s.ask_px_6, s.ask_px_7, s.ask_px_8, s.ask_px_9] AS ask_px,
        [s.ask_sz_0, s.ask_sz_1, s.ask_sz_2, s.ask_sz_3, s.ask_sz_4, s.ask_sz_5, s.ask_sz_6, s.ask_sz_7, s.ask_sz_8, s.ask_sz_9] AS ask_sz
    FROM snap LEFT JOIN raw_l2_snapshots AS s
        ON s.ts = snap.snap_ts AND s.symbol = $symbol AND s.ts >= $load_start AND s.ts < $end AND s.ts <= $cutoff
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
