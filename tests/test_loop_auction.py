"""The auction switches work inside the closed loop: page height budget, reserve kinds and reserve semantics."""

from __future__ import annotations

import numpy as np

import simulator
from simulator.config import replace
from ui_treatments import treatments_by_name


def _run(smoke_scenario, **changes) -> simulator.RunOutput:
    return simulator.run(replace(smoke_scenario, run__duration_hours=0.5, **changes))


def test_page_height_budget_binds_and_mixes_treatments(smoke_scenario):
    budget = 13.0
    log = _run(smoke_scenario, auction__page_height_budget=budget, model__oracle=True).log.frame()
    heights = np.array([t.height for t in treatments_by_name(smoke_scenario.world.treatments)])
    used = log.assign(height=heights[log["treatment"]]).groupby("query")["height"].sum()
    assert used.max() <= budget and (used > budget - 3).mean() > 0.5
    assert log["treatment"].nunique() >= 2  # the budget makes the auction trade formats off
    unconstrained = _run(smoke_scenario, model__oracle=True).log.frame()
    assert unconstrained["treatment"].nunique() == 1  # without it the true CTR always favours the image format


def test_filter_semantics_price_at_least_the_reserve(smoke_scenario):
    log = _run(smoke_scenario, auction__reserve_mode="filter", auction__reserve=0.8).log.frame()
    assert len(log) and (log["price_per_click"] >= 0.8 * (1 - 1e-5)).all()


def test_quality_weighted_reserve_filters_low_quality_ads(smoke_scenario):
    uniform = _run(smoke_scenario).summary()
    weighted = _run(smoke_scenario, auction__reserve_kind="quality_weighted", auction__reserve=0.05).summary()
    assert weighted["ads_per_query"] < uniform["ads_per_query"]
    log = _run(smoke_scenario, auction__reserve_kind="quality_weighted", auction__reserve=0.05, model__oracle=True).log.frame()
    assert (log["price_per_click"] > 0).all()


def test_per_advertiser_reserves_differ_by_advertiser(smoke_scenario):
    from simulator.world.ground_truth import World

    world = World(replace(smoke_scenario, auction__reserve_kind="per_advertiser"))
    world.reset(0)
    assert world.advertiser_reserve.std() > 0.05
    batch = world.queries(0.0, 1.0)
    assert np.array_equal(batch.reserve[batch.valid], world.advertiser_reserve[batch.features[..., 3]][batch.valid])


def test_mechanisms_price_the_same_pages_in_the_loop(smoke_scenario):
    """With the true CTRs every mechanism shows the same pages; per impression VCG ≤ GSP ≤ first price (the bid)."""
    logs = {m: _run(smoke_scenario, model__oracle=True, auction__mechanism=m).log.frame()
            for m in ("vcg", "gsp", "first_price")}
    keys = ["query", "position", "ad_id", "treatment"]
    assert all(logs[m][keys].equals(logs["vcg"][keys]) for m in logs)
    vcg, gsp, first = (logs[m]["price_per_click"].to_numpy() for m in ("vcg", "gsp", "first_price"))
    assert (gsp >= vcg * (1 - 1e-5)).all() and (first >= gsp * (1 - 1e-5)).all()
    assert (gsp > vcg * 1.01).mean() > 0.2 and (first > gsp * 1.01).mean() > 0.2  # the switch acts
