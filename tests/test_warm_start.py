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
    # the same run: the window is minutes 60–89 of one uninterrupted run, model, auctions and clicks included
    whole = simulator.run(simulator.load(SMOKE, overrides=["run.duration_hours=1.5"]))
    later = whole.metrics().iloc[60:90].reset_index(drop=True)
    for column in ("queries", "impressions", "clicks", "revenue", "welfare", "trained_examples", "pv_loss_sum"):
        np.testing.assert_array_equal(rows[column].to_numpy(), later[column].to_numpy(), err_msg=column)
    assert warm.summary()["deploys"] == later.deploy_version.max() - whole.metrics().deploy_version[59]
    assert warm.log.frame()["query"].min() == 0 and warm.queries == rows.queries.sum()
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


def test_paired_replays_and_resume_work_from_a_warm_start(tmp_path):
    from simulator.experiments.paired import compare
    from simulator.loop.simulation import Simulation

    overrides = ["run.duration_hours=0.25", "run.warm_start_hours=0.25", f"run.warm_start_cache={tmp_path / 'cache'}",
                 "run.checkpoint_every_minutes=7"]
    comparison = compare(simulator.load(SMOKE, overrides=overrides),
                         simulator.load(SMOKE, overrides=[*overrides, "model.init_seed=1"]), seeds=[0])
    churn = comparison.frame()
    assert len(churn) and np.isfinite(churn.select_dtypes("number").to_numpy()).any()
    scenario = simulator.load(SMOKE, overrides=overrides)
    whole = Simulation(scenario).run(checkpoint_dir=tmp_path / "checkpoint")
    resumed = Simulation.resume(tmp_path / "checkpoint").run()
    pd.testing.assert_frame_equal(whole.metrics(), resumed.metrics())


def test_the_open_loop_control_starts_from_the_replicas_pre_trained_state(tmp_path):
    """The claims' open-loop control after a warm start: the replica's own pre-trained model, then the primary's logs."""
    from simulator.loop.simulation import Simulation

    overrides = ["run.duration_hours=0.5", "run.warm_start_hours=0.25", f"run.warm_start_cache={tmp_path}"]
    primary = Simulation(simulator.load(SMOKE, overrides=overrides), keep_training_logs=True).run()
    replica_scenario = simulator.load(SMOKE, overrides=[*overrides, "model.init_seed=1"])
    replica = Simulation(replica_scenario).run()
    open_loop = Simulation(replica_scenario, training_logs=primary.training_logs).run()
    assert len(list(tmp_path.iterdir())) == 2  # the primary's pre-trained state and the replica's, shared by both

    def first_and_last(output):
        probes = output.probe_arrays()
        minute, pctr = probes["minute"], probes["pctr"]
        return pctr[minute == minute[0]], pctr[minute == minute[-1]]

    (replica_first, replica_last), (open_first, open_last) = first_and_last(replica), first_and_last(open_loop)
    np.testing.assert_array_equal(open_first, replica_first)  # the same deployed model when the window opens
    assert not np.array_equal(open_first, first_and_last(primary)[0])  # not the primary's
    assert not np.allclose(open_last, replica_last)  # then trained on other logs than the replica's own


def test_the_pretrain_command_makes_the_state_a_warm_start_runs_from(tmp_path, capsys):
    """`adfloor pretrain` pre-trains and caches the state a run with the same warm start then reads (no second
    pre-training), and that run is the one it would have been had it pre-trained itself."""
    from simulator.cli import main

    cache, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    command = ["pretrain", str(SMOKE), "--hours", "0.1", "--set", f"run.warm_start_cache={cache}", "--quiet"]
    assert main(command) == 0 and "pre-trained and cached" in capsys.readouterr().out
    assert main(command) == 0 and "already cached" in capsys.readouterr().out
    (folder,) = cache.iterdir()

    def window(where):
        return simulator.run(simulator.load(SMOKE, overrides=["run.duration_hours=0.1", "run.warm_start_hours=0.1",
                                                              f"run.warm_start_cache={where}"])).metrics()

    pd.testing.assert_frame_equal(window(cache), window(elsewhere))
    assert list(cache.iterdir()) == [folder] and len(list(elsewhere.iterdir())) == 1
    assert main(["pretrain", str(SMOKE), "--hours", "0", "--quiet"]) == 2
