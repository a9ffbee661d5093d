"""Exact batched VCG over (ad, treatment, position) with the null set and per-click reserves (cost semantics).

Reserve as a per-click seller cost: the allocation maximises Σ (bid − reserve)·ctr over feasible slates
(distinct ads filling positions 0..m−1, m ≤ K; showing nothing is feasible), and an ad pays
reserve·c + W'₋ᵢ − (W' − (bid − reserve)·c) (Clarke pivot on the adjusted objective).

Why enumeration is exact: with no height budget each (ad, position) takes its best treatment, and the
optimum — with or without any one ad removed — uses at each position one of the top K+1 ads for that
position (if the assigned ad were not, one of those K+1 would be free and at least as good). So all
slates over the top-(K+1) lists, (K+1)^K of them at most, contain every optimum and every
counterfactual optimum the payments need. Slate objectives and the no-ad-twice check are 0/1
matmuls; "slate contains shown ad i" is a bit-set test over the K·C list entries.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class AuctionOutcome(NamedTuple):
    """Per query b and position k (−1 / 0 where the position is empty).

    ad: int32[B, K] candidate index shown at position k; treatment: int32[B, K];
    ctr: float32[B, K] the auction's CTR of the shown ad; payment: float32[B, K] expected payment
    per page view; price_per_click: float32[B, K]; objective: float32[B] Σ (bid − reserve)·ctr.
    """

    ad: jax.Array
    treatment: jax.Array
    ctr: jax.Array
    payment: jax.Array
    price_per_click: jax.Array
    objective: jax.Array


@functools.lru_cache(maxsize=None)
def _slate_tables(num_positions: int, choices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Slate enumeration as 0/1 matrices, so slate sums are matmuls.

    Returns table int32[M, K] (choice per position, −1 = empty; shortest slates first so exact ties
    prefer fewer ads), member float32[K·C, M] (slate m picks choice c at position p), and for every
    pair of positions p < q with choices (c, d): pair_index int32[P, 2] into K·C and pair_member
    float32[P, M] (slate m picks both).
    """
    rows = []
    for length in range(num_positions + 1):
        for combo in itertools.product(range(choices), repeat=length):
            rows.append(list(combo) + [-1] * (num_positions - length))
    table = np.asarray(rows, dtype=np.int32)
    member = np.zeros((num_positions * choices, len(rows)), dtype=np.float32)
    for m, row in enumerate(rows):
        for p, c in enumerate(row):
            if c >= 0:
                member[p * choices + c, m] = 1.0
    pairs = [
        (p * choices + c, q * choices + d)
        for p, q in itertools.combinations(range(num_positions), 2)
        for c in range(choices)
        for d in range(choices)
    ]
    pair_index = np.asarray(pairs, dtype=np.int32).reshape(-1, 2)
    pair_member = member[pair_index[:, 0]] * member[pair_index[:, 1]]
    return table, member, pair_index, pair_member


@functools.lru_cache(maxsize=None)
def _slate_bits(num_positions: int, choices: int) -> np.ndarray:
    """int32[M]: bit p·C + c is set when slate m picks choice c at position p (needs K·C ≤ 31)."""
    member = _slate_tables(num_positions, choices)[1]
    if member.shape[0] > 31:
        raise ValueError(f"num_positions: {num_positions} positions need {member.shape[0]} bits; at most 5 positions")
    return (member.T.astype(np.int64) << np.arange(member.shape[0])).sum(axis=1).astype(np.int32)


def _first_index(mask: jax.Array, axis: int = -1) -> jax.Array:
    """Index of the first True along `axis` (a min-reduce: much faster than argmax on XLA:CPU)."""
    size = mask.shape[axis]
    shape = [1] * mask.ndim
    shape[axis] = size
    index = jnp.arange(size, dtype=jnp.int32).reshape(shape)
    return jnp.min(jnp.where(mask, index, size), axis=axis)


def _top_k(x: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Largest k along the last axis, ties to the lower index (k rounds of max; faster than lax.top_k on CPU)."""
    index = jnp.arange(x.shape[-1], dtype=jnp.int32)
    values, indices = [], []
    for _ in range(k):
        top = jnp.max(x, axis=-1)
        at = _first_index(x == top[..., None])
        values.append(top)
        indices.append(at)
        x = jnp.where(index == at[..., None], -jnp.inf, x)
    return jnp.stack(values, axis=-1), jnp.stack(indices, axis=-1)


@jax.jit
def vcg_batch(ctr: jax.Array, bid: jax.Array, reserve: jax.Array) -> AuctionOutcome:
    """Run one VCG auction per query.

    ctr: float32[B, N, T, K] CTR of candidate n in treatment t at position k;
    bid, reserve: float32[B, N] per click (a candidate with bid ≤ reserve is ineligible; pad with bid 0).
    """
    batch, num_ads, _, num_positions = ctr.shape
    choices = min(num_positions + 1, num_ads)
    adjusted = (bid - reserve)[:, :, None, None] * ctr
    value = jnp.max(adjusted, axis=2)  # [B, N, K]
    best_treatment = _first_index(adjusted == value[:, :, None, :], axis=2)
    value = jnp.where((bid > reserve)[:, :, None], value, -jnp.inf)
    top_value, top_ad = _top_k(jnp.swapaxes(value, 1, 2), choices)  # [B, K, C]
    top_value = top_value.reshape(batch, -1)  # [B, K·C]
    top_ad = top_ad.reshape(batch, -1)

    table, member, pair_index, pair_member = (jnp.asarray(a) for a in _slate_tables(num_positions, choices))
    eligible = top_value > -jnp.inf
    welfare = jnp.where(eligible, top_value, 0.0) @ member  # [B, M]
    ineligible_picks = (~eligible).astype(jnp.float32) @ member
    repeats = (top_ad[:, pair_index[:, 0]] == top_ad[:, pair_index[:, 1]]).astype(jnp.float32) @ pair_member
    welfare = jnp.where((ineligible_picks == 0) & (repeats == 0), welfare, -jnp.inf)

    best_welfare = jnp.max(welfare, axis=1)
    best = _first_index(welfare == best_welfare[:, None])
    best_choice = table[best]  # [B, K]
    shown_slot = jnp.arange(num_positions) * choices + jnp.maximum(best_choice, 0)
    rows = jnp.arange(batch)
    shown_ad = jnp.where(best_choice >= 0, top_ad[rows[:, None], shown_slot], -1)
    shown_value = jnp.where(best_choice >= 0, top_value[rows[:, None], shown_slot], 0.0)

    # W'_{-i}: the best slate that does not contain shown ad i (the null slate always qualifies).
    # As bit sets over the K·C list entries: which entries hold shown ad i, which entries slate m uses.
    entry_bits = jnp.left_shift(jnp.int32(1), jnp.arange(top_ad.shape[1], dtype=jnp.int32))
    holds = jnp.sum(jnp.where(top_ad[:, None, :] == shown_ad[:, :, None], entry_bits, 0), axis=2)  # [B, K]
    slate_bits = jnp.asarray(_slate_bits(num_positions, choices))  # [M]
    contains = (slate_bits[None, None, :] & holds[:, :, None]) != 0
    without = jnp.max(jnp.where(contains, -jnp.inf, welfare[:, None, :]), axis=2)  # [B, K]
    positions = jnp.arange(num_positions)

    shown = shown_ad >= 0
    safe_ad = jnp.where(shown, shown_ad, 0)
    treatment = best_treatment[rows[:, None], safe_ad, positions[None, :]]
    own_ctr = ctr[rows[:, None], safe_ad, treatment, positions[None, :]]
    own_reserve = reserve[rows[:, None], safe_ad]
    # Others' objective in A*, summed directly (not W' − own) to avoid cancellation in float32.
    others = jnp.sum(jnp.where(~jnp.eye(num_positions, dtype=bool)[None], shown_value[:, None, :], 0.0), axis=2)
    payment = jnp.where(shown, own_reserve * own_ctr + without - others, 0.0)
    price = jnp.where(shown & (own_ctr > 0), payment / jnp.where(own_ctr > 0, own_ctr, 1.0), 0.0)
    return AuctionOutcome(
        ad=shown_ad.astype(jnp.int32),
        treatment=jnp.where(shown, treatment, 0).astype(jnp.int32),
        ctr=jnp.where(shown, own_ctr, 0.0),
        payment=payment,
        price_per_click=price,
        objective=best_welfare,
    )
