"""Ties: which objectives count as equal (`tie_tolerance`, for the slate DP and the assignment solver alike), and
the slate DP (`auction.slate_dp`) that breaks them as the reference solver does.

Another placement within a rounding tolerance of the optimum (`tie_tolerance`, in the inputs' dtype:
float32, or float64 when `auction.vcg` re-solves near-ties) differs from it in some candidate's choice; at the
last such candidate both leave the same free positions and height to the ones before it, so the trace-back sees
a second choice as close to the best there: the query is flagged. The same values
summed in another order can round apart, and the reference, in exact arithmetic, sees a tie there. A unique
optimum is gap-free. When it is not unique, `break_ties` replaces each state's value with
the reference's whole sort key — objective, −(ads shown), the contribution at each position, −(ad,
treatment) at each position — compared lexicographically. That key is additive over disjoint positions and
ads, so the best key of a state extends to the best key of every larger state and the DP stays exact (the
objectives compare equal within the same tolerance; contributions are single products and compare exactly);
the final state's key holds the reference's slate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def tie_tolerance(value: jax.Array, num_positions: int | None = None) -> jax.Array:
    """[B]: objectives this close count as tied — K² ulps (of value's dtype) of the query's largest value, a bound
    on how far two orders of summing the same K values can round apart (value float[B, ..., K], −inf ignored;
    `num_positions`: K, when the last axis is not the positions)."""
    num_positions = value.shape[-1] if num_positions is None else num_positions
    largest = jnp.max(jnp.where(jnp.isfinite(value), jnp.abs(value), 0.0), axis=tuple(range(1, value.ndim)))
    return num_positions**2 * jnp.finfo(value.dtype).eps * largest


def _sources(key: jax.Array, k: jax.Array, lines: int) -> jax.Array:
    """For every state (P, h): key[P − k, h − lines] where position k ∈ P and h ≥ lines, else −inf
    (key [..., 2^K, H+1, F]: a sort key per state; k may be traced)."""
    masks, levels = key.shape[-3:-1]
    sets = jnp.arange(masks)
    without = jnp.take(key, sets & ~(1 << k), axis=-3)  # [..., 2^K, H+1, F]: the state lacking position k
    level_axis = without.ndim - 2
    if lines >= levels:
        without = jnp.full_like(without, -jnp.inf)
    elif lines:
        pad = jnp.full(without.shape[:level_axis] + (lines,) + without.shape[level_axis + 1:], -jnp.inf, without.dtype)
        kept = jax.lax.slice_in_dim(without, 0, levels - lines, axis=level_axis)
        without = jnp.concatenate([pad, kept], axis=level_axis)
    holds = ((sets >> k) & 1 == 1)[:, None, None]
    return jnp.where(holds, without, -jnp.inf)


def _beats(a: jax.Array, b: jax.Array, tolerance: jax.Array) -> jax.Array:
    """a's key is lexicographically larger than b's (keys float32[..., F], first field most significant); the
    objectives (field 0, sums whose float32 rounding depends on the order) count as equal within `tolerance`."""
    same_objective = jnp.abs(a[..., 0] - b[..., 0]) <= tolerance
    equal = (a[..., 1:] == b[..., 1:]).astype(jnp.int32)
    before_equal = jnp.concatenate([jnp.ones_like(equal[..., :1]), jnp.cumprod(equal, axis=-1)[..., :-1]], axis=-1)
    later = jnp.any((before_equal == 1) & (a[..., 1:] > b[..., 1:]), axis=-1)
    return jnp.where(same_objective, later, a[..., 0] > b[..., 0])


def sort_key_step(key: jax.Array, value: jax.Array, pick: jax.Array, heights: tuple[int, ...],
                  tolerance: jax.Array) -> jax.Array:
    """Add one candidate to states holding the reference's sort key key[..., 2^K, H+1, 2 + 2K]: objective,
    −(ads shown), contribution by position, −(1 + ad·T + treatment) by position (0 = empty). value and pick
    are float32[..., G, K]."""
    num_positions = value.shape[-1]
    fields = key.shape[-1]

    def position(k, best):
        for g, lines in enumerate(heights):
            v = jnp.take(value[..., g, :], k, axis=-1)
            p = jnp.take(pick[..., g, :], k, axis=-1)
            delta = jnp.zeros(v.shape + (fields,), key.dtype)
            delta = delta.at[..., 0].set(v).at[..., 1].set(-1.0).at[..., 2 + k].set(v).at[..., 2 + num_positions + k].set(-p)
            candidate = _sources(key, k, lines) + delta[..., None, None, :]
            candidate = jnp.where(jnp.isfinite(v)[..., None, None, None], candidate, -jnp.inf)
            best = jnp.where(_beats(candidate, best, tolerance[..., None, None])[..., None], candidate, best)
        return best

    return jax.lax.fori_loop(0, num_positions, position, key)


def sort_key_placement(value: jax.Array, treatment: jax.Array, heights: tuple[int, ...], levels: int,
                       num_treatments: int) -> tuple[jax.Array, jax.Array]:
    """The reference's slate from the lexicographic DP: ad and treatment per position."""
    batch, num_ads, _, num_positions = value.shape
    pick = (1 + jnp.arange(num_ads)[None, :, None, None] * num_treatments + treatment).astype(value.dtype)
    start = jnp.zeros((batch, 1 << num_positions, levels, 2 + 2 * num_positions), value.dtype)
    tolerance = tie_tolerance(value)

    def step(key, inputs):
        ad_value, ad_pick = inputs
        return sort_key_step(key, ad_value, ad_pick, heights, tolerance), None

    key, _ = jax.lax.scan(step, start, (jnp.moveaxis(value, 1, 0), jnp.moveaxis(pick, 1, 0)))
    picks = -key[:, -1, -1, 2 + num_positions:].astype(jnp.int32)  # [B, K]: 1 + ad·T + treatment, 0 = empty
    shown = picks > 0
    return jnp.where(shown, (picks - 1) // num_treatments, -1), jnp.where(shown, (picks - 1) % num_treatments, 0)
