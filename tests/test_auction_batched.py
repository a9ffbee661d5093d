"""The batched solver equals the exact reference solver: on every reference case and on 10,000+ random instances."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from auction import solve_batch as vcg_batch
from auction.instance import from_dense, from_json
from auction.reference import solve
from tests.conftest import AUCTION_CASES

CASES = AUCTION_CASES
MODES = {"cost": "vcg", "filter": "vcg_filter"}


def _batched(instance_arrays: dict, space_budget, mode):
    a = instance_arrays
    heights = tuple(float(h) for h in a["heights"]) if space_budget is not None else None
    return vcg_batch(a["ctr"], a["bid"], a["reserve"], a["available"], heights=heights, space_budget=space_budget,
                     mode=mode)


# a case without reserves has no filter-semantics answer (the semantics coincide there)
CASE_MODES = [(case, mode) for case in CASES for mode in MODES if MODES[mode] in case["expected"]]


@pytest.mark.parametrize(("case", "mode"), CASE_MODES, ids=[f"{c['id']}-{m}" for c, m in CASE_MODES])
def test_batched_matches_reference_case(case, mode):
    instance = from_json(case)
    dense = instance.to_dense()
    out = _batched(dense, instance.space_budget, mode)
    expected = case["expected"][MODES[mode]]
    shown = [(p, int(a), int(dense["own_index"][a, t])) for p, (a, t) in enumerate(zip(out.ad[0], out.treatment[0])) if a >= 0]
    assert shown == [(x["position"], x["ad"], x["format"]) for x in expected["allocation"]]
    scale = max(expected["welfare"], 1e-30)
    for p, ad, _ in shown:
        assert float(out.payment[0, p]) == pytest.approx(expected["ads"][ad]["payment"], rel=1e-5, abs=1e-6 * scale)
    assert float(out.objective[0]) == pytest.approx(expected["objective"], rel=1e-5, abs=1e-6 * scale)


def _random_batch(rng: np.random.Generator, batch: int, num_ads: int, num_treatments: int, num_positions: int,
                  money_scale: float, ctr_scale: float):
    """Instances on a dyadic grid (exact in float32, so exact ties stay exact) with many ties and edge cases."""
    bid = rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0], size=(batch, num_ads))
    reserve = rng.choice([0.0, 0.0, 0.5, 1.0, 2.0], size=(batch, num_ads)) * (rng.random((batch, 1)) < 0.7)
    ctr = rng.integers(0, 33, size=(batch, num_ads, num_treatments, num_positions)) / 64.0
    ctr = np.where(rng.random((batch, 1, 1, 1)) < 0.5, -np.sort(-ctr, axis=-1), ctr)  # half fall with position
    available = rng.random((batch, num_ads, num_treatments)) < 0.8
    available[np.arange(batch)[:, None], np.arange(num_ads)[None, :], rng.integers(0, num_treatments, (batch, num_ads))] = True
    return ((ctr * ctr_scale).astype(np.float32), (bid * money_scale).astype(np.float32),
            (reserve * money_scale).astype(np.float32), available)


SHAPES = [  # (ads, treatments, positions, heights, budget) — fewer ads than slots, budgets that bind, none
    (2, 1, 3, (1.0,), None), (4, 1, 2, (1.0,), None), (5, 2, 3, (1.0, 2.0), None), (4, 3, 2, (1.0, 2.0, 3.0), None),
    (5, 2, 3, (1.0, 2.0), 4.0), (4, 3, 3, (1.0, 2.0, 3.0), 5.0), (3, 2, 2, (2.0, 3.0), 2.0), (5, 3, 3, (3.0, 4.0, 6.0), 13.0),
]
SCALES = [(1.0, 1.0), (2.0**20, 1.0), (1.0, 2.0**-30), (2.0**20, 2.0**-30)]  # bids ~1e6, CTRs ~1e-9


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"n{s[0]}t{s[1]}k{s[2]}b{s[4]}" for s in SHAPES])
def test_batched_matches_reference_on_random_instances(shape, mode):
    num_ads, num_treatments, num_positions, heights, budget = shape
    rng = np.random.default_rng(zlib.crc32(repr((shape, mode)).encode()))
    checked, tied = 0, 0
    for money_scale, ctr_scale in SCALES:
        ctr, bid, reserve, available = _random_batch(rng, 160, num_ads, num_treatments, num_positions, money_scale, ctr_scale)
        out = vcg_batch(ctr, bid, reserve, available, heights=heights if budget else None, space_budget=budget, mode=mode)
        out = [np.asarray(x) for x in out]
        tied += int(out[6].sum())
        for q in range(ctr.shape[0]):
            instance = from_dense(ctr[q], bid[q], reserve[q], available[q], np.asarray(heights), budget)
            reference = solve(instance, mode, exact=False)
            formats = [[t for t in range(num_treatments) if available[q, a, t]] for a in range(num_ads)]
            expected = [(a, formats[a][f]) for a, f in reference.slate.picks]
            got = [(int(a), int(t)) for a, t in zip(out[0][q], out[1][q]) if a >= 0]
            assert got == expected, (q, money_scale, ctr_scale)
            scale = max(reference.welfare, money_scale * ctr_scale)
            for p, (a, _) in enumerate(reference.slate.picks):
                assert abs(out[3][q][p] - reference.payments[a]) <= 1e-5 * scale, (q, p)
            checked += 1
    assert checked == 640
    assert tied > 0  # exact ties were exercised


@pytest.mark.parametrize("mode", MODES)
def test_all_bids_at_or_below_reserve_show_nothing(mode):
    rng = np.random.default_rng(5)
    ctr, bid, _, available = _random_batch(rng, 64, 4, 2, 3, 1.0, 1.0)
    out = vcg_batch(ctr, bid, bid + rng.choice([0.0, 0.5], bid.shape).astype(np.float32), available, mode=mode)
    assert np.all(out.ad == -1) and np.all(out.payment == 0) and np.all(out.objective == 0)
