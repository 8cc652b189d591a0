-- Backtests of a model's out-of-fold predictions (core/backtest.py): the trade ledger, the daily
-- realised equity, the stress scenarios and the risk metrics, all keyed by model_id.
CREATE TABLE IF NOT EXISTS backtest_trades (
    model_id VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL, side INTEGER NOT NULL,
    probability DOUBLE, t1 TIMESTAMP, barrier VARCHAR, ret DOUBLE, target DOUBLE,
    entry_fill_ts TIMESTAMP, exit_fill_ts TIMESTAMP, entry_mid DOUBLE, exit_mid DOUBLE,
    qty DOUBLE, entry_price DOUBLE, exit_price DOUBLE, notional DOUBLE,
    gross_pnl DOUBLE, slippage_cost DOUBLE, fee_cost DOUBLE, funding_cost DOUBLE, beyond_book_qty DOUBLE,
    net_pnl DOUBLE, equity_after DOUBLE, kelly_fraction DOUBLE, mae DOUBLE, mfe DOUBLE
);
CREATE TABLE IF NOT EXISTS backtest_equity (model_id VARCHAR NOT NULL, day DATE NOT NULL, equity DOUBLE NOT NULL);
CREATE TABLE IF NOT EXISTS backtest_stress (model_id VARCHAR NOT NULL, scenario VARCHAR NOT NULL, metric VARCHAR NOT NULL,
                                            value DOUBLE);
CREATE TABLE IF NOT EXISTS risk_metrics (model_id VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE);
