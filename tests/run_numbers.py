"""A run's numbers, for comparing two runs exactly. Imports no test module: a subprocess imports it without the
suite's conftest (which would set the suite's compiler flag)."""

from __future__ import annotations

import numpy as np

import simulator


def run_numbers(path: str, overrides: list[str]) -> dict[str, np.ndarray]:
    """Every numeric per-tick metric and every column of the impression log of the scenario's run."""
    output = simulator.run(simulator.load(path, overrides))
    metrics = output.metrics()
    numbers = {f"metric {c}": metrics[c].to_numpy() for c in metrics.columns if metrics[c].dtype.kind in "fiub"}
    return numbers | {f"log {c}": values for c, values in output.log.arrays().items()}
