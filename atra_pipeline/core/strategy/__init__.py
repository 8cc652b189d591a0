"""The strategy: the one set of trading rules (entry, sizing, exits, costs) the backtest and live both run."""
