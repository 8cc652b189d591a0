-- The partition's decision times with the primary model's signal and its hourly z-score
-- (labels.flow_momentum_side); {signal} is a core feature name checked against the registry.
SELECT ts, {signal}, {signal}_step_zscore_1h
FROM features
WHERE symbol = $symbol AND ts >= $start AND ts < $end
ORDER BY ts
