"""Transfer functions τ in pCTR = τ(Q·U): a registry of each τ's probability and stable log-likelihood terms."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# exp's knee: below it τ is exactly exp (CTR ≤ ½); above it an exponential tail approaches 1 with the same
# value and slope at the knee, so every logit keeps a gradient (a clamp at 1 would freeze a cell predicting 1)
EXP_KNEE = -float(np.log(2.0))


class Transfer(NamedTuple):
    """A transfer function τ: the probability of a logit, and (log p, log(1 − p)) computed stably."""

    probability: Callable[[jax.Array], jax.Array]
    log_likelihood_terms: Callable[[jax.Array], tuple[jax.Array, jax.Array]]


def _exp_probability(logit: jax.Array) -> jax.Array:
    """exp(z) for CTR ≤ ½ (a product-form click model is exactly representable there), 1 − exp(−z)/4 above
    (C¹ at the knee, strictly increasing, below 1 until float32 rounds it there)."""
    low = logit <= EXP_KNEE
    # each branch sees the logit only where it is selected (the knee elsewhere): finite values, and the whole
    # gradient flows through the selected branch, at the knee too
    return jnp.where(low, jnp.exp(jnp.where(low, logit, EXP_KNEE)), 1.0 - 0.25 * jnp.exp(-jnp.where(low, EXP_KNEE, logit)))


def _exp_log_likelihood_terms(logit: jax.Array) -> tuple[jax.Array, jax.Array]:
    low = logit <= EXP_KNEE
    below, above = jnp.where(low, logit, EXP_KNEE), jnp.where(low, EXP_KNEE, logit)
    log_p = jnp.where(low, below, jnp.log1p(-0.25 * jnp.exp(-above)))
    log_not_p = jnp.where(low, jnp.log(-jnp.expm1(below)), -above - np.log(4.0))
    return log_p, log_not_p


# The registry of transfer functions τ in pCTR = τ(Q·U); `model.transfer` chooses one.
TRANSFERS = {
    "sigmoid": Transfer(jax.nn.sigmoid, lambda logit: (jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit))),
    "exp": Transfer(_exp_probability, _exp_log_likelihood_terms),
}


def transfer(logit: jax.Array, kind: str) -> jax.Array:
    """τ_kind(logit): the probability under the named transfer function."""
    return TRANSFERS[kind].probability(logit)


def log_likelihood_terms(logit: jax.Array, kind: str) -> tuple[jax.Array, jax.Array]:
    """(log p, log(1 − p)) of τ_kind(logit), computed stably for each τ."""
    return TRANSFERS[kind].log_likelihood_terms(logit)
