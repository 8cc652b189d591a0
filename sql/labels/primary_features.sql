-- The partition's decision times with the features the primary model reads (ofi_momentum_side).
SELECT ts, ofi_norm_1m, ofi_norm_1m_step_zscore_1h
FROM features
WHERE symbol = $symbol AND ts >= $start AND ts < $end
ORDER BY ts
