"""The teaching world has signal, the model learns it, and the loop is closed."""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from simulator.measure.runs import learning_curve
from tests.conftest import DEFAULT


@pytest.fixture(scope="module")
def default_output() -> simulator.RunOutput:
    """Half of the teaching scenario's day: enough to learn (at 12 h the final window's PV log loss was 1.014× the
    oracle's and the calibration error 0.011, against bounds of 1.05× and 0.05), at half the suite time."""
    return simulator.run(simulator.load(DEFAULT, ["run.duration_hours=12"]))


@pytest.fixture(scope="module")
def default_summary(default_output) -> dict:
    return default_output.summary()  # seconds over the run's logs: once for the tests that read it


def test_default_world_has_signal(default_summary):
    assert default_summary["oracle_normalized_entropy"] <= 0.9


def test_model_reaches_oracle_within_5_percent_in_final_window(default_summary):
    assert default_summary["final_window_pv_logloss"] <= 1.05 * default_summary["final_window_oracle_logloss"]
    assert abs(default_summary["calibration_overall"]) < 0.05


def test_learning_curve_falls(default_output):
    curve = learning_curve(default_output, bins=8)
    excess = (curve["pv_logloss"] / curve["oracle_logloss"] - 1.0).to_numpy()
    assert excess[0] > 2 * excess[-1]
    assert excess[-1] < excess[len(excess) // 2] < excess[0]


def test_training_data_depends_on_the_deployed_model(smoke_scenario, smoke_output):
    """Same traffic, different model ⇒ different shown ads ⇒ different training data; better model ⇒ better ads."""
    never_redeployed = simulator.run(simulator.config.replace(smoke_scenario, train__deploy_every_minutes=100_000.0))
    oracle = simulator.run(simulator.config.replace(smoke_scenario, model__oracle=True))
    served = [o.metrics()["queries"].to_numpy() for o in (smoke_output, never_redeployed, oracle)]
    assert np.array_equal(served[0], served[1]) and np.array_equal(served[0], served[2])  # identical traffic
    learned_ads, frozen_ads = smoke_output.log.column("ad_id"), never_redeployed.log.column("ad_id")
    second_half = len(learned_ads) // 2
    assert not np.array_equal(learned_ads[second_half:], frozen_ads[second_half:])
    # what is logged (and so trained on) follows the deployed model: redeploying finds better ads, and the
    # oracle (which maximises true welfare) bounds it
    late = {name: o.metrics()["welfare"].iloc[60:].sum() for name, o in
            (("learned", smoke_output), ("frozen", never_redeployed), ("oracle", oracle))}
    assert late["frozen"] < late["learned"] <= late["oracle"]
    assert smoke_output.summary()["deploys"] > 5 and never_redeployed.summary()["deploys"] == 0


def test_impression_log_matches_the_metrics(smoke_output):
    log = smoke_output.log.frame()
    metrics = smoke_output.metrics()
    assert len(log) == metrics["impressions"].sum() and log["click"].sum() == metrics["clicks"].sum()
    assert np.isclose((log["click"] * log["price_per_click"]).sum(), metrics["revenue"].sum(), rtol=1e-4)
    per_query = log.groupby("query")
    assert per_query["ad_id"].nunique().eq(per_query.size()).all()  # an ad shows at most once per query
    assert per_query["position"].max().add(1).eq(per_query.size()).all()  # no gaps from the top
