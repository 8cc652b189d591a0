-- Rolling mean, sample standard deviation (ddof 1) and z-score of the core columns over the
-- decision steps of the last hour, current step included: ROWS frames on the regular grid
-- (fx_base spans the look-back, so the first hour of a day reads the previous day's steps).
-- {rows_1h} = 3600 / step_s - 1 earlier steps, filled in by build.py. A frame with a missing
-- value (warm-up) gives NULL rather than a statistic over part of the hour.
WITH r AS (
    SELECT ts, ofi_norm_1m, pressure_imbalance_5, ret_1m, spread_bps,
        avg(ofi_norm_1m) OVER w AS ofi_m, stddev_samp(ofi_norm_1m) OVER w AS ofi_s, count(ofi_norm_1m) OVER w AS ofi_n,
        avg(pressure_imbalance_5) OVER w AS imb_m, stddev_samp(pressure_imbalance_5) OVER w AS imb_s,
        count(pressure_imbalance_5) OVER w AS imb_n,
        avg(ret_1m) OVER w AS ret_m, stddev_samp(ret_1m) OVER w AS ret_s, count(ret_1m) OVER w AS ret_n,
        avg(spread_bps) OVER w AS spr_m, stddev_samp(spread_bps) OVER w AS spr_s, count(spread_bps) OVER w AS spr_n
    FROM fx_base
    WINDOW w AS (ORDER BY ts ROWS BETWEEN {rows_1h} PRECEDING AND CURRENT ROW)
), complete AS (
    SELECT ts, ofi_norm_1m, pressure_imbalance_5, ret_1m, spread_bps,
        CASE WHEN ofi_n = {rows_1h} + 1 THEN ofi_m END AS ofi_m, CASE WHEN ofi_n = {rows_1h} + 1 THEN ofi_s END AS ofi_s,
        CASE WHEN imb_n = {rows_1h} + 1 THEN imb_m END AS imb_m, CASE WHEN imb_n = {rows_1h} + 1 THEN imb_s END AS imb_s,
        CASE WHEN ret_n = {rows_1h} + 1 THEN ret_m END AS ret_m, CASE WHEN ret_n = {rows_1h} + 1 THEN ret_s END AS ret_s,
        CASE WHEN spr_n = {rows_1h} + 1 THEN spr_m END AS spr_m, CASE WHEN spr_n = {rows_1h} + 1 THEN spr_s END AS spr_s
    FROM r
)
SELECT ts,
    ofi_m AS ofi_norm_1m_step_mean_1h, ofi_s AS ofi_norm_1m_step_std_1h, (ofi_norm_1m - ofi_m) / nullif(ofi_s, 0) AS ofi_norm_1m_step_zscore_1h,
    imb_m AS pressure_imbalance_5_step_mean_1h, imb_s AS pressure_imbalance_5_step_std_1h,
    (pressure_imbalance_5 - imb_m) / nullif(imb_s, 0) AS pressure_imbalance_5_step_zscore_1h,
    ret_m AS ret_1m_step_mean_1h, ret_s AS ret_1m_step_std_1h, (ret_1m - ret_m) / nullif(ret_s, 0) AS ret_1m_step_zscore_1h,
    spr_m AS spread_bps_step_mean_1h, spr_s AS spread_bps_step_std_1h, (spread_bps - spr_m) / nullif(spr_s, 0) AS spread_bps_step_zscore_1h
FROM complete
