"""Activation functions, including SmeLU and generalized SmeLU (Shamir & Lin, smelu_reproducibility §5).

Smooth activations make the loss surface smoother, so two models that differ only in a nuisance seed end
up closer (lower prediction difference) at equal accuracy.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

def smelu(x: jax.Array, beta: float = 1.0) -> jax.Array:
    """SmeLU, eq. (7): 0 for x ≤ −β, (x + β)² / 4β for |x| ≤ β, x for x ≥ β (ReLU convolved with a box)."""
    return jnp.where(x <= -beta, 0.0, jnp.where(x >= beta, x, (x + beta) ** 2 / (4.0 * beta)))


def gsmelu(x: jax.Array, alpha: float = 1.0, beta: float = 1.0, g_minus: float = 0.0, g_plus: float = 1.0,
           t: float = 0.0) -> jax.Array:
    """Generalized SmeLU, eqs. (9)–(10): slopes g₋ left of −α and g₊ right of β, value t at −α, quadratic between.

    SmeLU is the case g₋ = 0, g₊ = 1, α = β, t = 0.
    """
    a = (g_plus - g_minus) / (2.0 * (alpha + beta))
    b = (alpha * g_plus + beta * g_minus) / (alpha + beta)
    c = t + (alpha**2 * (g_plus + g_minus) + 2.0 * alpha * beta * g_minus) / (2.0 * (alpha + beta))
    left = g_minus * x + t + g_minus * alpha
    right = g_plus * x + t + (alpha + beta) / 2.0 * g_minus + (alpha - beta) / 2.0 * g_plus
    return jnp.where(x <= -alpha, left, jnp.where(x >= beta, right, a * x**2 + b * x + c))


# The registry of hidden-layer activations: name → the function, given the model config (any object with the
# smelu_* / gsmelu_* fields; models.config.ModelConfig). The config's choices and the app's pickers read it.
ACTIVATIONS: dict[str, Callable[[Any], Callable[[jax.Array], jax.Array]]] = {
    "relu": lambda config: jax.nn.relu,
    "smelu": lambda config: functools.partial(smelu, beta=config.smelu_beta),
    "gsmelu": lambda config: functools.partial(gsmelu, alpha=config.gsmelu_alpha, beta=config.gsmelu_beta,
                                               g_minus=config.gsmelu_g_minus, g_plus=config.gsmelu_g_plus,
                                               t=config.gsmelu_t),
    "swish": lambda config: jax.nn.swish,
    "gelu": lambda config: jax.nn.gelu,
    "softplus": lambda config: jax.nn.softplus,
}


def activation_from_config(config: Any) -> Callable[[jax.Array], jax.Array]:
    """The activation `config.activation` names, with its parameters from the config."""
    return ACTIVATIONS[config.activation](config)
