"""The exact reference solver: brute-force enumeration of every feasible slate, for small inputs of any shape.

Conventions (shared/auction_cases): a slate is an ordered list of distinct (ad, treatment) pairs filling
positions 0..m−1, m ≤ K, heights within the budget, only ads with bid > reserve. Ties: maximise the
objective exactly, then fewer ads, then the lexicographically larger vector of per-position
contributions, then the lexicographically smaller list of (ad, treatment). With `exact=True` the
arithmetic is rational (each float is read as the decimal it prints as), as in the reference cases.

VCG's CTRs are made non-increasing along positions first (`monotone_ctr`: each row's running minimum
from the top), as in the batched solver: with gap-free slates and CTRs rising down the page a Clarke
payment could otherwise be negative. With the rule every payment is ≥ reserve × CTR ≥ 0.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from fractions import Fraction

from auction.instance import AuctionInstance, InstanceError
from auction.reserves import RESERVE_MODES, ReserveMode


@dataclass(frozen=True)
class Slate:
    picks: tuple[tuple[int, int], ...]  # (ad, treatment) by position
    ctrs: tuple  # each pick's CTR at its position
    contributions: tuple  # each pick's term of the objective

    @property
    def objective(self):
        return sum(self.contributions, start=0)

    def ctr_of(self, ad: int):
        return next((c for (a, _), c in zip(self.picks, self.ctrs) if a == ad), 0)


@dataclass(frozen=True)
class Outcome:
    """An auction's result; money is per page view (payment) and per click (price)."""

    mechanism: str
    slate: Slate
    welfare: float  # Σ bid·ctr
    objective: float  # Σ (bid − reserve)·ctr
    payments: dict[int, float]
    prices: dict[int, float]
    threshold_prices: dict[int, float]
    counterfactual: dict[int, float]  # VCG: best objective without the ad (cost) / with it bidding its reserve (filter)

    def as_json(self, instance: AuctionInstance) -> dict:
        position = {ad: p for p, (ad, _) in enumerate(self.slate.picks)}
        ads = []
        for ad in range(instance.num_ads):
            shown = ad in position
            treatment = self.slate.picks[position[ad]][1] if shown else None
            ads.append({
                "ad": ad, "shown": shown, "position": position.get(ad), "format": treatment,
                "ctr": float(self.slate.ctrs[position[ad]]) if shown else 0.0,
                "payment": self.payments.get(ad, 0.0), "price_per_click": self.prices.get(ad),
            })
        return {
            "mechanism": self.mechanism,
            "allocation": [{"position": p, "ad": a, "format": f, "format_name": instance.treatment_names[a][f]}
                           for p, (a, f) in enumerate(self.slate.picks)],
            "ads": ads,
            "welfare": self.welfare,
            "objective": self.objective,
            "revenue": sum(self.payments.values()),
            "threshold_price_per_click": {str(a): p for a, p in self.threshold_prices.items()},
        }


def _numbers(instance: AuctionInstance, exact: bool):
    convert = (lambda x: Fraction(repr(float(x)))) if exact else float
    bids = [convert(b) for b in instance.bids]
    reserves = [convert(r) for r in instance.reserves]
    ctr = [[[convert(x) for x in row] for row in ad] for ad in instance.ctr]
    heights = [[convert(h) for h in ad] for ad in instance.heights]
    budget = None if instance.space_budget is None else convert(instance.space_budget)
    return bids, reserves, ctr, heights, budget


def monotone_ctr(rows):
    """Each CTR row (one ad and treatment, by position) replaced by its running minimum from the top."""
    return [[list(itertools.accumulate(row, min)) for row in treatments] for treatments in rows]


def feasible_placements(instance: AuctionInstance, eligible: list[int], heights, budget):
    """Every feasible slate as picks ((ad, treatment), …) — the null slate first."""
    for length in range(0, min(instance.num_positions, len(eligible)) + 1):
        for ads in itertools.permutations(eligible, length):
            for treatments in itertools.product(*(range(len(heights[a])) for a in ads)):
                if budget is None or sum((heights[a][f] for a, f in zip(ads, treatments)), start=0) <= budget:
                    yield tuple(zip(ads, treatments))


def _tie_key(slate: Slate):
    return (-slate.objective, len(slate.picks), [-c for c in slate.contributions], list(slate.picks))


def _line_threshold(chosen: Slate, ad: int, slates: list[Slate], weight_offset) -> object:
    """Infimum of the bid at which `ad` still gets its clicks in `chosen`, others fixed (weight = bid − offset).

    Each slate's objective is a line in the ad's weight w: A + w·c. The ad gets at least its clicks
    c* iff some line with c ≥ c* is at least every line with c < c*, i.e. w ≥ min over the first of
    the max over the second of their crossing points.
    """
    own = chosen.ctr_of(ad)
    # Lines with the same slope (the ad's CTR in the slate) are dominated by the highest one: keep that.
    upper, lower = {}, {}  # slope → best objective without the ad's term
    for s in slates:
        ads = [a for a, _ in s.picks]
        if ad in ads:
            k = ads.index(ad)
            side, slope, rest = (upper if s.ctrs[k] >= own else lower), s.ctrs[k], s.objective - s.contributions[k]
        else:
            side, slope, rest = lower, 0, s.objective
        if slope not in side or rest > side[slope]:
            side[slope] = rest
    best = None
    for c_u, rest_u in upper.items():
        crossing = max(((rest_l - rest_u) / (c_u - c_l) for c_l, rest_l in lower.items() if c_u > c_l), default=None)
        if crossing is not None and (best is None or crossing < best):
            best = crossing
    return None if best is None else best + weight_offset


def solve(instance: AuctionInstance, mode: ReserveMode = "cost", exact: bool = True) -> Outcome:
    """VCG over (ad, treatment, position) with the null set and per-click reserves.

    `cost`: maximise Σ (bid − reserve)·ctr, Clarke payments on that objective.
    `filter`: drop ads with bid ≤ reserve, maximise Σ bid·ctr, threshold (Myerson) payments.
    """
    if mode not in RESERVE_MODES:
        raise InstanceError(f"reserve mode: {mode!r} is not allowed; allowed: {', '.join(RESERVE_MODES)}")
    bids, reserves, ctr, heights, budget = _numbers(instance, exact)
    ctr = monotone_ctr(ctr)
    eligible = [a for a in range(instance.num_ads) if bids[a] > reserves[a]]
    weight = [b - r for b, r in zip(bids, reserves)] if mode == "cost" else list(bids)

    def build(picks, weights) -> Slate:
        ctrs = tuple(ctr[a][f][p] for p, (a, f) in enumerate(picks))
        return Slate(picks, ctrs, tuple(weights[a] * c for (a, _), c in zip(picks, ctrs)))

    placements = list(feasible_placements(instance, eligible, heights, budget))
    slates = [build(p, weight) for p in placements]
    chosen = min(slates, key=_tie_key)
    payments, prices, thresholds, counterfactual = {}, {}, {}, {}
    for position, (ad, _) in enumerate(chosen.picks):
        own_ctr = chosen.ctrs[position]
        others = chosen.objective - chosen.contributions[position]
        if mode == "cost":
            without = max(s.objective for s in slates if ad not in (a for a, _ in s.picks))
            payment = reserves[ad] * own_ctr + without - others
        else:
            at_reserve = list(weight)
            at_reserve[ad] = reserves[ad]
            without = max(build(p, at_reserve).objective for p in placements)
            payment = without - others
        counterfactual[ad] = float(without)
        payments[ad] = float(payment)
        prices[ad] = float(payment / own_ctr) if own_ctr else 0.0
        offset = reserves[ad] if mode == "cost" else 0
        threshold = _line_threshold(chosen, ad, slates, offset)
        thresholds[ad] = float(max(threshold, reserves[ad])) if threshold is not None else float(reserves[ad])
    welfare = sum((bids[a] * c for (a, _), c in zip(chosen.picks, chosen.ctrs)), start=0)
    # "objective" is Σ (bid − reserve)·ctr whatever the mechanism maximised (the cases' convention)
    objective = sum(((bids[a] - reserves[a]) * c for (a, _), c in zip(chosen.picks, chosen.ctrs)), start=0)
    return Outcome(f"vcg_{mode}", chosen, float(welfare), float(objective), payments, prices, thresholds,
                   counterfactual)


def first_price(instance: AuctionInstance, mode: ReserveMode = "cost", exact: bool = True) -> Outcome:
    """First price: the page `solve` chooses, each shown ad paying its own bid per click."""
    return pay_the_bid(solve(instance, mode, exact), instance)


def pay_the_bid(outcome: Outcome, instance: AuctionInstance) -> Outcome:
    """The outcome's page, each shown ad paying its own bid per click (first price)."""
    prices = {ad: float(instance.bids[ad]) for ad, _ in outcome.slate.picks}
    payments = {ad: prices[ad] * float(ctr) for (ad, _), ctr in zip(outcome.slate.picks, outcome.slate.ctrs)}
    return replace(outcome, mechanism="first_price", payments=payments, prices=prices)


def gsp(instance: AuctionInstance, exact: bool = True) -> Outcome:
    """GSP for single-treatment separable inputs: rank by bid × quality, pay next eligible score / own quality ≥ reserve."""
    bids, reserves, ctr, _, _ = _numbers(instance, exact)
    if any(len(treatments) != 1 for treatments in ctr):
        raise InstanceError("gsp: needs exactly one treatment per ad (use vcg for several)")
    rows = [treatments[0] for treatments in ctr]
    reference = max(range(len(rows)), key=lambda a: rows[a][0])
    top = rows[reference][0]
    if top == 0:
        raise InstanceError("gsp: every ad has zero CTR at the top position")
    theta = [x / top for x in rows[reference]]
    for a, row in enumerate(rows):
        if any(abs(row[p] - row[0] * theta[p]) > 1e-9 * max(abs(row[p]), 1e-300) for p in range(len(row))):
            raise InstanceError(f"gsp: ctr[{a}] is not quality × position effect (the input is not separable)")
    quality = [row[0] for row in rows]
    ranked = sorted((a for a in range(len(bids)) if bids[a] > reserves[a]), key=lambda a: (-bids[a] * quality[a], a))
    shown = ranked[: instance.num_positions]
    payments, prices = {}, {}
    for position, ad in enumerate(shown):
        following = ranked[position + 1] if position + 1 < len(ranked) else None
        next_score = bids[following] * quality[following] if following is not None else 0
        price = max(next_score / quality[ad], reserves[ad]) if quality[ad] else reserves[ad]
        prices[ad] = float(price)
        payments[ad] = float(price * rows[ad][position])
    picks = tuple((ad, 0) for ad in shown)
    ctrs = tuple(rows[ad][p] for p, ad in enumerate(shown))
    slate = Slate(picks, ctrs, tuple((bids[a] - reserves[a]) * c for a, c in zip(shown, ctrs)))
    welfare = sum((bids[a] * c for a, c in zip(shown, ctrs)), start=0)
    return Outcome("gsp", slate, float(welfare), float(slate.objective), payments, prices, dict(prices), {})


def explain(outcome: Outcome, instance: AuctionInstance) -> str:
    """A human-readable account: who won where, in which treatment, what each pays and why."""
    lines = [f"Mechanism {outcome.mechanism}: {len(outcome.slate.picks)} of {instance.num_ads} ads shown "
             f"in {instance.num_positions} positions" + (f", page height budget {instance.space_budget:g}"
                                                         if instance.space_budget is not None else "") + "; "
             "positions count from 1 at the top (JSON's position p is position p + 1 here)."]
    if outcome.mechanism != "gsp":
        raised = [(a, f) for a, treatments in enumerate(instance.ctr) for f, row in enumerate(treatments)
                  if any(later > earlier for earlier, later in itertools.pairwise(row))]
        lines.append("CTRs are made non-increasing along positions before the auction runs (each ad's CTR at a "
                     "position is the smallest at that position or above), so no payment is below reserve × CTR"
                     + (": this changed " + ", ".join(f"ad {a} as {instance.treatment_names[a][f]!r}" for a, f in raised)
                        + "." if raised else "; every CTR here already was."))
    if not outcome.slate.picks:
        lines.append("Nothing is shown: no ad has bid > reserve with a positive contribution (the null set).")
    for position, ((ad, treatment), ctr) in enumerate(zip(outcome.slate.picks, outcome.slate.ctrs)):
        bid, reserve = instance.bids[ad], instance.reserves[ad]
        price, payment = outcome.prices[ad], outcome.payments[ad]
        head = (f"Position {position + 1}: ad {ad} as {instance.treatment_names[ad][treatment]!r} (height "
                f"{instance.heights[ad][treatment]:g}), CTR {float(ctr):.6g}, bid {bid:g}/click, reserve {reserve:g}.")
        others = outcome.objective - (bid - reserve) * float(ctr)
        if outcome.mechanism == "vcg_cost":
            why = (f"  Pays {price:.6g}/click = {payment:.6g} per view: its reserve cost {reserve * float(ctr):.6g} plus "
                   f"the harm to the others, whose best objective without it is {outcome.counterfactual[ad]:.6g} "
                   f"against {others:.6g} with it.")
        elif outcome.mechanism == "vcg_filter":
            why = (f"  Pays {price:.6g}/click = {payment:.6g} per view: the best welfare if it bid only its reserve "
                   f"({outcome.counterfactual[ad]:.6g}) minus the others' welfare with it.")
        elif outcome.mechanism == "first_price":
            why = f"  Pays its bid, {price:.6g}/click = {payment:.6g} per view (first price)."
        elif outcome.mechanism == "gsp_threshold":
            why = (f"  Pays its threshold price, {price:.6g}/click = {payment:.6g} per view: the least bid that keeps its "
                   "clicks on this page, at least the reserve (GSP generalised to treatments).")
        else:
            why = f"  Pays {price:.6g}/click: the next eligible ad's score over its own quality, at least the reserve."
        lines += [head, why]
        if outcome.mechanism not in ("gsp", "gsp_threshold"):
            lines.append(f"  Keeps this placement down to a bid of {outcome.threshold_prices[ad]:.6g}/click (threshold price).")
    unshown = [a for a in range(instance.num_ads) if a not in {a for a, _ in outcome.slate.picks}]
    if unshown:
        lines.append("Not shown (pay nothing): " + ", ".join(
            f"ad {a}" + (" (bid ≤ reserve)" if instance.bids[a] <= instance.reserves[a] else "") for a in unshown) + ".")
    lines.append(f"Welfare {outcome.welfare:.6g}, objective Σ(bid − reserve)·CTR {outcome.objective:.6g}, "
                 f"revenue {sum(outcome.payments.values()):.6g}.")
    return "\n".join(lines)
