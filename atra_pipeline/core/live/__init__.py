"""The live path: scoring the approved model, the live loop, replays, parity with the backtest, observability."""
