"""One auction instance in the schema of shared/auction_cases (ads with per-ad treatments, ragged CTRs), validated.

The schema calls an ad's treatments its `formats` (and an allocation's treatment its `format`); those JSON keys
stay, and everything in code says treatment.

This is the exchange schema of the reference solver, the `adfloor auction` command and the tests;
the batched solver takes dense arrays instead (`to_dense`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


class InstanceError(ValueError):
    """An invalid auction instance; the message is one line naming the problem."""


@dataclass(frozen=True)
class AuctionInstance:
    """bids, values, reserves: per ad (per click); heights[ad][treatment]; ctr[ad][treatment][position] (per-ad treatment indices)."""

    num_positions: int
    space_budget: float | None
    bids: tuple[float, ...]
    values: tuple[float, ...]
    reserves: tuple[float, ...]
    treatment_names: tuple[tuple[str, ...], ...]
    heights: tuple[tuple[float, ...], ...]
    ctr: tuple[tuple[tuple[float, ...], ...], ...]

    @property
    def num_ads(self) -> int:
        return len(self.bids)

    def to_dense(self) -> dict[str, np.ndarray]:
        """Dense arrays for the batched solver (batch of one), each ad's treatments unified into one treatment axis.

        Treatments are the distinct (name, height) pairs across ads, in the order they first appear (ads that list
        the same treatments in the same order keep their own indices, so the batched solver's ties between an
        ad's equally good treatments go where the reference's do); an ad lacking one gets available = False there. Returns ctr float32[1, N, T, K], bid/reserve float32[1, N],
        available bool[1, N, T], heights float32[T] and the (ad, treatment) → the ad's own treatment index map.
        """
        kinds = list(dict.fromkeys((name, h) for names, hs in zip(self.treatment_names, self.heights)
                                   for name, h in zip(names, hs)))
        index = {k: t for t, k in enumerate(kinds)}
        n, t, k = self.num_ads, len(kinds), self.num_positions
        ctr = np.zeros((1, n, t, k), np.float32)
        available = np.zeros((1, n, t), bool)
        own_index = np.full((n, t), -1, np.int32)
        for ad in range(n):
            for f, (name, h) in enumerate(zip(self.treatment_names[ad], self.heights[ad])):
                ctr[0, ad, index[(name, h)]] = self.ctr[ad][f]
                available[0, ad, index[(name, h)]] = True
                own_index[ad, index[(name, h)]] = f
        return {
            "ctr": ctr,
            "bid": np.asarray([self.bids], np.float32),
            "reserve": np.asarray([self.reserves], np.float32),
            "available": available,
            "heights": np.asarray([h for _, h in kinds], np.float32),
            "own_index": own_index,
        }


def _number(value: Any, where: str, *, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InstanceError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise InstanceError(f"{where}: must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise InstanceError(f"{where}: must be ≥ {minimum:g}, got {value!r}")
    return float(value)


def _field(mapping: dict, key: str, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise InstanceError(f"{where}: expected an object")
    if key not in mapping:
        raise InstanceError(f"{where}.{key}: missing")
    return mapping[key]


def from_json(data: Any) -> AuctionInstance:
    """Validate an instance (or a case holding one under `input`) and build it; InstanceError on anything off."""
    if isinstance(data, dict) and "input" in data:
        data = data["input"]
    num_positions = _field(data, "num_positions", "instance")
    if isinstance(num_positions, bool) or not isinstance(num_positions, int) or num_positions < 1:
        raise InstanceError(f"instance.num_positions: expected an integer ≥ 1, got {num_positions!r}")
    budget = data.get("space_budget")
    budget = None if budget is None else _number(budget, "instance.space_budget")
    ads = _field(data, "ads", "instance")
    if not isinstance(ads, list) or not ads:
        raise InstanceError("instance.ads: expected a non-empty list")
    ctr = _field(data, "ctr", "instance")
    if not isinstance(ctr, list) or len(ctr) != len(ads):
        raise InstanceError(f"instance.ctr: expected one entry per ad ({len(ads)}), got {len(ctr) if isinstance(ctr, list) else ctr!r}")
    bids, values, reserves, names, heights, ctrs = [], [], [], [], [], []
    for i, ad in enumerate(ads):
        where = f"instance.ads[{i}]"
        bid = _number(_field(ad, "bid", where), f"{where}.bid")
        bids.append(bid)
        values.append(_number(ad.get("value", bid), f"{where}.value"))
        reserves.append(_number(ad.get("reserve_per_click", 0.0), f"{where}.reserve_per_click"))
        formats = _field(ad, "formats", where)
        if not isinstance(formats, list) or not formats:
            raise InstanceError(f"{where}.formats: expected a non-empty list")
        names.append(tuple(str(f.get("name", f"format{j}")) if isinstance(f, dict) else "" for j, f in enumerate(formats)))
        heights.append(tuple(_number(_field(f, "height", f"{where}.formats[{j}]"), f"{where}.formats[{j}].height")
                             for j, f in enumerate(formats)))
        rows = ctr[i]
        if not isinstance(rows, list) or len(rows) != len(formats):
            raise InstanceError(f"instance.ctr[{i}]: expected {len(formats)} rows (one per treatment)")
        matrix = []
        for j, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != num_positions:
                raise InstanceError(f"instance.ctr[{i}][{j}]: expected {num_positions} numbers (one per position)")
            matrix.append(tuple(_number(x, f"instance.ctr[{i}][{j}][{p}]") for p, x in enumerate(row)))
        ctrs.append(tuple(matrix))
    return AuctionInstance(num_positions, budget, tuple(bids), tuple(values), tuple(reserves), tuple(names),
                           tuple(heights), tuple(ctrs))


def to_json(instance: AuctionInstance) -> dict:
    """The instance in the schema `from_json` and `adfloor auction` read (positions and formats count from 0)."""
    return {
        "num_positions": instance.num_positions, "space_budget": instance.space_budget,
        "ads": [{"bid": instance.bids[a], "value": instance.values[a], "reserve_per_click": instance.reserves[a],
                 "formats": [{"format": j, "name": name, "height": height}
                             for j, (name, height) in enumerate(zip(instance.treatment_names[a], instance.heights[a]))]}
                for a in range(instance.num_ads)],
        "ctr": [[list(row) for row in treatments] for treatments in instance.ctr],
    }


def from_dense(ctr: np.ndarray, bid: np.ndarray, reserve: np.ndarray, available: np.ndarray | None = None,
               heights: np.ndarray | None = None, space_budget: float | None = None,
               treatment_names: tuple[str, ...] | None = None) -> AuctionInstance:
    """One query of the batched solver's arrays (ctr[N, T, K], bid[N], reserve[N], available[N, T]) as an instance.

    Each ad's treatments are those available to it, in catalogue order.
    """
    num_ads, num_treatments, num_positions = ctr.shape
    available = np.ones((num_ads, num_treatments), bool) if available is None else np.asarray(available, bool)
    heights = np.ones(num_treatments) if heights is None else np.asarray(heights)
    names = treatment_names or tuple(f"t{t}" for t in range(num_treatments))
    formats = [[t for t in range(num_treatments) if available[a, t]] for a in range(num_ads)]
    return AuctionInstance(
        num_positions, space_budget, tuple(map(float, bid)), tuple(map(float, bid)), tuple(map(float, reserve)),
        tuple(tuple(names[t] for t in f) for f in formats), tuple(tuple(float(heights[t]) for t in f) for f in formats),
        tuple(tuple(tuple(float(x) for x in ctr[a, t]) for t in f) for a, f in enumerate(formats)),
    )


def separable(bids: list[float], reserves: list[float], quality: list[float], position_effects: list[float],
              treatments: list[tuple[str, float, float]], available: list[list[bool]] | None = None,
              space_budget: float | None = None) -> AuctionInstance:
    """An instance with ctr = quality[ad] × position_effects[p] × multiplier[treatment] (the teaching setting).

    treatments: (name, height, examination multiplier); available[ad][t] says which treatments each ad has
    (default: all). Raises InstanceError on inconsistent lengths.
    """
    n = len(bids)
    if not (len(reserves) == len(quality) == n) or n == 0:
        raise InstanceError(f"separable: bids, reserves and quality need the same non-zero length, got "
                            f"{len(bids)}, {len(reserves)}, {len(quality)}")
    available = available or [[True] * len(treatments) for _ in range(n)]
    ctr = [[[quality[a] * m * theta for theta in position_effects] for (_, _, m), ok in zip(treatments, available[a]) if ok]
           for a in range(n)]
    formats = [[{"format": j, "name": name, "height": h} for j, (name, h, _) in enumerate(t for t, ok in zip(treatments, available[a]) if ok)]
               for a in range(n)]
    return from_json({
        "num_positions": len(position_effects), "space_budget": space_budget, "ctr": ctr,
        "ads": [{"bid": bids[a], "reserve_per_click": reserves[a], "formats": formats[a]} for a in range(n)],
    })
