"""Pricing rules on the welfare-maximising page: the registry that `auction.mechanism` and `adfloor auction
--mechanism` choose from. Every mechanism shows the same page (the optimum of Σ (bid − reserve)·ctr, or of
Σ bid·ctr over eligible ads with the filter semantics) and differs only in what the shown ads pay.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class Shown(NamedTuple):
    """Per query and position, float32[B, K] (0 where empty): the shown ad's CTR, bid and reserve per click,
    its VCG payment per page view and its threshold bid (the least bid that keeps its clicks; GSP only)."""

    ctr: jax.Array
    bid: jax.Array
    reserve: jax.Array
    vcg_payment: jax.Array
    threshold_bid: jax.Array


class Mechanism(NamedTuple):
    """One `auction.mechanism`: whether it needs the threshold bids, and the payment per page view it charges."""

    needs_thresholds: bool
    payment: Callable[[Shown], jax.Array]


def _vcg(shown: Shown) -> jax.Array:
    return shown.vcg_payment


def _gsp(shown: Shown) -> jax.Array:
    """GSP generalised to treatments and budgets: the threshold bid per click, at least the reserve (with one
    treatment and separable CTRs: the next eligible ad's score over one's own quality)."""
    return jnp.maximum(shown.threshold_bid, shown.reserve) * shown.ctr


def _first_price(shown: Shown) -> jax.Array:
    return shown.bid * shown.ctr


# The registry of mechanisms: VCG (truthful), GSP (threshold prices), first price (pay your bid).
MECHANISMS = {
    "vcg": Mechanism(False, _vcg),
    "gsp": Mechanism(True, _gsp),
    "first_price": Mechanism(False, _first_price),
}


def check_mechanism(mechanism: str, error: type[ValueError] = ValueError) -> None:
    """Raises `error` naming the field for a mechanism that MECHANISMS does not hold."""
    if mechanism not in MECHANISMS:
        raise error(f"mechanism: {mechanism!r} is not one of {', '.join(MECHANISMS)}")
