"""Batched GSP for separable single-treatment auctions: CTR(ad, position) = quality(ad) × position_effect(position).

Rank eligible ads (bid > reserve) by bid × quality; the k-th shown ad pays per click the smallest bid that
keeps its place, max(next eligible score / own quality, reserve). Same rules as `auction.reference.gsp`,
vectorised over queries with numpy (the comparison baseline for VCG; never on the loop's hot path).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GspOutcome(NamedTuple):
    """Per query b and position k (−1 / 0 where empty): ad int64[B, K] candidate index; ctr, price_per_click,
    payment (expected, per page view) float64[B, K]."""

    ad: np.ndarray
    ctr: np.ndarray
    price_per_click: np.ndarray
    payment: np.ndarray


def gsp_batch(quality: np.ndarray, bid: np.ndarray, reserve: np.ndarray, position_effects: np.ndarray) -> GspOutcome:
    """GSP over a batch: quality, bid, reserve float[B, N]; position_effects float[K], decreasing.

    Ties in score go to the lower candidate index (the reference's rule).
    """
    quality, bid, reserve = (np.asarray(x, np.float64) for x in (quality, bid, reserve))
    effects = np.asarray(position_effects, np.float64)
    batch, num_ads = bid.shape
    num_positions = effects.size
    eligible = bid > reserve
    score = np.where(eligible, bid * quality, -np.inf)
    order = np.argsort(-score, axis=1, kind="stable")  # stable: equal scores keep index order
    ranked_score = np.take_along_axis(score, order, axis=1)
    ranked_eligible = np.isfinite(ranked_score)
    width = min(num_positions, num_ads)
    shown = ranked_eligible[:, :width]
    next_score = np.zeros((batch, width))
    following = min(width + 1, num_ads)
    next_score[:, : following - 1] = np.where(ranked_eligible[:, 1:following], ranked_score[:, 1:following], 0.0)
    ad = np.where(shown, order[:, :width], -1)
    rows = np.arange(batch)[:, None]
    own_quality = np.where(shown, quality[rows, np.maximum(ad, 0)], 0.0)
    own_reserve = np.where(shown, reserve[rows, np.maximum(ad, 0)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        price = np.where(shown & (own_quality > 0), np.maximum(next_score / own_quality, own_reserve), own_reserve)
    price = np.where(shown, price, 0.0)
    ctr = own_quality * effects[:width]
    pad = ((0, 0), (0, num_positions - width))
    return GspOutcome(np.pad(ad, pad, constant_values=-1), np.pad(ctr, pad), np.pad(price, pad),
                      np.pad(price * ctr, pad))


def gsp_lowest_envy_free_bids(quality: np.ndarray, value: np.ndarray, position_effects: np.ndarray) -> np.ndarray:
    """Bids float64[B, N] of GSP's lowest locally envy-free equilibrium B* (Edelman, Ostrovsky & Schwarz 2007) in
    separable auctions without reserves, in score space: the ad ranked k + 1 bids so that its score equals the
    per-view VCG payment of rank k over that slot's position effect, s*_{k+1} = P_k / θ_k, with
    P_k = s_{k+1}(θ_k − θ_{k+1}) + P_{k+1} (scores s = value × quality, θ = 0 past the last slot); the top ad
    and the ads below the slots bid their value. GSP at B* reproduces VCG's allocation and payments.
    """
    quality, value = np.asarray(quality, np.float64), np.asarray(value, np.float64)
    effects = np.asarray(position_effects, np.float64)
    batch, num_ads = value.shape
    order = np.argsort(-(value * quality), axis=1, kind="stable")  # GSP's order: ties to the lower index
    score = np.take_along_axis(value * quality, order, axis=1)
    ranked_quality = np.take_along_axis(quality, order, axis=1)
    bids = np.take_along_axis(value, order, axis=1)
    slots = min(effects.size, num_ads - 1)  # ranks whose successor's bid sets their price
    theta = np.concatenate([effects, [0.0]])
    payment = np.zeros(batch)
    for k in range(min(effects.size, num_ads) - 1, -1, -1):  # P_k from the bottom slot up
        following = score[:, k + 1] if k + 1 < num_ads else np.zeros(batch)
        payment = following * (theta[k] - theta[k + 1]) + payment
        if k < slots:
            with np.errstate(divide="ignore", invalid="ignore"):
                bids[:, k + 1] = np.where(ranked_quality[:, k + 1] > 0, payment / theta[k] / ranked_quality[:, k + 1],
                                          bids[:, k + 1])
    result = np.empty_like(bids)
    result[np.arange(batch)[:, None], order] = bids
    return result
