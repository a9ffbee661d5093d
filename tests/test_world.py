"""The world: traffic follows the diurnal rate, retrieval gives distinct live ads, CTRs are probabilities."""

from __future__ import annotations

import numpy as np

import simulator
from simulator.world.ground_truth import World, diurnal_rate, true_ctr
from tests.conftest import DEFAULT


def _world(seed: int = 0) -> World:
    world = World(simulator.load(DEFAULT))
    world.reset(seed)
    return world


def test_arrivals_follow_the_diurnal_rate():
    world = _world()
    traffic = world.traffic
    peak = [world.queries(traffic.peak_hour * 60 + i, 1.0).size for i in range(30)]
    trough = [world.queries(((traffic.peak_hour + 12) % 24) * 60 + i, 1.0).size for i in range(30)]
    assert np.isclose(np.mean(peak), diurnal_rate(traffic, traffic.peak_hour * 60), rtol=0.05)
    assert np.isclose(np.mean(trough), diurnal_rate(traffic, (traffic.peak_hour + 12) * 60), rtol=0.08)


def test_candidates_are_distinct_live_ads_mostly_on_topic():
    world = _world()
    batch = world.queries(600.0, 1.0)
    assert batch.valid.mean() > 0.9
    for q in range(batch.size):
        ads = batch.candidates[q][batch.valid[q]]
        assert len(set(ads.tolist())) == len(ads) and world.ad_active[ads].all()
    on_topic = world.ad_topic[batch.candidates] == batch.topic[:, None]
    assert 0.6 < on_topic[batch.valid].mean() < 0.9
    assert np.all(batch.bid[~batch.valid] == 0)


def test_true_ctr_is_relevance_times_examination_and_a_probability():
    world = _world()
    batch = world.queries(0.0, 1.0)
    ctr = true_ctr(batch.relevance, batch.lift, world.examination)
    assert np.all(batch.lift == 1)  # the teaching world's formats act the same on every ad
    assert ctr.shape == (batch.size, batch.candidates.shape[1], *world.examination.shape)
    assert np.all((ctr >= 0) & (ctr <= 1))
    assert np.all(np.diff(ctr, axis=-1) <= 0)  # lower positions are examined less
    assert world.examination.max() == 1.0


def test_churn_adds_and_removes_ads():
    world = _world()
    before = world.ad_active.copy()
    for minute in range(0, 600, 10):
        world.churn(float(minute), 10.0)
    assert world.num_ads > before.size  # new ads arrived
    assert not world.ad_active[: before.size].all()  # some old ones left


def test_same_seed_same_world_different_seed_different_world():
    a, b, c = _world(1), _world(1), _world(2)
    assert np.array_equal(a.queries(0, 1).features, b.queries(0, 1).features)
    assert not np.array_equal(a.ad_quality, c.ad_quality)
