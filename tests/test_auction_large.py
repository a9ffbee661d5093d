"""The solvers beyond what enumeration reaches: K = 6–8 against an independent formulation, and their input errors.

Without a height budget the page is a rectangular assignment problem; `scipy.optimize.linear_sum_assignment`
solves it (and, once per shown ad, without that ad) independently of both batched solvers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from auction import solve_batch
from auction.vcg import vcg_batch


def _scipy_vcg(ctr: np.ndarray, bid: np.ndarray, reserve: np.ndarray) -> tuple[float, dict[int, float]]:
    """Best objective Σ (bid − reserve)·ctr and each shown ad's VCG payment for one query ctr[N, T, K]."""
    num_ads, _, num_positions = ctr.shape
    value = np.where((bid > reserve)[:, None], (bid - reserve)[:, None] * np.minimum.accumulate(ctr, axis=2).max(axis=1), -1e30)

    def best(excluded: int | None) -> tuple[float, dict[int, int]]:
        page = np.concatenate([value.T, np.zeros((num_positions, num_positions))], axis=1)  # positions × (ads, empty)
        if excluded is not None:
            page[:, excluded] = -1e30
        rows, columns = linear_sum_assignment(page, maximize=True)
        placed = {int(c): int(r) for r, c in zip(rows, columns) if c < num_ads and page[r, c] > -1e29}
        return float(sum(page[r, c] for r, c in zip(rows, columns) if page[r, c] > -1e29)), placed

    objective, placed = best(None)
    payments = {}
    for ad, position in placed.items():
        own = value[ad, position]
        payments[ad] = float(reserve[ad] * (own / (bid[ad] - reserve[ad])) + best(ad)[0] - (objective - own))
    return objective, payments


@pytest.mark.parametrize("num_positions", [6, 7, 8])
def test_vcg_beyond_enumeration_matches_linear_sum_assignment(num_positions):
    rng = np.random.default_rng(num_positions)
    batch, num_ads, num_treatments = 48, 14, 3
    ctr = (rng.uniform(0.01, 0.3, (batch, num_ads, num_treatments, 1)) * rng.uniform(0.3, 1.0, (batch, num_ads, 1, num_positions))
           ).astype(np.float32)  # non-separable: each ad its own decay, some rising (the monotone rule applies)
    bid = rng.lognormal(0.0, 0.6, (batch, num_ads)).astype(np.float32)
    bid[:, :3] = 0.0  # zero bids never show
    reserve = np.where(rng.random((batch, 1)) < 0.5, 0.4, 0.0).astype(np.float32) * np.ones_like(bid)
    out = solve_batch(ctr, bid, reserve)
    for q in range(batch):
        objective, payments = _scipy_vcg(ctr[q].astype(np.float64), bid[q].astype(np.float64), reserve[q].astype(np.float64))
        assert float(out.objective[q]) == pytest.approx(objective, rel=1e-5)
        shown = {int(a): k for k, a in enumerate(out.ad[q]) if a >= 0}
        assert set(shown) == set(payments), q
        for ad, k in shown.items():
            assert float(out.payment[q, k]) == pytest.approx(payments[ad], rel=1e-4, abs=1e-6 * objective)
            assert float(out.price_per_click[q, k]) >= reserve[q, ad] * (1 - 1e-5)


def test_solvers_agree_at_every_k_on_ties_and_budgets():
    """The assignment solver and the DP (with and without a binding budget) give the same auction at K = 5–8."""
    rng = np.random.default_rng(11)
    for num_positions in (5, 8):
        ctr = (rng.integers(1, 9, (64, 10, 3, num_positions)) / 16.0).astype(np.float32)  # dyadic: exact ties
        bid = rng.choice([0.0, 1.0, 2.0, 3.0], (64, 10)).astype(np.float32)
        reserve = np.zeros_like(bid)
        fast = solve_batch(ctr, bid, reserve)
        dp = vcg_batch(ctr, bid, reserve, solver="tie_break_all")
        assert np.array_equal(fast.ad, np.asarray(dp.ad)) and np.array_equal(fast.treatment, np.asarray(dp.treatment))
        assert np.allclose(fast.payment, np.asarray(dp.payment), rtol=1e-5, atol=1e-6)
        assert fast.tied.any()  # exact ties were exercised
        # Under a budget nearly every dyadic query is tied, and the tie-breaking DP at K = 8 has 2^8 × 21 states
        # of 18-field keys: there a quarter of the queries is enough.
        rows = 16 if num_positions == 8 else 64
        budget = solve_batch(ctr[:rows], bid[:rows], reserve[:rows], heights=(3.0, 4.0, 6.0), space_budget=20.0)
        heights = np.where(budget.ad >= 0, np.asarray([3, 4, 6])[budget.treatment], 0).sum(axis=1)
        assert heights.max() <= 20 and (budget.objective <= fast.objective[:rows] + 1e-6).all()
        assert budget.tied.any() and (budget.objective < fast.objective[:rows] - 1e-6).any()  # ties; the budget binds


@pytest.mark.parametrize(("options", "message"), [
    (dict(heights=(3.0, -1.0, 6.0), space_budget=13.0), "heights[1]"),
    (dict(heights=(3.0, float("nan"), 6.0), space_budget=13.0), "heights[1]"),
    (dict(heights=(3.0, 4.5, 6.0), space_budget=13.0), "heights[1]"),
    (dict(heights=(3.0, 4.0, 6.0), space_budget=float("nan")), "space_budget"),
    (dict(heights=(3.0, 4.0, 6.0), space_budget=-2.0), "space_budget"),
    (dict(heights=(3.0, 4.0), space_budget=13.0), "heights"),
])
def test_bad_heights_and_budgets_name_the_field(options, message):
    ctr, bid = np.full((1, 4, 3, 3), 0.1, np.float32), np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        solve_batch(ctr, bid, np.zeros_like(bid), **options)


def test_more_positions_than_the_solvers_take_is_an_error():
    ctr, bid = np.full((1, 12, 1, 9), 0.1, np.float32), np.ones((1, 12), np.float32)
    with pytest.raises(ValueError, match="num_positions: at most 8"):
        solve_batch(ctr, bid, np.zeros_like(bid))


@pytest.mark.parametrize("num_positions", [3, 5])
def test_identical_ads_tie_although_float32_sums_round_apart(num_positions):
    """Two identical ads swapped give the same objective in exact arithmetic; summed in another order in float32
    they can differ by an ulp. The tie must still be seen and broken to the lower index (a reviewer's case)."""
    from auction.instance import from_dense
    from auction.reference import solve

    rng = np.random.default_rng(5)
    batch, num_ads = 48, 6
    quality = rng.uniform(0.05, 0.9, (batch, num_ads)).astype(np.float32)
    quality[:, 2] = quality[:, 1]  # ad 2 is a copy of ad 1
    effects = np.sort(rng.uniform(0.05, 1.0, (batch, 1, num_positions)), axis=-1)[..., ::-1]
    ctr = (quality[:, :, None] * effects).astype(np.float32)[:, :, None, :]
    bid = np.ones((batch, num_ads), np.float32)
    out = solve_batch(ctr, bid, np.zeros_like(bid))
    for q in range(batch):
        reference = solve(from_dense(ctr[q], bid[q], np.zeros(num_ads, np.float32)), "cost", exact=False)
        assert [int(a) for a in out.ad[q] if a >= 0] == [a for a, _ in reference.slate.picks], q
    assert out.tied.mean() > 0.5


@pytest.mark.parametrize("num_positions", [5, 6])
def test_flat_runs_are_broken_in_the_kernel_as_the_reference_does(num_positions):
    """A learned model's position curve that rises down the page is flattened by the monotone rule, and every order
    of the ads on the flat positions is optimal. The assignment solver breaks those ties itself (no re-solve) and
    picks the reference's slate; ties it cannot certify (equal values, other ads that could enter) are re-solved."""
    import itertools

    from auction.instance import from_dense
    from auction.reference import solve

    rng = np.random.default_rng(num_positions)
    batch, num_ads, num_treatments = 40, 5, 2
    curve = rng.uniform(0.3, 1.0, (batch, 1, 1, num_positions))  # one curve per query, shared by its ads
    ctr = (rng.uniform(0.02, 0.3, (batch, num_ads, num_treatments, 1)) * curve).astype(np.float32)
    bid = rng.lognormal(0.0, 0.5, (batch, num_ads)).astype(np.float32)
    bid[:, 0] = np.where(rng.random(batch) < 0.3, 0.0, bid[:, 0])  # some queries with fewer ads than positions
    reserve = np.zeros_like(bid)
    value = bid[:, :, None].astype(np.float64) * np.minimum.accumulate(ctr.astype(np.float64), axis=3).max(axis=2)
    tied = 0
    for q in range(batch):
        eligible = [a for a in range(num_ads) if bid[q, a] > 0]
        slates = [sum(value[q, a, k] for k, a in enumerate(s)) for n in range(len(eligible) + 1)
                  for s in itertools.permutations(eligible, n)]
        tied += sum(o >= max(slates) * (1 - 1e-12) for o in slates) > 1
    assert tied >= batch // 2  # the monotone rule made ties in most queries
    assert np.mean(vcg_batch(ctr, bid, reserve).tied) < 0.1  # the kernel broke them itself
    out = solve_batch(ctr, bid, reserve)
    for q in range(batch):
        reference = solve(from_dense(ctr[q], bid[q], reserve[q]), "cost", exact=False)
        assert [(int(a), int(t)) for a, t in zip(out.ad[q], out.treatment[q]) if a >= 0] == list(reference.slate.picks), q
        for k, (a, _) in enumerate(reference.slate.picks):
            assert float(out.payment[q, k]) == pytest.approx(reference.payments[a], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(("bid", "reserve", "ctr"), [
    ([1.6369617, 1.0165277], [0.13489336, 0.0], [0.11638941, 0.17198238]),  # float32 reverses the exact order
    ([1.034852, 1.552278], [0.009010017, 0.013515025], [0.375, 0.25]),  # exactly tied, float32 one ulp apart
], ids=["reversed", "tied"])
def test_flat_ads_whose_float32_values_do_not_settle_their_order_are_re_solved(bid, reserve, ctr):
    """(bid − reserve) × CTR is rounded twice in float32: two flat ads that close go to the exact re-solve (a
    reviewer's cases)."""
    from auction.instance import from_dense
    from auction.reference import solve

    bid, reserve = np.array([bid], np.float32), np.array([reserve], np.float32)
    ctr = np.broadcast_to(np.array(ctr, np.float32)[None, :, None, None], (1, 2, 1, 5)).copy()
    assert vcg_batch(ctr, bid, reserve).tied[0]
    reference = solve(from_dense(ctr[0], bid[0], reserve[0]), "cost", exact=False)
    assert [(int(a), int(t)) for a, t in zip(solve_batch(ctr, bid, reserve).ad[0], [0] * 5) if a >= 0] == \
        list(reference.slate.picks)


def test_an_empty_batch_gives_empty_outcomes():
    out = solve_batch(np.zeros((0, 3, 1, 2), np.float32), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    assert out.ad.shape == (0, 2) and out.payment.shape == (0, 2)


@pytest.mark.parametrize("num_positions", [2, 8])
def test_a_float32_near_tie_that_is_no_tie_takes_the_exact_optimum(num_positions):
    """The last ad bids one float32 ulp above its reserve: showing it adds ~1e-9, inside the float32 kernel's tie
    tolerance, so the kernel flags a tie, but the exact optimum shows it (a tie-break would show fewer ads)."""
    from auction.instance import from_dense
    from auction.reference import solve

    effects = np.linspace(1.0, 0.4, num_positions)
    ctr = (0.1 * np.ones((1, num_positions, 1, 1)) * effects).astype(np.float32)
    reserve = np.full((1, num_positions), 0.3, np.float32)
    bid = np.linspace(2.0, 1.0, num_positions).astype(np.float32)[None]
    bid[0, -1] = np.nextafter(reserve[0, -1], np.float32(1.0))
    assert vcg_batch(ctr, bid, reserve).tied[0]
    out = solve_batch(ctr, bid, reserve)
    assert [int(a) for a in out.ad[0]] == list(range(num_positions))
    if num_positions == 2:
        expected = solve(from_dense(ctr[0], bid[0], reserve[0]), "cost", exact=True)
        assert [a for a, _ in expected.slate.picks] == [0, 1]
        assert np.allclose(out.payment[0], [expected.payments[0], expected.payments[1]], rtol=1e-6)
    else:
        _, payments = _scipy_vcg(ctr[0].astype(np.float64), bid[0].astype(np.float64), reserve[0].astype(np.float64))
        assert np.allclose(out.payment[0], [payments[a] for a in range(num_positions)], rtol=1e-5)
