"""Pages per device, each of top and bottom positions with their own position effects, in the world and the loop."""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from simulator.config import ConfigError
from simulator.measure.runs import run_metrics
from simulator.world.ground_truth import World
from tests.conftest import SMOKE

TWO_DEVICES = ["world.num_positions=7", 'world.devices=["desktop", "mobile"]', "world.device_shares=[0.45, 0.55]",
               "world.top_slots=[4, 2]", "world.position_effects=[[1.0, 0.65, 0.45, 0.3, 0.12, 0.09, 0.07], [1.0, 0.45, 0.1]]"]
TOP = (4, 2)


def test_each_device_has_its_own_slots_and_share_of_queries():
    scenario = simulator.load(SMOKE, overrides=TWO_DEVICES)
    world = World(scenario)
    world.reset(0)
    assert world.num_slots == 10 and world.examination.shape == (3, 10)
    assert world.page_positions.tolist() == [7, 3]
    assert world.slot_of.tolist() == [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9, 9, 9, 9, 9]]
    assert world.is_top_slot.tolist() == [True] * 4 + [False] * 3 + [True] * 2 + [False]
    best = world.examination.max(axis=0)
    np.testing.assert_allclose(best, [1.0, 0.65, 0.45, 0.3, 0.12, 0.09, 0.07, 1.0, 0.45, 0.1], rtol=1e-6)
    assert np.all(world.page_examination[1, :, 3:] == 0)
    devices = np.concatenate([world.queries(float(m), 1.0).device for m in range(20)])
    share = (devices == 1).mean()
    assert abs(share - 0.55) < 4 * np.sqrt(0.55 * 0.45 / devices.size), share


def test_one_device_world_draws_what_it_drew_before_devices_existed():
    """The device draw comes last and only with several devices: one device leaves every stream as it was."""
    plain = World(simulator.load(SMOKE))
    named = World(simulator.load(SMOKE, overrides=['world.devices=["phone"]', "world.top_slots=[2]"]))
    for world in (plain, named):
        world.reset(3)
    for minute in range(3):
        a, b = plain.queries(float(minute), 1.0), named.queries(float(minute), 1.0)
        assert np.array_equal(a.candidates, b.candidates) and np.array_equal(a.click_noise, b.click_noise)
        assert not a.device.any() and not b.device.any()


@pytest.mark.parametrize(("overrides", "needle"), [
    (["world.device_shares=[0.5, 0.4]"], "world.device_shares: positive numbers that sum to 1"),
    (["world.top_slots=[4, 4]"], "world.top_slots: mobile's must be an integer from 1 to its 3 positions"),
    (["world.top_slots=[4]"], "world.top_slots: one entry per device"),
    (["world.num_positions=8"], "world.position_effects: needs 8 numbers (num_positions), got 7"),
    (['world.devices=["desktop", "desktop"]'], "world.devices: distinct non-empty names"),
    (["world.position_effects=[[1.0, 0.5], [1.0, 1.5]]", "world.num_positions=2", "world.top_slots=[1, 1]"],
     "world.position_effects: mobile's page needs numbers in (0, 1]"),
])
def test_bad_page_layouts_are_one_line_errors_naming_the_field(overrides, needle):
    with pytest.raises(ConfigError) as err:
        simulator.load(SMOKE, overrides=TWO_DEVICES + overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def two_device_runs():
    runs = {}
    for oracle in (True, False):
        scenario = simulator.load(SMOKE, overrides=TWO_DEVICES + ["run.duration_hours=0.15",
                                                                  f"model.oracle={str(oracle).lower()}"])
        simulation = simulator.Simulation(scenario)
        runs[oracle] = (simulation, simulation.run())
    return runs


def test_pages_fill_top_first_and_the_truth_is_the_devices_slot(two_device_runs):
    simulation, output = two_device_runs[True]
    frame = output.log.frame()
    pages = frame.groupby("query").agg(device=("device", "first"), shown=("position", "size"), last=("position", "max"))
    assert np.all(pages["last"] == pages["shown"] - 1)  # no gaps: a bottom position only under a full top
    assert np.all(pages["shown"] <= simulation.world.page_positions[pages["device"]])
    assert set(pages["device"]) == {0, 1}
    assert (frame["position"] >= np.take(TOP, frame["device"])).any()  # bottom positions are used
    # the oracle's pCTR at a page position is the true CTR of the device's slot there, for every impression
    np.testing.assert_allclose(frame["pctr"], frame["true_ctr"], rtol=1e-6)
    assert frame["true_ctr"][frame["device"] == 1].max() <= simulation.world.examination[:, 7:].max()


def test_the_learned_model_sees_every_devices_slots_and_the_run_is_measured(two_device_runs):
    simulation, output = two_device_runs[False]
    batch = simulation.world.queries(0.0, 1.0)
    assert np.asarray(simulation.scorer(simulation.deployed, batch.features[:128])).shape[-1] == 10  # every slot
    assert np.isfinite(output.summary()["pv_logloss"])
    metrics = run_metrics(output, simulation.world.page_examination)
    assert len(metrics["true_position_effect"]) == 6  # the first device's 7 positions, against its top
    assert np.isfinite(metrics["position_effect_error"])
