"""Loss terms of the online trainer: pure functions of logits, labels and weights, summed by the trainer.

Each term is normalised by the batch's total importance weight, so zero-weight padding rows count for
nothing and sampled-down examples count 1/rate times.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from models.ctr import log_likelihood_terms

# Slice families the bias constraints can be put on (Factory Floor §7): each partitions the examples.
BIAS_SLICES = ("position", "treatment", "pctr_decile", "advertiser")
CURRICULA = ("none", "linear", "cosine")


@dataclass(frozen=True)
class LossConfig:
    """Weights and settings of the trainer's loss terms; the defaults are plain log loss."""

    rank_weight: float = 0.0  # α₁ in α₁·L_rank + (1 − α₁)·L_logistic (§4.1.1)
    distillation_weight: float = 0.0  # w in L(target = (1 − w)·y + w·ŷ_teacher) (§4.1.2)
    anti_distillation_weight: float = 0.0  # ensembles: pushes the components apart (§5)
    curriculum: str = "none"  # how rank, distillation and bias terms ramp in (§4.1.3)
    curriculum_examples: int = 0  # examples over which they ramp from 0 to full weight
    bias_slices: tuple[str, ...] = ()  # slice families with one dual variable per slice (§7)
    bias_alpha: float = 0.01  # α₃: L2 on the dual variables; λ_k settles at (mean bias on S_k) / α₃
    bias_learning_rate: float = 1.0  # gradient-ascent step of the dual variables

    def __post_init__(self):
        if self.curriculum not in CURRICULA:
            raise ValueError(f"curriculum: {self.curriculum!r} is not allowed; allowed: {', '.join(CURRICULA)}")
        for name in self.bias_slices:
            if name not in BIAS_SLICES:
                raise ValueError(f"bias_slices: {name!r} is not allowed; allowed: {', '.join(BIAS_SLICES)}")


def curriculum_ramp(seen: jax.Array, kind: str, examples: int) -> jax.Array:
    """Weight multiplier in [0, 1] of the auxiliary losses after `seen` trained examples."""
    if kind == "none" or examples <= 0:
        return jnp.float32(1.0)
    progress = jnp.clip(seen / examples, 0.0, 1.0)
    return progress if kind == "linear" else 0.5 - 0.5 * jnp.cos(jnp.pi * progress)


def log_loss_term(logit: jax.Array, target: jax.Array, weight: jax.Array, kind: str) -> jax.Array:
    """Weighted mean cross-entropy of τ(logit) against a (possibly soft) target in [0, 1]."""
    log_p, log_not_p = log_likelihood_terms(logit, kind)
    per_example = -(target * log_p + (1.0 - target) * log_not_p)
    return jnp.sum(weight * per_example) / jnp.maximum(jnp.sum(weight), 1e-12)


def rank_loss_term(logit: jax.Array, label: jax.Array, weight: jax.Array, query: jax.Array, max_gap: int) -> jax.Array:
    """RankNet (§4.1.1): mean of −log σ(s_i − s_j) over pairs of the same query with y_i = 1, y_j = 0.

    A query's shown ads are adjacent in the logs, so pairs are found among rows at most `max_gap − 1`
    apart: O(batch × K), not O(batch²). Pair weight = product of the two importance weights.
    """
    total, pairs = jnp.float32(0.0), jnp.float32(0.0)
    for gap in range(1, max_gap):
        a, b = slice(None, -gap), slice(gap, None)
        pair_weight = weight[a] * weight[b] * (query[a] == query[b]) * (label[a] != label[b])
        sign = jnp.where(label[a] > label[b], 1.0, -1.0)  # orient every pair as (clicked − not clicked)
        total = total + jnp.sum(pair_weight * -jax.nn.log_sigmoid(sign * (logit[a] - logit[b])))
        pairs = pairs + jnp.sum(pair_weight)
    return total / jnp.maximum(pairs, 1e-12)


def bias_constraint_term(prediction: jax.Array, label: jax.Array, weight: jax.Array, slice_ids: jax.Array,
                         duals: jax.Array, alpha: float) -> jax.Array:
    """Σ_k Σ_{i∈S_k} (λ_k (y_i − ŷ_i) − α/2 λ_k²), per unit weight (§7.1): minimised over the model, maximised over λ.

    slice_ids: int32[B, F], the dual variable of each example in each of F slice families.
    """
    lam = duals[slice_ids]  # [B, F]
    per_example = jnp.sum(lam * (label - prediction)[:, None] - 0.5 * alpha * lam**2, axis=-1)
    return jnp.sum(weight * per_example) / jnp.maximum(jnp.sum(weight), 1e-12)


def anti_distillation_term(probabilities: jax.Array, weight: jax.Array) -> jax.Array:
    """−mean over component pairs of the squared difference of their probabilities: [B, E] → scalar ≤ 0.

    A bounded decorrelation loss after Shamir & Coviello (2020): it pushes the components of a
    self-ensemble apart, so their average lands nearer the middle of the solutions a retrain can reach.
    """
    e = probabilities.shape[-1]
    if e < 2:
        return jnp.float32(0.0)
    centred = probabilities - probabilities.mean(axis=-1, keepdims=True)
    # mean over pairs (i < j) of (p_i − p_j)² = 2·e/(e − 1) · variance over components
    pair_mean = jnp.sum(centred**2, axis=-1) * 2.0 / (e - 1)
    return -jnp.sum(weight * pair_mean) / jnp.maximum(jnp.sum(weight), 1e-12)


def batch_deciles(prediction: jax.Array, weight: jax.Array) -> jax.Array:
    """Decile 0..9 of each prediction among the batch's real (weight > 0) rows; padding rows go to decile 0."""
    real = weight > 0
    keyed = jnp.where(real, prediction, -jnp.inf)
    rank = jnp.argsort(jnp.argsort(keyed))  # padding first
    padding = jnp.sum(~real)
    count = jnp.maximum(jnp.sum(real), 1)
    return jnp.where(real, ((rank - padding) * 10) // count, 0).astype(jnp.int32)
