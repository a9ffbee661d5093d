"""Click models: the position-based model is the teaching world's, and the cascade (DBN) gives each shown ad the
CTR the ads above it leave it, draws clicks at those rates, and its best-slate oracle is exact on small slates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import simulator
from auction import AuctionOutcome
from simulator.loop.tick import slate_clicks
from simulator.world.click_models import (CLICK_MODELS, best_cascade_slate, cascade, cascade_welfare, trusted,
                                           trusted_ctr)
from simulator.world.kinds import make_world


def test_cascade_truth_is_the_click_rate_and_depends_on_the_ads_above():
    rng = np.random.default_rng(0)
    rows, gamma, sigma = 200_000, 0.8, 0.6
    attractive = np.tile(np.array([[0.5, 0.3, 0.2]], np.float32), (rows, 1))
    truth, clicked = cascade(attractive, attractive, rng.random((rows, 3), dtype=np.float32),
                             rng.random((rows, 3, 2), dtype=np.float32), gamma, sigma)
    expected = [0.5, 0.3 * gamma * (1 - 0.5 * sigma), 0.2 * gamma ** 2 * (1 - 0.5 * sigma) * (1 - 0.3 * sigma)]
    np.testing.assert_allclose(truth[0], expected, rtol=1e-6)
    np.testing.assert_allclose(clicked.mean(axis=0), expected, atol=4e-3)  # the clicks follow the truth
    # a more attractive (and so more often satisfying) ad on top leaves less to the one below
    stronger = attractive.copy()
    stronger[:, 0] = 0.9
    assert cascade(stronger, stronger, np.ones((rows, 3), np.float32), np.ones((rows, 3, 2), np.float32), gamma,
                   sigma)[0][0, 1] < truth[0, 1]


def test_best_slate_enumeration_matches_a_brute_force():
    rng = np.random.default_rng(1)
    gamma, sigma = 0.7, 0.9
    for _ in range(5):
        value, attractive = rng.uniform(0.5, 2.0, 5), rng.uniform(0.05, 0.95, (5, 2))
        brute = 0.0
        for length in (1, 2, 3):
            for slate in itertools.permutations(range(5), length):
                for formats in itertools.product(range(2), repeat=length):
                    welfare, looking = 0.0, 1.0
                    for ad, f in zip(slate, formats):
                        welfare += value[ad] * attractive[ad, f] * looking
                        looking *= gamma * (1 - attractive[ad, f] * sigma)
                    brute = max(brute, welfare)
        assert best_cascade_slate(value, attractive, 3, gamma, sigma, shortlist=5) == pytest.approx(brute)
        assert best_cascade_slate(value, attractive, 3, gamma, sigma, shortlist=3) <= brute + 1e-12  # a bound
    # with strong satisfaction the best slate is not the one a separable ranking (value × attractiveness) picks
    # (A: value 1, attractiveness 0.9 ranks above B: 1.5 × 0.5, but a user satisfied by A never sees B)
    value, attractive = np.array([1.0, 1.5]), np.array([[0.9], [0.5]])
    separable = cascade_welfare(value, attractive[:, 0], 1.0, 1.0)
    assert separable == pytest.approx(0.9 + 0.75 * 0.1)
    assert best_cascade_slate(value, attractive, 2, 1.0, 1.0) == pytest.approx(0.75 + 0.9 * 0.5)


def _two_ad_slates(scenario, second_treatment: int):
    """The world's first tick, with candidates 0 and 1 shown on top (the second in `second_treatment`) on every query
    that has both: the world, the batch, those rows, and the loop's truth and clicks (in (query, position) order)."""
    world = make_world(scenario)
    batch = world.queries(0.0, 1.0)
    rows = np.flatnonzero(batch.valid.sum(axis=1) >= 2)
    outcome = AuctionOutcome(ad=np.full((batch.size, 4), -1, np.int32), treatment=np.zeros((batch.size, 4), np.int32),
                             ctr=None, payment=None, price_per_click=None, objective=None, tied=None)
    outcome.ad[rows, 0], outcome.ad[rows, 1] = 0, 1
    outcome.treatment[rows, 1] = second_treatment
    truth, click = slate_clicks(batch, outcome, world.examination, world.slots(batch), scenario.world)
    return world, batch, rows, truth, click


@pytest.mark.parametrize("world_kind", ["teaching", "realistic"])
def test_slate_clicks_in_the_loop(world_kind):
    """The loop's clicks: relevance × lift × examination under the position-based model (bit for bit); under the
    cascade the second ad's truth is its attractiveness (relevance × lift × top examination) × γ(1 − a₁σ)."""
    for model in CLICK_MODELS:
        scenario = simulator.load("scenarios/smoke.toml", overrides=[f"world.click_model={model}",
                                                                     "world.cascade_continue=0.8",
                                                                     f"world.kind={world_kind}"])
        world, batch, rows, truth, click = _two_ad_slates(scenario, second_treatment=2)
        first, second = truth[0::2], truth[1::2]
        a1 = batch.relevance[rows, 0] * batch.lift[rows, 0, 0] * world.examination[0, 0]
        a2 = batch.relevance[rows, 1] * batch.lift[rows, 1, 2] * world.examination[2, 0]
        if world_kind == "realistic":
            assert np.std(np.log(batch.lift[rows, 1, 2])) > 0.1  # the lifts differ between ads: they count here
        if model == "position_based":
            np.testing.assert_array_equal(second, batch.relevance[rows, 1] * batch.lift[rows, 1, 2] * world.examination[2, 1])
            np.testing.assert_array_equal(click[1::2], batch.click_noise[rows, 1] < second)
            assert batch.cascade_noise is None
        else:
            np.testing.assert_allclose(first, a1, rtol=1e-6)
            np.testing.assert_allclose(second, a2 * 0.8 * (1 - a1 * 0.5), rtol=1e-6)
            assert batch.cascade_noise.shape == (batch.size, 4, 2)


def test_the_trust_term_clicks_unattractive_top_ads_and_is_not_separable():
    """Vardasbi et al.'s trust term: a look at rank r clicks with ε⁺_r·a + ε⁻_r·(1 − a), ε⁺_r = 1 − drop·(r + 1),
    ε⁻_r = ε⁻/r; an ad's CTR over positions then depends on its attractiveness, and both zero change nothing."""
    attractive = np.array([[0.02], [0.5]], np.float32)
    ratio = np.array([[1.0, 0.6, 0.3]], np.float32)
    ctr, looked = trusted(attractive, ratio, 0.1, 0.01)
    plus, minus = 1 - 0.01 * np.array([2, 3, 4]), 0.1 / np.array([1, 2, 3])
    np.testing.assert_allclose(looked, attractive * plus + (1 - attractive) * minus, rtol=1e-6)
    np.testing.assert_allclose(ctr, ratio * looked, rtol=1e-6)
    assert ctr[0, 0] > 5 * attractive[0, 0]  # an unattractive ad on top is clicked mostly from trust
    assert ctr[0, 2] / ctr[0, 0] < 0.2 < ctr[1, 2] / ctr[1, 0] < 0.3  # its CTR falls faster down the page
    same, _ = trusted(attractive, ratio, 0.0, 0.0)
    np.testing.assert_array_equal(same, attractive * ratio)
    np.testing.assert_allclose(trusted_ctr(attractive * ratio, 0.1, 0.01), ctr, rtol=1e-6)  # from CTRs alone


@pytest.mark.parametrize("model", list(CLICK_MODELS))
def test_the_trust_term_in_the_loop_and_the_oracle_that_knows_it(model):
    """With the trust term the loop's truth is the trusted one (the cascade's on trusted attractiveness), and under
    the position-based model the oracle's pCTR of every shown ad is its logged true CTR."""
    trust = ["world.trust_false_click=0.05", "world.trust_true_click_drop=0.01"]
    scenario = simulator.load("scenarios/smoke.toml", overrides=[f"world.click_model={model}", *trust,
                                                                 "world.cascade_continue=0.8"])
    world, batch, rows, truth, _ = _two_ad_slates(scenario, second_treatment=0)
    a1 = batch.relevance[rows, 0] * batch.lift[rows, 0, 0] * world.examination[0, 0]
    a2 = batch.relevance[rows, 1] * batch.lift[rows, 1, 0] * world.examination[0, 0]
    t1, t2 = a1 * 0.98 + (1 - a1) * 0.05, a2 * 0.97 + (1 - a2) * 0.025
    np.testing.assert_allclose(truth[0::2], t1, rtol=1e-5)
    if model == "position_based":
        np.testing.assert_allclose(truth[1::2], t2 * world.examination[0, 1] / world.examination[0, 0], rtol=1e-5)
        output = simulator.run(simulator.config.replace(scenario, run__duration_hours=0.1, model__oracle=True))
        log = output.log.arrays(("true_ctr", "pctr"))
        np.testing.assert_allclose(log["pctr"], log["true_ctr"], rtol=1e-5)
    else:
        np.testing.assert_allclose(truth[1::2], t2 * 0.8 * (1 - t1 * 0.5), rtol=1e-5)
