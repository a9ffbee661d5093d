"""Training divergence stops the run with a one-line reason and keeps the metrics so far."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from simulator.cli import main
from simulator.loop.records import TrainingDiverged
from simulator.loop.tick import check_divergence
from tests.conftest import SMOKE

EXPLODING = ["--set", "train.learning_rate=5", "--set", "train.divergence_warmup_examples=2000"]


def test_exploding_loss_stops_the_run_and_keeps_metrics_and_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(SMOKE), "--out", str(out), "--quiet", *EXPLODING,
                 "--set", "run.checkpoint_every_minutes=2"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[-1].startswith("adfloor: stopped: training diverged at simulated hour")
    assert err[-1].endswith(f"last good checkpoint: {out / 'checkpoint'}/")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"].startswith("training diverged")
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert 0 < len(metrics) < 120 and metrics["trained_examples"].sum() > 2000
    checkpoint = json.loads((out / "checkpoint" / "state.json").read_text())
    assert checkpoint["now"] < metrics["sim_minute"].max()  # taken before the stop, when all checks had passed


def test_healthy_training_is_not_stopped(smoke_output):
    assert smoke_output.stopped is None and smoke_output.summary()["stopped"] is None


def test_non_finite_predictions_stop_training(smoke_scenario):
    with pytest.raises(TrainingDiverged, match="non-finite predictions"):
        check_divergence(smoke_scenario.train, 3.0, np.array([0.1, np.nan], np.float32), 0, [], oracle=False)


def test_a_study_cell_whose_run_stopped_fails_saying_why():
    """A run cut short by the guard has no second half to measure: its cell fails with the reason, it reports no
    numbers as the arm's."""
    from simulator.experiments.cells import run_arm
    from simulator.experiments.study import Arm

    exploding = Arm("exploding", tuple(override for override in EXPLODING if override != "--set"))
    with pytest.raises(RuntimeError, match=r"arm 'exploding', seed 0: the run stopped early: training diverged"):
        run_arm(exploding, 0, 0.5, SMOKE)
