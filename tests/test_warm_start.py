"""Warm start (issue #17, item 7): a run can start from the world and model after N simulated hours of the same
scenario, pre-trained once and cached, and report only its own window."""

from __future__ import annotations

import numpy as np
import pandas as pd

import simulator
from tests.conftest import SMOKE


def test_a_warm_start_continues_the_world_with_a_mature_model_and_reports_only_its_window(tmp_path):
    cache = tmp_path / "cache"
    window = ["run.duration_hours=0.5", f"run.warm_start_cache={cache}"]
    warm_scenario = simulator.load(SMOKE, overrides=[*window, "run.warm_start_hours=1"])
    warm = simulator.run(warm_scenario)
    rows = warm.metrics()
    assert rows.sim_minute.min() == 0 and rows.sim_minute.max() == 29 and len(rows) == 30  # the window alone
    assert warm.simulated_hours == 0.5 and warm.pv_arrays()["minute"].min() >= 0
    assert warm.log.frame().minute.between(0, 30).all() and warm.probe_arrays()["minute"].max() < 30
    # the same world: the window's traffic is that of minutes 60–89 of one uninterrupted run
    whole = simulator.run(simulator.load(SMOKE, overrides=["run.duration_hours=1.5"]))
    np.testing.assert_array_equal(rows.queries.to_numpy(), whole.metrics().queries.to_numpy()[60:90])
    # a mature model: over the window, its loss is closer to the oracle's than a cold start's over the same length
    def gap(output) -> float:
        return output.summary()["pv_logloss"] / output.summary()["oracle_logloss"] - 1

    cold = simulator.run(simulator.load(SMOKE, overrides=window))
    assert gap(warm) < 0.5 * gap(cold)
    assert warm.summary()["queries"] == rows.queries.sum()
    # cached: one pre-trained state, and a second run from it gives the same numbers
    assert len(list(cache.iterdir())) == 1
    again = simulator.run(warm_scenario)
    pd.testing.assert_frame_equal(rows, again.metrics())
