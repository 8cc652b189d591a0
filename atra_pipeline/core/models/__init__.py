"""Models: purged cross-validation, training (Optuna, LightGBM), the registry and walk-forward predictions."""
