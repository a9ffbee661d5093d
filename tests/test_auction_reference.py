"""The reference solver reproduces every exact reference case: VCG (both reserve semantics), GSP, thresholds."""

from __future__ import annotations


import pytest

from auction.instance import InstanceError, from_json
from auction.reference import gsp, solve
from tests.conftest import AUCTION_CASES

CASES = AUCTION_CASES


def _close(actual: float, expected: float, tolerance: dict, key: str = "abs_money") -> bool:
    return abs(actual - expected) <= max(tolerance["rel"] * abs(expected), tolerance[key])


def _check(outcome, expected: dict, tolerance: dict, instance) -> None:
    result = outcome.as_json(instance)
    assert [(x["position"], x["ad"], x["format"]) for x in result["allocation"]] == \
        [(x["position"], x["ad"], x["format"]) for x in expected["allocation"]]
    for key in ("welfare", "objective", "revenue"):
        assert _close(result[key], expected[key], tolerance), key
    for mine, theirs in zip(result["ads"], expected["ads"]):
        assert mine["shown"] == theirs["shown"]
        assert _close(mine["payment"], theirs["payment"], tolerance)
        if theirs["price_per_click"] is not None:
            assert _close(mine["price_per_click"], theirs["price_per_click"], tolerance, "abs_price")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reference_vcg_cost_matches_case(case):
    instance = from_json(case)
    _check(solve(instance, "cost"), case["expected"]["vcg"], case["tolerance"], instance)


FILTER = [c for c in CASES if "vcg_filter" in c["expected"]]


@pytest.mark.parametrize("case", FILTER, ids=[c["id"] for c in FILTER])
def test_reference_vcg_filter_matches_case(case):
    instance = from_json(case)
    _check(solve(instance, "filter"), case["expected"]["vcg_filter"], case["tolerance"], instance)


GSP = [c for c in CASES if "gsp" in c["expected"]]


@pytest.mark.parametrize("case", GSP, ids=[c["id"] for c in GSP])
def test_reference_gsp_matches_case(case):
    instance = from_json(case)
    _check(gsp(instance), case["expected"]["gsp"], case["tolerance"], instance)


THRESHOLD = [c for c in CASES if "gsp_like_threshold_price_per_click" in c["expected"]]


@pytest.mark.parametrize("case", THRESHOLD, ids=[c["id"] for c in THRESHOLD])
def test_threshold_price_matches_case(case):
    instance = from_json(case)
    thresholds = solve(instance, "cost").threshold_prices
    for ad, price in case["expected"]["gsp_like_threshold_price_per_click"].items():
        assert _close(thresholds[int(ad)], price, case["tolerance"], "abs_price"), ad


def test_gsp_rejects_non_separable_input():
    case = next(c for c in CASES if c["id"] == "nonsep_top_value_ad_placed_second")
    with pytest.raises(InstanceError, match="not separable"):
        gsp(from_json(case))
