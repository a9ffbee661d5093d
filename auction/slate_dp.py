"""Exact VCG by dynamic programming over the candidates, with the page height budget: no slate is enumerated.

Values. Each (ad, group) has a value at each position: with a height budget a group is a treatment (its
height is the treatment's, the same for every ad); without one there is one group, the ad's best treatment
at that position (ties to the lower treatment), of height 0. Ineligible pairs are worth −inf.

States. After the first n candidates, `best[P, h]` is the best objective of any placement of those ads into
positions ⊆ P (a bit set over the K positions) with height ≤ h (whole lines; H + 1 levels, H the budget).
One step adds a candidate: it stays out, or takes a free position k of P with a group of height d from
`best[P − k, h − d]`. Both "⊆" and "≤" make `best` monotone, so the complement of a state is the rest of
the page: the best objective without candidate i is max over (P, h) of prefix_i[P, h] + suffix_i[~P, H − h],
where prefix_i holds candidates < i and suffix_i those > i — one DP forward, one backward, and a sum of two
reversed arrays per shown ad (~P is the reversed index, H − h the reversed level). The filter semantics'
threshold payment, the best welfare with ad i bidding its reserve, adds ad i at its lowered value to
prefix_i with one more step before the same sum.

Why placements with gaps do no harm. The states allow positions to be skipped, the reference solver's
slates do not. CTRs are non-increasing along positions (`auction.vcg` applies the rule), so moving an ad
up into a gap never lowers the objective: every optimum value is reached by a gap-free placement, and the
tie-break (`auction.slate_ties`) prefers it (the moved ad's contribution moves to an earlier position, or it contributed 0
and fewer ads win).

Reading the optimum. The prefix states are read back from the last candidate to the first (`trace_back`): with
the positions still free and the height left (at first all of them), candidate n stays out if prefix_n there
is the best, or takes the (position, group) whose value plus prefix_n on what it leaves is; the argmaxes
recover the optimum exactly, since the scan computed each state from the same sums. No choices are recorded
in the forward pass. A second choice within the rounding tolerance flags the query as tied; `auction.slate_ties`
holds the tolerance and the lexicographic DP that re-solves it.

Cost per query: 2·N·K·G·2^K·(H+1) steps, forward and backward (the shortlist's N = K + 4: ~8·4·1·16 without a budget
at K = 4), and N·(1 + K·G) for the trace-back; budget-free pages with
K > 3 (cost semantics, VCG) go to the assignment solver, which is polynomial in K, and come here only for ties.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from auction.reserves import ReserveMode
from auction.slate_ties import sort_key_placement, tie_tolerance

MAX_POSITIONS = 8  # 2^K states per height level
MAX_HEIGHT_LEVELS = 512  # page budget in whole lines + 1


class Groups(NamedTuple):
    """Per query b, candidate n, group g, position k: value float32 (−inf = not placeable), treatment int32,
    ctr float32 (after the monotone rule); heights: the groups' heights (static); levels: H + 1."""

    value: jax.Array
    treatment: jax.Array
    ctr: jax.Array
    heights: tuple[int, ...]
    levels: int


def height_levels(heights: tuple[float, ...] | None, space_budget: float | None,
                  num_positions: int) -> tuple[tuple[int, ...], int]:
    """The groups' heights as whole lines and the number of height levels the states need (budget + 1, or 1).

    Raises ValueError naming the field for heights or budgets that are negative, NaN or not whole lines.
    """
    if space_budget is None:
        return (0,), 1
    if not heights:
        raise ValueError("heights: need one height per treatment with a space budget")
    if not (space_budget >= 0 and math.isfinite(space_budget)):
        raise ValueError(f"space_budget: must be a finite number ≥ 0, got {space_budget!r}")
    lines = []
    for t, h in enumerate(heights):
        if not (h >= 0 and math.isfinite(h)) or h != round(h):
            raise ValueError(f"heights[{t}]: must be a whole number of lines ≥ 0, got {h!r}")
        lines.append(int(round(h)))
    budget = int(math.floor(space_budget + 1e-9))
    levels = min(budget, num_positions * max(lines)) + 1  # more height than K tallest ads is never needed
    if levels > MAX_HEIGHT_LEVELS:
        raise ValueError(f"space_budget: at most {MAX_HEIGHT_LEVELS - 1} lines, got {space_budget:g}")
    return tuple(lines), levels


def groups(ctr: jax.Array, weight: jax.Array, usable: jax.Array, budgeted: bool) -> tuple[jax.Array, jax.Array]:
    """Values float32[B, N, G, K] (weight × ctr, −inf where not usable: usable bool[B, N, T, K]) and the treatment
    of each group."""
    value = jnp.where(usable, weight[:, :, None, None] * ctr, -jnp.inf)
    num_treatments = ctr.shape[2]
    if budgeted:
        treatment = jnp.broadcast_to(jnp.arange(num_treatments, dtype=jnp.int32)[None, None, :, None], value.shape)
        return value, treatment
    best = jnp.max(value, axis=2, keepdims=True)
    index = jnp.arange(num_treatments, dtype=jnp.int32)[None, None, :, None]
    treatment = jnp.min(jnp.where(value == best, index, num_treatments), axis=2, keepdims=True)
    return best, jnp.minimum(treatment, num_treatments - 1)


def _without(num_positions: int, k: int) -> np.ndarray:
    """For every position set P (a bit set), P − k: a static gather index."""
    return np.arange(1 << num_positions) & ~(1 << k)


def _holds(num_positions: int, k: int) -> np.ndarray:
    """bool[2^K]: which position sets hold position k."""
    return (np.arange(1 << num_positions) >> k) & 1 == 1


def _padding(heights: tuple[int, ...], levels: int) -> int:
    """Leading −inf levels the states carry in the scan, so that "h − lines" is a slice: the tallest group that fits."""
    return max([lines for lines in heights if lines < levels], default=0)


def _pad(best: jax.Array, pad: int) -> jax.Array:
    return jnp.concatenate([jnp.full(best.shape[:-1] + (pad,), -jnp.inf, best.dtype), best], axis=-1)


def _padded_step(best: jax.Array, value: jax.Array, heights: tuple[int, ...], pad: int) -> jax.Array:
    """`value_step` on states carrying `pad` leading −inf levels (best float[..., 2^K, pad + H+1]; the result is
    unpadded): each position's sources are one gather over the sets and one slice over the levels per group."""
    levels = best.shape[-1] - pad
    num_positions = value.shape[-1]
    new_best = best[..., pad:]
    for k in range(num_positions):
        source = jnp.take(best, _without(num_positions, k), axis=-2)
        holds = _holds(num_positions, k)[:, None]
        for g, lines in enumerate(heights):
            if lines < levels:  # a taller group never fits
                gain = source[..., pad - lines: pad - lines + levels] + value[..., g, k][..., None, None]
                new_best = jnp.maximum(new_best, jnp.where(holds, gain, -jnp.inf))
    return new_best


def value_step(best: jax.Array, value: jax.Array, heights: tuple[int, ...]) -> jax.Array:
    """Add one candidate (value float[..., G, K]) to states best float[..., 2^K, H+1]: it stays out or takes a free
    position with one of its groups."""
    pad = _padding(heights, best.shape[-1])
    return _padded_step(_pad(best, pad), value, heights, pad)


class Placement(NamedTuple):
    """The chosen slate per query: ad int32[B, K] (−1 empty), group int32[B, K], tied bool[B]."""

    ad: jax.Array
    group: jax.Array
    tied: jax.Array


def _scan_states(value: jax.Array, heights: tuple[int, ...], levels: int, reverse: bool) -> jax.Array:
    """The states around each candidate, float[N, B, 2^K, H+1]: entry n holds candidates < n, or with `reverse`
    candidates > n."""
    batch, _, _, num_positions = value.shape
    pad = _padding(heights, levels)
    start = _pad(jnp.zeros((batch, 1 << num_positions, levels), value.dtype), pad)

    def step(padded, ad_value):  # the carry's own padding is reused: a fresh one makes XLA copy (~2.5× slower)
        return jnp.concatenate([padded[..., :pad], _padded_step(padded, ad_value, heights, pad)], axis=-1), padded

    _, states = jax.lax.scan(step, start, jnp.moveaxis(value, 1, 0), reverse=reverse)
    return states[..., pad:]


def trace_back(prefix: jax.Array, value: jax.Array, heights: tuple[int, ...], tolerance: jax.Array) -> Placement:
    """The optimum, read back from the prefix states (float[N, B, 2^K, H+1], `_scan_states`) from the last candidate
    to the first: each one stays out or takes the (position, group) whose value plus the state it leaves is the
    largest (ties to "out", then the lower position and group). A second choice within `tolerance` [B] of the
    best at some step is another placement that close to the optimum: the query is `tied` (`auction.vcg`
    re-solves it)."""
    num_ads, batch, masks, levels = prefix.shape
    num_groups, num_positions = value.shape[2:]
    position = jnp.asarray(np.repeat(np.arange(num_positions), num_groups), jnp.int32)  # choice 1 + k·G + g
    lines = jnp.asarray(np.minimum(np.tile(np.asarray(heights), num_positions), levels), jnp.int32)  # ≥ levels: never fits
    positions = jnp.arange(num_positions)

    def step(carry, inputs):
        sets, level, ad, group, tied = carry
        n, states, ad_value = inputs  # the candidate, its prefix states [B, 2^K, H+1] and values [B, G, K]
        fits = ((sets >> position) & 1 == 1) & (level >= lines)  # [B, K·G]
        allowed = jnp.concatenate([jnp.ones_like(fits[:, :1]), fits], axis=1)  # "out" first
        index = jnp.concatenate([sets * levels + level, (sets & ~(1 << position)) * levels + level - lines], axis=1)
        gain = jnp.concatenate([jnp.zeros((batch, 1), value.dtype), jnp.swapaxes(ad_value, 1, 2).reshape(batch, -1)], axis=1)
        options = jnp.take_along_axis(states.reshape(batch, -1), jnp.where(allowed, index, 0), axis=1) + gain
        options = jnp.where(allowed, options, -jnp.inf)
        best = jnp.argmax(options, axis=1)
        top = jnp.max(options, axis=1)
        second = jnp.max(jnp.where(jnp.arange(options.shape[1]) == best[:, None], -jnp.inf, options), axis=1)
        tied = tied | (second >= top - tolerance)
        placed = (best > 0)[:, None]
        chosen = jnp.maximum(best - 1, 0)
        taken, used = position[chosen][:, None], lines[chosen][:, None]
        at = placed & (positions == taken)  # [B, K]
        ad = jnp.where(at, n, ad)
        group = jnp.where(at, (chosen % num_groups)[:, None].astype(jnp.int32), group)
        sets = jnp.where(placed, sets & ~(1 << taken), sets)
        level = jnp.where(placed, level - used, level)
        return (sets, level, ad, group, tied), None

    # the positions still free and the height left (at first all of them), then the slate read so far
    start = (jnp.full((batch, 1), masks - 1, jnp.int32), jnp.full((batch, 1), levels - 1, jnp.int32),
             jnp.full((batch, num_positions), -1, jnp.int32), jnp.zeros((batch, num_positions), jnp.int32),
             jnp.zeros(batch, bool))
    inputs = (jnp.arange(num_ads, dtype=jnp.int32), prefix, jnp.moveaxis(value, 1, 0))
    (_, _, ad, group, tied), _ = jax.lax.scan(step, start, inputs, reverse=True)
    return Placement(ad, group, tied)


def _complement_best(prefix: jax.Array, suffix: jax.Array) -> jax.Array:
    """max over (P, h) of prefix[..., P, h] + suffix[..., ~P, H − h]: the best page from two disjoint ad sets."""
    return jnp.max(prefix + suffix[..., ::-1, ::-1], axis=(-2, -1))


def _forced_rest(prefix: jax.Array, suffix: jax.Array, k: int, lines: int) -> jax.Array:
    """The others' best objective with the ad fixed at position k in a group of `lines` height: max over the
    states (A ∌ k, h) of prefix[A, h] + suffix[~A − k, H − lines − h] (prefix, suffix [..., 2^K, H+1])."""
    levels = prefix.shape[-1]
    if lines >= levels:
        return jnp.full(prefix.shape[:-2], -jnp.inf, prefix.dtype)
    lead = prefix.shape[:-2]
    masks = prefix.shape[-2]

    def without_k(x):
        split = x.reshape(*lead, masks >> (k + 1), 2, 1 << k, levels)
        return jnp.take(split, 0, axis=len(lead) + 1).reshape(*lead, masks >> 1, levels)[..., : levels - lines]

    return jnp.max(without_k(prefix) + without_k(suffix)[..., ::-1, ::-1], axis=(-2, -1))


def threshold_weight(own_prefix: jax.Array, own_suffix: jax.Array, option_ctr: jax.Array, own_ctr: jax.Array,
                     heights: tuple[int, ...]) -> jax.Array:
    """The smallest weight (bid − reserve, or bid) at which each shown ad still gets at least its clicks, others
    fixed: GSP's price generalised to treatments and budgets (`auction.reference._line_threshold`).

    Each placement u of the ad — absent (0 clicks, the others' best without it) or at (position, group) with
    option_ctr [..., K, G] (−inf = not placeable) — is a line rest_u + w·c_u in the ad's weight w. It keeps
    ≥ c* clicks iff some line with c ≥ c* is highest: w* = min over those of the max crossing with the rest.
    """
    num_positions = option_ctr.shape[-2]
    rest = jnp.stack([_forced_rest(own_prefix, own_suffix, k, lines) for k in range(num_positions)
                      for lines in heights], axis=-1)  # [..., K·G]
    clicks = option_ctr.reshape(option_ctr.shape[:-2] + (-1,))
    rest = jnp.where(jnp.isfinite(clicks), rest, -jnp.inf)
    clicks = jnp.where(jnp.isfinite(clicks), clicks, 0.0)
    rest = jnp.concatenate([_complement_best(own_prefix, own_suffix)[..., None], rest], axis=-1)  # absent first
    clicks = jnp.concatenate([jnp.zeros_like(clicks[..., :1]), clicks], axis=-1)
    upper = (clicks >= own_ctr[..., None]) & jnp.isfinite(rest)
    lower = (clicks < own_ctr[..., None]) & jnp.isfinite(rest)
    gap = clicks[..., :, None] - clicks[..., None, :]  # [..., u, l]
    crossing = (rest[..., None, :] - rest[..., :, None]) / jnp.where(gap > 0, gap, 1.0)
    crossing = jnp.where(lower[..., None, :], crossing, -jnp.inf)
    return jnp.min(jnp.where(upper, jnp.max(crossing, axis=-1), jnp.inf), axis=-1)


@functools.partial(jax.jit, static_argnames=("heights", "levels", "mode", "break_ties", "thresholds"))
def dp_vcg(ctr: jax.Array, bid: jax.Array, reserve: jax.Array, usable: jax.Array, *, heights: tuple[int, ...],
           levels: int, mode: ReserveMode, break_ties: bool, thresholds: bool = False):
    """VCG for a batch by the DP (module docstring). ctr float32[B, N, T, K] (monotone); bid, reserve float32[B, N];
    usable bool[B, N, T, K] (False: the ad may not take the treatment there); heights: the treatments' lines (or (0,) without a budget); levels: H + 1.

    Returns (ad, treatment, counterfactual, tied, threshold): the counterfactual per position is the best
    objective without the ad (cost) or with it bidding its reserve (filter); with `thresholds`, the
    threshold weight of each shown ad (`threshold_weight`), else zeros.
    """
    batch, num_ads, num_treatments, num_positions = ctr.shape
    budgeted = levels > 1 or heights != (0,)
    weight = bid - reserve if mode == "cost" else bid
    value, treatment = groups(ctr, weight, usable, budgeted)
    prefix = _scan_states(value, heights, levels, reverse=False)
    suffix = _scan_states(value, heights, levels, reverse=True)
    ad, group, tied = trace_back(prefix, value, heights, tie_tolerance(value))
    if break_ties:
        ad, shown_treatment = sort_key_placement(value, treatment, heights, levels, num_treatments)
    else:
        rows = jnp.arange(batch)[:, None]
        positions = jnp.arange(num_positions)[None, :]
        shown_treatment = jnp.where(ad >= 0, treatment[rows, jnp.maximum(ad, 0), group, positions], 0)
    safe_ad = jnp.maximum(ad, 0)
    rows = jnp.arange(batch)[:, None]
    own_prefix = jnp.moveaxis(prefix, 0, 1)[rows, safe_ad]  # [B, K, 2^K, H+1]: candidates before the shown ad
    own_suffix = jnp.moveaxis(suffix, 0, 1)[rows, safe_ad]  # candidates after it
    threshold = jnp.zeros(ad.shape, ctr.dtype)
    if thresholds:
        positions = jnp.arange(num_positions)[None, :]
        own_treatment_ctr = ctr[rows, safe_ad]  # [B, K(shown), T, K']
        own_group_treatment = treatment[rows, safe_ad]  # [B, K, G, K']
        option_ctr = jnp.take_along_axis(own_treatment_ctr, own_group_treatment, axis=2)  # [B, K, G, K']
        option_ctr = jnp.where(jnp.isfinite(value[rows, safe_ad]), option_ctr, -jnp.inf)
        own_ctr = ctr[rows, safe_ad, shown_treatment, positions]
        threshold = threshold_weight(own_prefix, own_suffix, jnp.swapaxes(option_ctr, -1, -2), own_ctr, heights)
    if mode == "filter":
        lowered = jnp.where(jnp.isfinite(value), (reserve[:, :, None, None] * jnp.where(usable, ctr, 0.0)), -jnp.inf)
        if not budgeted:
            lowered = jnp.max(lowered, axis=2, keepdims=True)
        own_prefix = value_step(own_prefix, lowered[rows, safe_ad], heights)
    counterfactual = _complement_best(own_prefix, own_suffix)
    return ad, shown_treatment, counterfactual, tied, threshold
