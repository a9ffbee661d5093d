"""Pages per device, each of top and bottom positions with their own position effects, in the world and the loop."""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from auction import AuctionOutcome
from simulator.config import ConfigError
from simulator.loop.tick import shown_and_clicked
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


# What the smoke world (seed 3) drew in its first three ticks before devices existed (commit b05f867): size, Σ candidate
# indices, Σ click noise, Σ relevance.
DRAWN_BEFORE_DEVICES = [(386, 594328, 3882.4798063635826, 1101.5642850111471),
                        (369, 571663, 3705.151849627495, 988.4340385547839),
                        (372, 577869, 3666.3259177803993, 1060.4004879116546)]


def test_one_device_world_draws_what_it_drew_before_devices_existed():
    """The device draw comes last and only with several devices: one device leaves every stream as it was."""
    for overrides in ([], ['world.devices=["phone"]', "world.top_slots=[2]"]):
        world = World(simulator.load(SMOKE, overrides=overrides))
        world.reset(3)
        for minute, (size, candidates, noise, relevance) in enumerate(DRAWN_BEFORE_DEVICES):
            batch = world.queries(float(minute), 1.0)
            assert (batch.size, int(batch.candidates.sum())) == (size, candidates) and not batch.device.any()
            assert float(batch.click_noise.astype(np.float64).sum()) == pytest.approx(noise, rel=1e-12)
            assert float(batch.relevance.astype(np.float64).sum()) == pytest.approx(relevance, rel=1e-12)


def test_the_true_ctr_of_a_shown_ad_is_its_devices_position_effect():
    """Every position of every page filled with candidate p at position p: the logged true CTR is relevance × the
    treatment's multiplier × the position effect the scenario gives that device at p (read from the config)."""
    scenario = simulator.load(SMOKE, overrides=TWO_DEVICES)
    world = World(scenario)
    world.reset(0)
    batch = world.queries(0.0, 1.0)
    positions = np.arange(7)
    on_page = positions[None, :] < world.page_positions[batch.device][:, None]
    ad = np.where(on_page, positions[None, :], -1).astype(np.int32)
    treatment = np.full(ad.shape, 2, np.int32)
    zeros = np.zeros(ad.shape, np.float32)
    outcome = AuctionOutcome(ad, treatment, zeros, zeros, zeros, np.zeros(batch.size, np.float32), np.zeros(batch.size, bool))
    model_ctr = np.zeros((*batch.candidates.shape, 3, 7), np.float32)
    _, impressions, _ = shown_and_clicked(0.0, batch, outcome, model_ctr, np.zeros(batch.size, np.int32),
                                          world.examination, world.slots(batch), 0, scenario)
    effects = scenario.world.layouts()
    multiplier = world.examination[2, 0]  # slot 0: the desktop's top, effect 1
    query = impressions["query"]
    expected = [batch.relevance[q, p] * multiplier * effects[d][p]
                for q, p, d in zip(query, impressions["position"], impressions["device"])]
    assert len(query) == on_page.sum() and set(impressions["device"]) == {0, 1}
    np.testing.assert_allclose(impressions["true_ctr"], expected, rtol=1e-6)


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
    bottom = frame["position"] >= np.take(TOP, frame["device"])
    assert output.summary()["bottom_impression_share"] == pytest.approx(bottom.mean())


def test_the_learned_model_sees_every_devices_slots_and_the_run_is_measured(two_device_runs):
    simulation, output = two_device_runs[False]
    batch = simulation.world.queries(0.0, 1.0)
    assert np.asarray(simulation.scorer(simulation.deployed, batch.features[:128])).shape[-1] == 10  # every slot
    assert np.isfinite(output.summary()["pv_logloss"])
    metrics = run_metrics(output, simulation.world.page_examination)
    assert len(metrics["true_position_effect"]) == 6  # the first device's 7 positions, against its top
    assert np.isfinite(metrics["position_effect_error"])


def test_each_page_length_has_its_own_auctions_and_the_batch_gets_the_whole_pages_outcome(two_device_runs):
    """The loop runs a desktop's 7 positions and a phone's 3 as separate auctions and puts their outcomes back in the
    batch's order: the same pages and prices as one auction per query over 7 positions with the page's mask."""
    from auction import solve_batch
    from simulator.loop.auctioneer import batch_order
    from simulator.loop.simulation import _at_slots, _oracle_ctr

    simulation, _ = two_device_runs[True]
    world, auctioneer = simulation.world, simulation.auctioneer
    batch = world.queries(30.0, 1.0)
    in_flight = simulation._dispatch(batch)
    assert sorted({inputs[0].shape[3] for _, _, inputs, *_ in in_flight}) == [3, 7]
    outcome = auctioneer.finish(in_flight, 7, batch_order(in_flight))
    ctr = np.asarray(_at_slots(_oracle_ctr(batch.relevance, batch.lift, world.examination), world.slots(batch)))
    expected = solve_batch(ctr, batch.bid, np.asarray(auctioneer.reserves(batch.reserve, ctr)), None,
                           world.page_positions[batch.device], **auctioneer.options)
    np.testing.assert_array_equal(outcome.ad, expected.ad)
    np.testing.assert_array_equal(outcome.treatment, expected.treatment)
    np.testing.assert_allclose(outcome.price_per_click, expected.price_per_click, rtol=1e-4, atol=1e-7)
    assert np.all(outcome.ad[batch.device == 1][:, 3:] == -1)  # a phone's page ends after its 3 positions


def test_ticks_without_queries_run_through_the_loop():
    """At half a query a minute most ticks have no query: they take the same path (one chunk of padding)."""
    scenario = simulator.load(SMOKE, overrides=TWO_DEVICES + ["traffic.queries_per_minute=0.5", "run.duration_hours=0.3"])
    output = simulator.Simulation(scenario).run()
    queries = [row["queries"] for row in output.rows]
    assert 0 in queries and sum(queries) > 0
    assert sum(row["impressions"] for row in output.rows) == len(output.log.frame())


def test_a_tablet_is_a_third_device_with_its_own_page_and_the_oracle_knows_its_trust_term():
    """Devices are a list: desktop, mobile and tablet each get their share of queries and their own page; the
    oracle's pCTR is every shown ad's true CTR on its device's page, with the trust term on."""
    scenario = simulator.load(SMOKE, overrides=[
        "world.num_positions=7", 'world.devices=["desktop", "mobile", "tablet"]', "world.device_shares=[0.35, 0.55, 0.1]",
        "world.top_slots=[4, 2, 3]",
        "world.position_effects=[[1.0, 0.65, 0.45, 0.3, 0.12, 0.09, 0.07], [1.0, 0.45, 0.1], [1.0, 0.6, 0.4, 0.2, 0.1]]",
        "world.trust_false_click=0.03", "world.trust_true_click_drop=0.01", "run.duration_hours=0.1",
        "model.oracle=true"])
    simulation = simulator.Simulation(scenario)
    frame = simulation.run().log.frame()
    assert simulation.world.page_positions.tolist() == [7, 3, 5]
    pages = frame.groupby("query").agg(device=("device", "first"), shown=("position", "size"))
    assert set(pages["device"]) == {0, 1, 2}
    assert np.all(pages["shown"] <= simulation.world.page_positions[pages["device"]])
    np.testing.assert_allclose(frame["pctr"], frame["true_ctr"], rtol=1e-5)
