"""The approval gate: its rules and the placebo studies they read."""
