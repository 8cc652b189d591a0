-- Lags of the core columns by 1, 2 and 5 decision steps. fx_base holds the base families' rows
-- on the decision grid extended back over the look-back, so the first steps of a day lag into
-- the previous day; the grid is regular and complete, so a row offset is a time offset.
SELECT ts,
    lag(ofi_norm_1m, 1) OVER w AS ofi_norm_1m_lag1, lag(ofi_norm_1m, 2) OVER w AS ofi_norm_1m_lag2,
    lag(ofi_norm_1m, 5) OVER w AS ofi_norm_1m_lag5,
    lag(pressure_imbalance_5, 1) OVER w AS pressure_imbalance_5_lag1,
    lag(pressure_imbalance_5, 2) OVER w AS pressure_imbalance_5_lag2,
    lag(pressure_imbalance_5, 5) OVER w AS pressure_imbalance_5_lag5,
    lag(ret_1m, 1) OVER w AS ret_1m_lag1, lag(ret_1m, 2) OVER w AS ret_1m_lag2, lag(ret_1m, 5) OVER w AS ret_1m_lag5,
    lag(spread_bps, 1) OVER w AS spread_bps_lag1, lag(spread_bps, 2) OVER w AS spread_bps_lag2,
    lag(spread_bps, 5) OVER w AS spread_bps_lag5
FROM fx_base
WINDOW w AS (ORDER BY ts)
