"""One instance solved exactly in the affordable way: the reference's rational enumeration while the slates
are few, the batched solver (float32 DP or assignment, K ≤ 8) beyond: what `adfloor auction` runs.

Both return the reference's `Outcome`, so `explain` and the JSON schema are the same whichever solved it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from auction.instance import AuctionInstance, InstanceError
from auction.mechanisms import check_mechanism
from auction.reference import Outcome, Slate, first_price, gsp, pay_the_bid, solve
from auction.reserves import RESERVE_MODES, ReserveMode
from auction.slate_dp import MAX_POSITIONS
from auction.vcg import solve_batch

ENUMERATION_LIMIT = 20_000  # feasible slates (an upper bound) the reference may enumerate: ~1 s in rational arithmetic
STATE_BYTES_LIMIT = 2**31  # the DP's prefix and suffix states on every candidate (a shortlist overflow's rerun)


def slate_bound(instance: AuctionInstance) -> int:
    """An upper bound on the reference's feasible slates: ordered picks of distinct eligible ads, any treatment."""
    eligible = sum(b > r for b, r in zip(instance.bids, instance.reserves))
    treatments = max(len(names) for names in instance.treatment_names)
    return sum(math.perm(eligible, m) * treatments**m for m in range(min(instance.num_positions, eligible) + 1))


def enumerable(instance: AuctionInstance) -> bool:
    return slate_bound(instance) <= ENUMERATION_LIMIT


def threshold_gsp(outcome: Outcome) -> Outcome:
    """GSP generalised to treatments and budgets, as in the loop: VCG's page, each ad paying its threshold price."""
    payments = {ad: outcome.threshold_prices[ad] * float(ctr) for (ad, _), ctr in zip(outcome.slate.picks, outcome.slate.ctrs)}
    return replace(outcome, mechanism="gsp_threshold", payments=payments, prices=dict(outcome.threshold_prices))


def solve_instance(instance: AuctionInstance, mechanism: str = "vcg", mode: ReserveMode = "cost") -> tuple[Outcome, str]:
    """The outcome under `mechanism` and the solver that found it ("reference" or "batched").

    GSP on single-treatment instances is the classic rank-by-score rule at any size (`reference.gsp`: no
    enumeration; it needs separable CTRs); with several treatments it is threshold pricing on VCG's page
    (`threshold_gsp`), as in the loop. Raises InstanceError.
    """
    check_mechanism(mechanism, InstanceError)
    if mode not in RESERVE_MODES:
        raise InstanceError(f"reserve mode: {mode!r} is not allowed; allowed: {', '.join(RESERVE_MODES)}")
    if mechanism == "gsp" and all(len(names) == 1 for names in instance.treatment_names):
        return gsp(instance), "reference"
    if enumerable(instance):
        if mechanism == "gsp":
            return threshold_gsp(solve(instance, mode)), "reference"
        return (first_price if mechanism == "first_price" else solve)(instance, mode), "reference"
    if instance.num_positions > MAX_POSITIONS:
        raise InstanceError(f"instance.num_positions: at most {MAX_POSITIONS} for an instance too large to enumerate "
                            f"(~{slate_bound(instance):.2g} slates), got {instance.num_positions}")
    tallest = max(max(heights) for heights in instance.heights)
    budget = instance.space_budget
    levels = 1 if budget is None else int(min(budget, instance.num_positions * tallest)) + 1
    state_bytes = 3 * (instance.num_ads + 1) * (1 << instance.num_positions) * levels * 4
    if state_bytes > STATE_BYTES_LIMIT:
        raise InstanceError(f"instance: too large for the batched solver (~{state_bytes / 2**30:.1f} GiB of DP states "
                            f"for {instance.num_ads} ads, {instance.num_positions} positions and {levels} height levels)")
    outcome = batched_outcome(instance, mode)
    if mechanism == "gsp":
        return threshold_gsp(outcome), "batched"
    return (pay_the_bid(outcome, instance) if mechanism == "first_price" else outcome), "batched"


def batched_outcome(instance: AuctionInstance, mode: ReserveMode = "cost") -> Outcome:
    """VCG by the batched solver, as the reference's Outcome: counterfactuals read back from the payments,
    threshold prices from a GSP run of the same page."""
    dense = instance.to_dense()
    heights = tuple(float(h) for h in dense["heights"]) if instance.space_budget is not None else None
    options = dict(heights=heights, space_budget=instance.space_budget, mode=mode)
    try:
        vcg = solve_batch(dense["ctr"], dense["bid"], dense["reserve"], dense["available"], **options)
        thresholds = solve_batch(dense["ctr"], dense["bid"], dense["reserve"], dense["available"], mechanism="gsp", **options)
    except ValueError as err:
        raise InstanceError(f"instance: {err}") from None
    shown = [(k, int(a)) for k, a in enumerate(vcg.ad[0]) if a >= 0]
    threshold_of = {int(a): float(p) for a, p in zip(thresholds.ad[0], thresholds.price_per_click[0]) if a >= 0}
    picks = tuple((ad, int(dense["own_index"][ad, vcg.treatment[0, k]])) for k, ad in shown)
    ctrs = tuple(float(vcg.ctr[0, k]) for k, _ in shown)
    weight = [b - r if mode == "cost" else b for b, r in zip(instance.bids, instance.reserves)]
    contributions = tuple(weight[ad] * c for (ad, _), c in zip(picks, ctrs))
    payments, prices, threshold_prices, counterfactual = {}, {}, {}, {}
    for (k, ad), ctr, own in zip(shown, ctrs, contributions):
        payments[ad] = float(vcg.payment[0, k])
        prices[ad] = float(vcg.price_per_click[0, k])
        threshold_prices[ad] = threshold_of.get(ad, instance.reserves[ad]) if ctr > 0 else instance.reserves[ad]
        others = sum(contributions) - own
        counterfactual[ad] = payments[ad] + others - (instance.reserves[ad] * ctr if mode == "cost" else 0.0)
    welfare = float(np.sum([instance.bids[ad] * c for (ad, _), c in zip(picks, ctrs)]))
    objective = float(np.sum([(instance.bids[ad] - instance.reserves[ad]) * c for (ad, _), c in zip(picks, ctrs)]))
    return Outcome(f"vcg_{mode}", Slate(picks, ctrs, contributions), welfare, objective, payments, prices,
                   threshold_prices, counterfactual)
