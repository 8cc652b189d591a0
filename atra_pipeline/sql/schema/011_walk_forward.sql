-- Issue 14: the study's trials are backtested like the candidate. Each complete trial's
-- out-of-fold scores on the tuning events (before the walk-forward); oof_predictions now holds
-- the walk-forward predictions (fold = walk-forward period).
CREATE TABLE IF NOT EXISTS trial_predictions (
    model_id    VARCHAR   NOT NULL,
    trial       INTEGER   NOT NULL,
    ts          TIMESTAMP NOT NULL,
    symbol      VARCHAR   NOT NULL,
    probability DOUBLE    NOT NULL
);

-- The placebo studies' walk-forward predictions (labels permuted by block, trained like the
-- candidate), cached by a key of the data, the settings and the placebo's number: a re-run on
-- the same data and configuration trains none again. The registry lists a model's keys.
CREATE TABLE IF NOT EXISTS placebo_predictions (
    cache_key   VARCHAR   NOT NULL,
    ts          TIMESTAMP NOT NULL,
    symbol      VARCHAR   NOT NULL,
    probability DOUBLE    NOT NULL,
    PRIMARY KEY (cache_key, ts, symbol)
);

-- With CPCV, the best trial's complete backtest paths on the tuning events (AFML 12.4): the risk
-- stage trades each path and reports the quantiles of the strategy's Sharpe ratio over them.
CREATE TABLE IF NOT EXISTS cpcv_path_predictions (
    model_id    VARCHAR   NOT NULL,
    path        INTEGER   NOT NULL,
    ts          TIMESTAMP NOT NULL,
    symbol      VARCHAR   NOT NULL,
    probability DOUBLE    NOT NULL
);
