-- Meta-labels of the primary model, one row per labelled event (see atra_pipeline/core/labels.py).
-- ts is the event (decision) time and decides the partition; t1 may lie in the next day.
CREATE TABLE IF NOT EXISTS labels (
    ts TIMESTAMP NOT NULL,       -- event time: a decision time where CUSUM fired and the primary model bets
    symbol VARCHAR NOT NULL,
    side INTEGER NOT NULL,       -- the primary model's bet: +1 long, -1 short
    t1 TIMESTAMP NOT NULL,       -- first barrier touched (or the vertical barrier)
    ret DOUBLE NOT NULL,         -- side * ln(p_t1 / p_ts)
    label INTEGER NOT NULL,      -- meta-label: 1 if the side's trade made money, else 0
    outcome INTEGER NOT NULL,    -- barrier in the side's terms: 1 take-profit, -1 stop-loss, 0 vertical
    barrier VARCHAR NOT NULL,    -- 'pt', 'sl' or 'vertical'
    target DOUBLE NOT NULL,      -- barrier width unit at ts (log-return volatility over the holding period)
    uniqueness DOUBLE NOT NULL,  -- average uniqueness over [ts, t1]
    weight DOUBLE NOT NULL       -- sample weight, the partition's weights sum to its number of events
);
