"""Offline evaluation of recommenders: temporal splits, ranking metrics, tuning, selection."""
