-- One strategy from backtest to live (core/strategy.py): the model's whole configuration in the
-- registry, decision records shared by the backtest and the live path, open positions with their
-- barriers, and the paper broker's account as fills (so its equity can be marked at any time).
ALTER TABLE model_registry ADD COLUMN spec VARCHAR;   -- JSON ModelSpec (core/model_spec.py); NULL: trained before specs

-- Backtest results are derived: they are recomputed by materialising backtest again.
DROP TABLE IF EXISTS backtest_trades;
CREATE TABLE backtest_trades (
    model_id VARCHAR NOT NULL, decision_ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL, side INTEGER NOT NULL,
    probability DOUBLE, barrier_width DOUBLE, expected_cost_bps DOUBLE, expected_edge_bps DOUBLE,
    t1 TIMESTAMP, exit_reason VARCHAR, ret DOUBLE, entry_ts TIMESTAMP, exit_ts TIMESTAMP,
    entry_mid DOUBLE, exit_mid DOUBLE, qty DOUBLE, entry_px DOUBLE, exit_px DOUBLE, notional DOUBLE,
    gross_pnl DOUBLE, slippage_cost DOUBLE, fee_cost DOUBLE, funding_cost DOUBLE, beyond_book_qty DOUBLE,
    net_pnl DOUBLE, equity_after DOUBLE, kelly_fraction DOUBLE, mae DOUBLE, mfe DOUBLE
);
CREATE TABLE IF NOT EXISTS backtest_decisions (
    model_id VARCHAR NOT NULL, decision_ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL, probability DOUBLE,
    side INTEGER NOT NULL, barrier_width DOUBLE, expected_cost_bps DOUBLE, expected_edge_bps DOUBLE,
    taken BOOLEAN NOT NULL, reason_not_taken VARCHAR NOT NULL, size_notional DOUBLE, equity DOUBLE
);

-- Live signals now carry what the model saw (event filter, side, probability, barrier width);
-- the strategy's decision on them is in live_decisions. The old rows are kept aside.
ALTER TABLE live_signals RENAME TO live_signals_v1;
CREATE TABLE live_signals (
    decision_ts TIMESTAMP NOT NULL,
    symbol VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,
    event BOOLEAN NOT NULL,           -- the CUSUM event filter fired at this decision time
    side INTEGER NOT NULL,            -- the primary model's side, 0: no bet (or no event)
    probability DOUBLE,               -- the meta-model's probability; NULL without an event and a side
    barrier_width DOUBLE,             -- tau, the barrier width unit (log return)
    mid DOUBLE,                       -- the mid at the decision time
    data_ts TIMESTAMP NOT NULL,       -- the newest snapshot read
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (decision_ts, symbol, model_id)
);
CREATE TABLE IF NOT EXISTS live_decisions (
    decision_ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL, model_id VARCHAR NOT NULL, broker VARCHAR NOT NULL,
    probability DOUBLE, side INTEGER NOT NULL, barrier_width DOUBLE, expected_cost_bps DOUBLE,
    expected_edge_bps DOUBLE, taken BOOLEAN NOT NULL, reason_not_taken VARCHAR NOT NULL,
    size_notional DOUBLE, equity DOUBLE, created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (decision_ts, symbol, model_id, broker)
);
CREATE TABLE IF NOT EXISTS live_positions (
    position_id VARCHAR PRIMARY KEY,  -- the entry's client order id
    broker VARCHAR NOT NULL, model_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL, side INTEGER NOT NULL,
    qty DOUBLE NOT NULL, decision_ts TIMESTAMP NOT NULL, probability DOUBLE, barrier_width DOUBLE NOT NULL,
    expected_cost_bps DOUBLE, expected_edge_bps DOUBLE,
    entry_mid DOUBLE NOT NULL,        -- the mid at the decision: the barriers' reference
    up DOUBLE NOT NULL, down DOUBLE NOT NULL,   -- take-profit / stop-loss as side-signed log returns
    vertical_ts TIMESTAMP NOT NULL,   -- decision + max_holding_s
    entry_ts TIMESTAMP, entry_px DOUBLE,
    status VARCHAR NOT NULL CHECK (status IN ('open', 'closed')),
    checked_to TIMESTAMP NOT NULL,    -- snapshots up to here were judged against the barriers
    exit_order_id VARCHAR, exit_reason VARCHAR, exit_event_ts TIMESTAMP, exit_ts TIMESTAMP, exit_px DOUBLE
);
ALTER TABLE risk_events ADD COLUMN broker VARCHAR;  -- whose rail it was (the kill switch is per broker); NULL: all
ALTER TABLE orders ADD COLUMN purpose VARCHAR DEFAULT 'entry';  -- 'entry', 'exit' or 'kill' (closing: never capped)
DROP TABLE IF EXISTS paper_positions;  -- the paper account restarts as fills
CREATE TABLE IF NOT EXISTS paper_fills (
    account VARCHAR NOT NULL, client_order_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL,
    side INTEGER NOT NULL, qty DOUBLE NOT NULL, price DOUBLE NOT NULL, fee DOUBLE NOT NULL
);

-- The settings each partitioned asset built a partition with (features: decision step, universe,
-- reference; labels: the label settings), so a model registered on those partitions records
-- exactly how its inputs were made.
CREATE TABLE IF NOT EXISTS partition_settings (
    asset VARCHAR NOT NULL, symbol VARCHAR NOT NULL, day DATE NOT NULL, settings VARCHAR NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (asset, symbol, day)
);
