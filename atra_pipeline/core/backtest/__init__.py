"""Backtest: the event engine, runs from the database, metrics, Monte Carlo and the risk report."""
