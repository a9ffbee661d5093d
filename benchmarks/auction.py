"""Auction benchmark: auctions/s of the batched VCG solver and of the exact reference solver.

    python benchmarks/auction.py [--batch 1024] [--repeats 20] [--rounds 30]

Shape: 20 candidates × 3 treatments × K positions, batch 1,024, CTRs falling with position, lognormal
bids, a uniform reserve; K = 4 and 8, with no height budget and with budgets of 13 and 16 lines (text 3,
text+extensions 4, image 6); both reserve semantics; GSP and first price at K = 4; K = 7 with every page
full and with 55 % of pages 3 positions long (two devices). The targets are ratios measured in the same run
(the machine's speed varies several-fold between days, and within a run): K = 8 without a budget ≥ 0.2× K = 4
without one, and K = 4 with a binding 16-line budget ≥ 0.2× K = 4 without one, each the median over rounds
that run the three in turn. The reference enumerates every
slate exactly, so it is timed on 6 candidates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auction import solve_batch  # noqa: E402
from auction.instance import from_dense  # noqa: E402
from auction.reference import solve  # noqa: E402
from auction.reserves import RESERVE_MODES  # noqa: E402
from ui_treatments import CATALOGUE  # noqa: E402

HEIGHTS = tuple(float(t.height) for t in CATALOGUE)


def instances(rng: np.random.Generator, batch: int, num_ads: int = 20, num_treatments: int = 3, num_positions: int = 4):
    quality = rng.uniform(0.01, 0.2, (batch, num_ads, 1, 1))
    position = np.array([1.0, 0.65, 0.45, 0.3, 0.22, 0.16, 0.12, 0.09])[:num_positions]
    treatment = np.array([t.examination_multiplier for t in CATALOGUE])[:num_treatments, None] / 1.6
    ctr = (quality * treatment * position).astype(np.float32)
    bid = rng.lognormal(0.0, 0.5, (batch, num_ads)).astype(np.float32)
    return ctr, bid, np.full_like(bid, 0.3)


def per_second(fn, count: int, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile
    started = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn())
    return count * repeats / (time.perf_counter() - started)


def paired_ratios(rng: np.random.Generator, batch: int, rounds: int) -> dict[str, tuple[float, float, float]]:
    """The targets' ratios, K = 8 and K = 4 under a 16-line budget against K = 4 without one: the three run in
    turn, one call each per round, and each round gives a ratio (pairing keeps a drifting machine's speed out
    of it). Returns the median, min and max per ratio."""
    k4, k8 = instances(rng, batch), instances(rng, batch, num_positions=8)
    calls = {"base": lambda: solve_batch(*k4), "batched K=8 cost   budget none": lambda: solve_batch(*k8),
             "batched K=4 cost   budget 16.0": lambda: solve_batch(*k4, heights=HEIGHTS, space_budget=16.0)}
    seconds = {name: [] for name in calls}
    for fn in calls.values():
        jax.block_until_ready(fn())  # compile
    for _ in range(rounds):
        for name, fn in calls.items():
            started = time.perf_counter()
            jax.block_until_ready(fn())
            seconds[name].append(time.perf_counter() - started)
    base = np.asarray(seconds.pop("base"))
    ratios = {name: base / np.asarray(taken) for name, taken in seconds.items()}
    return {name: (float(np.median(r)), float(r.min()), float(r.max())) for name, r in ratios.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30, help="rounds of the paired target ratios")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    for num_positions in (4, 8):
        ctr, bid, reserve = instances(rng, args.batch, num_positions=num_positions)
        for mode in RESERVE_MODES:
            for budget in (None, 13.0, 16.0):
                options = dict(mode=mode, space_budget=budget, heights=HEIGHTS if budget else None)
                rate = per_second(lambda: solve_batch(ctr, bid, reserve, **options), args.batch, args.repeats)
                name = f"batched K={num_positions} {mode:6s} budget {budget if budget else 'none':>4}"
                results[name] = rate
                print(f"{name}: {rate:>10,.0f} auctions/s", flush=True)
    ctr, bid, reserve = instances(rng, args.batch)
    for mechanism in ("gsp", "first_price"):
        for budget in (None, 16.0):
            options = dict(space_budget=budget, heights=HEIGHTS if budget else None, mechanism=mechanism)
            rate = per_second(lambda: solve_batch(ctr, bid, reserve, **options), args.batch, args.repeats)
            name = f"batched K=4 {mechanism} budget {budget if budget else 'none':>4}"
            results[name] = rate
            print(f"{name}: {rate:>10,.0f} auctions/s", flush=True)
    ctr, bid, reserve = instances(rng, args.batch, num_positions=7)  # two devices' pages: 7 and 3 positions
    pages = np.where(rng.random(args.batch) < 0.55, 3, 7).astype(np.int32)
    for name, page in (("batched K=7 cost   budget none", None), ("batched K=7 pages of 7 and 3", pages)):
        results[name] = per_second(lambda: solve_batch(ctr, bid, reserve, None, page), args.batch, args.repeats)
        print(f"{name}: {results[name]:>10,.0f} auctions/s", flush=True)
    for name, (median, low, high) in paired_ratios(rng, args.batch, args.rounds).items():
        results[f"{name} / K=4 unbudgeted (median of {args.rounds} rounds)"] = median
        print(f"{name} / K=4 unbudgeted: median {median:.3f} ({low:.3f}–{high:.3f}) over {args.rounds} rounds "
              f"(target ≥ 0.2)")
    small_ctr, small_bid, small_reserve = instances(rng, 20, num_ads=6)
    cases = [from_dense(small_ctr[q], small_bid[q], small_reserve[q], heights=np.asarray(HEIGHTS), space_budget=13.0)
             for q in range(20)]
    started = time.perf_counter()
    for case in cases:
        solve(case, "cost", exact=False)
    results["reference, 6 ads × 3 treatments × 4 positions, budget 13"] = len(cases) / (time.perf_counter() - started)
    print(f"reference solver (6 ads × 3 treatments × 4 positions, budget 13): "
          f"{results['reference, 6 ads × 3 treatments × 4 positions, budget 13']:,.1f} auctions/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
