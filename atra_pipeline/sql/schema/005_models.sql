-- Model registry: every trained candidate, its provenance, metrics, the LightGBM model text and
-- the gate's decision. Exactly one model is 'approved' at a time (or none yet).
CREATE TABLE IF NOT EXISTS model_registry (
    model_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    train_start DATE NOT NULL,          -- first date of the training range (inclusive)
    train_end DATE NOT NULL,            -- last date (inclusive)
    partitions VARCHAR NOT NULL,        -- JSON list of the date|symbol partitions the events came from
    code_version VARCHAR,               -- git SHA of the code that trained it, when known
    params VARCHAR NOT NULL,            -- JSON: LightGBM parameters and the training settings
    features VARCHAR NOT NULL,          -- JSON list of the feature columns, in model order
    metrics VARCHAR NOT NULL,           -- JSON: out-of-fold metrics, study summary
    model_text VARCHAR NOT NULL,        -- LightGBM Booster.model_to_string()
    status VARCHAR NOT NULL CHECK (status IN ('candidate', 'approved', 'rejected', 'retired')),
    reason VARCHAR NOT NULL DEFAULT ''
);

-- Out-of-fold predictions: for every event, the probability from a model that did not train on
-- it (one row per split that tested it: CPCV tests an event in several splits).
CREATE TABLE IF NOT EXISTS oof_predictions (
    model_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    symbol VARCHAR NOT NULL,
    fold INTEGER NOT NULL,
    probability DOUBLE NOT NULL,
    label INTEGER NOT NULL,
    weight DOUBLE NOT NULL,
    ret DOUBLE NOT NULL
);

-- What every partitioned asset check found, per partition: the gate reads it (e.g. no model is
-- approved on features whose look-ahead check failed).
CREATE TABLE IF NOT EXISTS asset_check_log (
    asset VARCHAR NOT NULL,
    check_name VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    day DATE NOT NULL,
    passed BOOLEAN NOT NULL,
    evaluated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (asset, check_name, symbol, day)
);
