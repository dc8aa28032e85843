"""Crash-safe file writes and the JSON codec: leaves that every layer may use (the store, root
pretraining, reports)."""
