-- The live path: one signal per symbol per decision time and model (core/live.py), and the
-- execution ledger (core/execution.py): orders, fills and risk events.
CREATE TABLE IF NOT EXISTS live_signals (
    decision_ts TIMESTAMP NOT NULL,   -- the decision time scored (a step of the grid)
    symbol VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,        -- the approved model that scored it
    probability DOUBLE,               -- NULL when the primary model does not bet
    side INTEGER NOT NULL,            -- +1 / -1, 0: no bet
    size_notional DOUBLE NOT NULL,    -- the proposed notional (quote currency), 0 without a bet
    target DOUBLE,                    -- barrier width used for sizing
    data_ts TIMESTAMP NOT NULL,       -- the newest snapshot the features read
    created_at TIMESTAMP NOT NULL,    -- when the signal row was written
    PRIMARY KEY (decision_ts, symbol, model_id)
);
