"""Experiments: arms (a name and config overrides), studies that are not arms, cells (an arm or study on a
seed) run in parallel and cached, paired replays of two systems, the papers' claims as pre-registered tests,
and scenario sweeps."""
