"""The batched VCG solver against exact reference cases and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from auction import solve_batch as vcg_batch
from tests.conftest import AUCTION_CASES

CASES = AUCTION_CASES
# Cases with a page height budget need the rich-ads solver (the auction-engine issue); these have none.
NO_BUDGET = [c for c in CASES if c["input"]["space_budget"] is None]


def _arrays(instance: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ads = instance["ads"]
    ctr = np.asarray(instance["ctr"], np.float64)[None]  # [1, N, F, K]
    bid = np.asarray([[a["bid"] for a in ads]], np.float64)
    reserve = np.asarray([[a["reserve_per_click"] for a in ads]], np.float64)
    return ctr.astype(np.float32), bid.astype(np.float32), reserve.astype(np.float32)


# The batched solver computes in float32: allow a few float32 ulps of the auction's scale on top of the case's tolerance.
FLOAT32_SLACK = 4 * float(np.finfo(np.float32).eps)


def _close(actual: float, expected: float, tolerance: dict, scale: float, key: str = "abs_money") -> bool:
    return abs(actual - expected) <= max(tolerance["rel"] * abs(expected), tolerance[key], FLOAT32_SLACK * scale)


@pytest.mark.parametrize("case", NO_BUDGET, ids=[c["id"] for c in NO_BUDGET])
def test_vcg_matches_reference_case(case):
    expected = case["expected"]["vcg"]
    outcome = vcg_batch(*_arrays(case["input"]))
    shown = [(int(p), int(a), int(f)) for p, (a, f) in enumerate(zip(outcome.ad[0], outcome.treatment[0])) if a >= 0]
    assert shown == [(x["position"], x["ad"], x["format"]) for x in expected["allocation"]]
    tolerance, scale = case["tolerance"], expected["welfare"]
    assert _close(float(outcome.objective[0]), expected["objective"], tolerance, scale)
    for position, ad, _ in shown:
        reference = expected["ads"][ad]
        own_scale = scale / reference["ctr"]
        assert _close(float(outcome.payment[0, position]), reference["payment"], tolerance, scale)
        assert _close(float(outcome.price_per_click[0, position]), reference["price_per_click"], tolerance, own_scale, "abs_price")
    assert _close(float(outcome.payment[0].sum()), expected["revenue"], tolerance, scale)


def _brute_force(ctr: np.ndarray, bid: np.ndarray, reserve: np.ndarray) -> tuple[float, dict[int, float]]:
    """Best objective over every feasible slate, and each shown ad's VCG payment, by enumeration (one query)."""
    num_ads, num_treatments, num_positions = ctr.shape
    eligible = [a for a in range(num_ads) if bid[a] > reserve[a]]

    def best(excluded: int | None) -> tuple[float, tuple]:
        top, top_slate = 0.0, ()
        pool = [a for a in eligible if a != excluded]
        for length in range(1, num_positions + 1):
            for ads in itertools.permutations(pool, length):
                for formats in itertools.product(range(num_treatments), repeat=length):
                    value = sum((bid[a] - reserve[a]) * ctr[a, f, k] for k, (a, f) in enumerate(zip(ads, formats)))
                    if value > top + 1e-12:
                        top, top_slate = value, tuple(zip(ads, formats))
        return top, top_slate

    objective, slate = best(None)
    payments = {}
    for k, (a, f) in enumerate(slate):
        own = (bid[a] - reserve[a]) * ctr[a, f, k]
        payments[a] = reserve[a] * ctr[a, f, k] + best(a)[0] - (objective - own)
    return objective, payments


def test_vcg_matches_brute_force_on_random_instances():
    rng = np.random.default_rng(7)
    batch, num_ads, num_treatments, num_positions = 60, 5, 2, 3
    # CTRs fall with position, as in the world (the no-gap rule makes VCG individually rational only then).
    ctr = np.sort(rng.random((batch, num_ads, num_treatments, num_positions)), axis=-1)[..., ::-1]
    ctr = (ctr * 0.3).astype(np.float32)
    bid = rng.choice([0.0, 0.5, 1.0, 2.0, 3.5], size=(batch, num_ads)).astype(np.float32)
    reserve = rng.choice([0.0, 0.6], size=(batch, num_ads)).astype(np.float32)
    outcome = vcg_batch(ctr, bid, reserve)
    for q in range(batch):
        objective, payments = _brute_force(ctr[q].astype(np.float64), bid[q].astype(np.float64), reserve[q].astype(np.float64))
        assert float(outcome.objective[q]) == pytest.approx(objective, rel=1e-5, abs=1e-6)
        for k in range(num_positions):
            ad = int(outcome.ad[q, k])
            if ad >= 0:
                assert float(outcome.payment[q, k]) == pytest.approx(payments[ad], rel=1e-4, abs=1e-5)


def test_vcg_is_individually_rational_and_respects_eligibility():
    rng = np.random.default_rng(3)
    ctr = (np.sort(rng.random((256, 20, 3, 4)), axis=-1)[..., ::-1] * 0.2).astype(np.float32)
    bid = rng.lognormal(0, 1, (256, 20)).astype(np.float32)
    reserve = np.full_like(bid, 0.5)
    outcome = vcg_batch(ctr, bid, reserve)
    shown = np.asarray(outcome.ad) >= 0
    own_bid = np.take_along_axis(bid, np.maximum(np.asarray(outcome.ad), 0), axis=1)
    assert np.all(own_bid[shown] > 0.5)
    assert np.all(np.asarray(outcome.payment)[shown] <= own_bid[shown] * np.asarray(outcome.ctr)[shown] * (1 + 1e-5))
    assert np.all(np.asarray(outcome.price_per_click)[shown] >= 0.5 * (1 - 1e-5))
    assert np.all(np.asarray(outcome.payment)[~shown] == 0)
    # positions are filled without gaps
    assert np.all(shown[:, :-1] >= shown[:, 1:])
