"""Lesson 1: one advertiser's utility as its bid varies, under VCG and GSP; and revenue as the reserve varies.

    python docs/lessons/scripts/truthfulness.py [--out docs/lessons/img/lesson1.png]

Three ads, two slots, CTR = quality × position effect (text format only). Ad 0 values a click at 1.0.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from auction.instance import separable  # noqa: E402
from auction.reference import gsp, solve  # noqa: E402

VALUE = 1.0
OTHER_BIDS = [0.8, 0.5]
QUALITY = [0.10, 0.12, 0.08]
POSITION_EFFECTS = [1.0, 0.6]
TEXT = [("text", 1.0, 1.0)]


def utility_of_ad0(bid: float, mechanism: str) -> float:
    instance = separable([bid, *OTHER_BIDS], [0.0] * 3, QUALITY, POSITION_EFFECTS, TEXT)
    outcome = solve(instance) if mechanism == "vcg" else gsp(instance)
    shown = {ad: ctr for (ad, _), ctr in zip(outcome.slate.picks, outcome.slate.ctrs)}
    return VALUE * shown.get(0, 0.0) - outcome.payments.get(0, 0.0)


def revenue(reserve: float) -> float:
    instance = separable([VALUE, *OTHER_BIDS], [reserve] * 3, QUALITY, POSITION_EFFECTS, TEXT)
    return sum(solve(instance, mode="filter").payments.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/lessons/img/lesson1.png")
    args = parser.parse_args()
    bids = np.round(np.linspace(0.05, 1.6, 32), 3)
    vcg_utility = [utility_of_ad0(b, "vcg") for b in bids]
    gsp_utility = [utility_of_ad0(b, "gsp") for b in bids]
    reserves = np.round(np.linspace(0.0, 1.0, 21), 3)
    revenues = [revenue(r) for r in reserves]
    print(f"best bid under VCG: {bids[int(np.argmax(vcg_utility))]:.3f} (value {VALUE}); "
          f"utility at the true value {utility_of_ad0(VALUE, 'vcg'):.4f}")
    print(f"best bid under GSP: {bids[int(np.argmax(gsp_utility))]:.3f}; utility {max(gsp_utility):.4f} vs "
          f"{utility_of_ad0(VALUE, 'gsp'):.4f} when bidding the value")
    print(f"revenue-maximising reserve (filter semantics): {reserves[int(np.argmax(revenues))]:.2f}, "
          f"revenue {max(revenues):.4f} vs {revenues[0]:.4f} with no reserve")
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(bids, vcg_utility, label="VCG")
    left.plot(bids, gsp_utility, label="GSP")
    left.axvline(VALUE, color="grey", linestyle=":", label="true value")
    left.set(xlabel="ad 0's bid per click", ylabel="ad 0's utility per page view", title="Bidding the value is best under VCG")
    left.legend()
    right.plot(reserves, revenues)
    right.set(xlabel="reserve per click (filter)", ylabel="VCG revenue per page view", title="Reserves raise revenue, then lose ads")
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
