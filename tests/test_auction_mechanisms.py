"""GSP (threshold prices) and first price on the welfare-maximising page, against the reference solver."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from auction import solve_batch
from auction.instance import from_dense, from_json
from auction.mechanisms import MECHANISMS
from auction.reference import solve
from tests.conftest import AUCTION_CASES
from tests.test_auction_batched import _random_batch

THRESHOLD_CASES = [c for c in AUCTION_CASES if "gsp_like_threshold_price_per_click" in c["expected"]]


@pytest.mark.parametrize("case", THRESHOLD_CASES, ids=[c["id"] for c in THRESHOLD_CASES])
def test_gsp_prices_are_the_cases_threshold_prices(case):
    instance = from_json(case)
    dense = instance.to_dense()
    heights = tuple(float(h) for h in dense["heights"]) if instance.space_budget is not None else None
    out = solve_batch(dense["ctr"], dense["bid"], dense["reserve"], dense["available"], heights=heights,
                      space_budget=instance.space_budget, mechanism="gsp")
    for ad, price in case["expected"]["gsp_like_threshold_price_per_click"].items():
        k = list(out.ad[0]).index(int(ad))
        assert float(out.price_per_click[0, k]) == pytest.approx(price, rel=1e-5, abs=1e-6)


SHAPES = [(4, 1, 3, (1.0,), None), (5, 2, 3, (1.0, 2.0), None), (5, 3, 3, (3.0, 4.0, 6.0), 13.0), (4, 3, 3, (1.0, 2.0, 3.0), 5.0)]


@pytest.mark.parametrize("mode", ["cost", "filter"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"n{s[0]}t{s[1]}k{s[2]}b{s[4]}" for s in SHAPES])
def test_mechanisms_match_the_reference_on_random_instances(shape, mode):
    num_ads, num_treatments, num_positions, heights, budget = shape
    rng = np.random.default_rng(zlib.crc32(repr((shape, mode, "mechanisms")).encode()))
    ctr, bid, reserve, available = _random_batch(rng, 96, num_ads, num_treatments, num_positions, 1.0, 1.0)
    options = dict(heights=heights if budget else None, space_budget=budget, mode=mode)
    outcomes = {name: solve_batch(ctr, bid, reserve, available, mechanism=name, **options) for name in MECHANISMS}
    for name, out in outcomes.items():  # one page, whatever the pricing
        assert np.array_equal(out.ad, outcomes["vcg"].ad) and np.array_equal(out.treatment, outcomes["vcg"].treatment), name
    gsp, first = outcomes["gsp"], outcomes["first_price"]
    for q in range(ctr.shape[0]):
        reference = solve(from_dense(ctr[q], bid[q], reserve[q], available[q], np.asarray(heights), budget), mode, exact=False)
        for k, (ad, _) in enumerate(reference.slate.picks):
            assert gsp.price_per_click[q, k] == pytest.approx(reference.threshold_prices[ad], rel=1e-5, abs=1e-6), (q, k)
            assert first.payment[q, k] == pytest.approx(bid[q, ad] * first.ctr[q, k])
    shown = gsp.ad >= 0
    own_reserve = np.take_along_axis(reserve, np.maximum(gsp.ad, 0), axis=1)
    own_bid = np.take_along_axis(bid, np.maximum(gsp.ad, 0), axis=1)
    vcg = outcomes["vcg"]
    # reserve ≤ VCG price ≤ GSP (threshold) price ≤ first price = bid, where an ad has clicks
    clicked = shown & (gsp.ctr > 0)
    assert np.all(vcg.price_per_click[clicked] >= own_reserve[clicked] - 1e-5)
    assert np.all(gsp.price_per_click[clicked] >= vcg.price_per_click[clicked] - 1e-5)
    assert np.all(gsp.price_per_click[clicked] <= own_bid[clicked] + 1e-5)


@pytest.mark.parametrize("num_positions", [2, 5])  # K = 5: the solver choice that sizes the chunks reads the name
def test_an_unknown_mechanism_names_the_field(num_positions):
    ctr, bid = np.full((1, 3, 1, num_positions), 0.1, np.float32), np.ones((1, 3), np.float32)
    with pytest.raises(ValueError, match="mechanism: 'second_price' is not one of vcg, gsp, first_price"):
        solve_batch(ctr, bid, np.zeros_like(bid), mechanism="second_price")
