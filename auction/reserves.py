"""Reserve prices: the registries of reserve kinds (how a candidate's per-click reserve is set) and reserve modes
(how the auction treats it); uniform and per-advertiser reserves are given, quality-weighted ones follow the CTRs."""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple, get_args

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


def _given(reserve: jax.Array, ctr: jax.Array) -> jax.Array:
    return reserve


class ReserveKind(NamedTuple):
    """One `auction.reserve_kind`: whether the world draws a lognormal reserve factor per advertiser, and the
    per-click reserve float32[B, N] of each candidate from the given ones and the CTRs float32[B, N, T, K]."""

    advertiser_factors: bool
    per_candidate: Callable[[jax.Array, jax.Array], jax.Array]


# The registry of reserve kinds: uniform, per advertiser (reserve × a lognormal factor), quality-weighted (R / q).
RESERVE_KINDS = {
    "uniform": ReserveKind(False, _given),
    "quality_weighted": ReserveKind(False, quality_weighted_reserve),
    "per_advertiser": ReserveKind(True, _given),
}

# Reserve semantics, implemented by both solvers (`auction.vcg`, `auction.reference`): `cost` treats the reserve
# as a per-click seller cost (Clarke pivot on Σ (bid − reserve)·ctr); `filter` drops bids ≤ reserve and charges
# threshold payments. `auction.reserve_mode` and `adfloor auction --reserve-mode` choose from RESERVE_MODES.
ReserveMode = Literal["cost", "filter"]
RESERVE_MODES: tuple[str, ...] = get_args(ReserveMode)
