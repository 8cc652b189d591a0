-- Execution ledger (core/execution.py). client_order_id is derived from (model, symbol, decision
-- time), so a retried run finds its order and never sends it twice.
CREATE TABLE IF NOT EXISTS orders (
    client_order_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    decision_ts TIMESTAMP NOT NULL,
    symbol VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,
    side INTEGER NOT NULL,            -- +1 buy, -1 sell
    qty DOUBLE NOT NULL,              -- base units
    status VARCHAR NOT NULL,          -- 'pending' (in the ledger, being sent), 'filled', 'rejected', 'error'
    reason VARCHAR NOT NULL DEFAULT '',
    broker VARCHAR NOT NULL,
    broker_order_id VARCHAR
);
CREATE TABLE IF NOT EXISTS fills (
    client_order_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    symbol VARCHAR NOT NULL,
    side INTEGER NOT NULL,
    qty DOUBLE NOT NULL,
    price DOUBLE NOT NULL,            -- volume-weighted fill price
    fee DOUBLE NOT NULL,              -- quote currency
    mid DOUBLE NOT NULL               -- mid of the book the order met
);
CREATE TABLE IF NOT EXISTS risk_events (
    ts TIMESTAMP NOT NULL,
    kind VARCHAR NOT NULL,            -- e.g. 'kill_switch_tripped', 'kill_switch_reset', 'circuit_breaker', 'stale_data', 'limit'
    symbol VARCHAR,
    detail VARCHAR NOT NULL
);
-- The paper broker's own account, kept apart from the ledger above so that reconciling the two
-- compares independent records.
CREATE TABLE IF NOT EXISTS paper_positions (symbol VARCHAR PRIMARY KEY, qty DOUBLE NOT NULL);
