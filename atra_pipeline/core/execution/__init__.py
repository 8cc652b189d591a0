"""Execution: the live executor of the strategy's rules, brokers, order state and the safety rails."""
