"""Experiments as data: studies read from TOML (arms, claims, tables), the protocols that are not arms, cells run
by one runner (local processes or Ray) and cached, paired replays of two systems, and scenario sweeps."""
