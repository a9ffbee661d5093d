"""Reserve prices per candidate: uniform and per-advertiser ones are given; quality-weighted ones follow the CTRs."""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.jit
def quality_weighted_reserve(score_reserve: jax.Array, ctr: jax.Array) -> jax.Array:
    """Per-click reserve R / q for score reserve R float32[B, N] and ctr float32[B, N, T, K].

    q is the ad's CTR in the first treatment at the top position (its quality score), so an ad clears
    the reserve when bid × q > R: the reserve is on expected value per impression, not per click.
    """
    quality = ctr[:, :, 0, 0]
    return jnp.where(quality > 0, score_reserve / jnp.where(quality > 0, quality, 1.0), jnp.inf)
