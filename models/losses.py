"""Loss terms of the online trainer: pure functions of logits, labels and weights, and the registry of the
weighted terms the trainer sums.

Each term is normalised by the batch's total importance weight, so zero-weight padding rows count for
nothing and sampled-down examples count 1/rate times. A new term is one function and one config weight:
an entry in `LOSS_TERMS` and a field of `models.config.TrainConfig`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from models.transfers import log_likelihood_terms


def _ramp_constant(progress: jax.Array) -> jax.Array:
    return jnp.ones_like(progress)


# The registry of loss curricula (§4.1.3): progress in [0, 1] through the ramp → weight multiplier in [0, 1].
CURRICULA: dict[str, Callable[[jax.Array], jax.Array]] = {
    "none": _ramp_constant,
    "linear": lambda progress: progress,
    "cosine": lambda progress: 0.5 - 0.5 * jnp.cos(jnp.pi * progress),
}


def curriculum_ramp(seen: jax.Array, kind: str, examples: int) -> jax.Array:
    """Weight multiplier in [0, 1] of the auxiliary losses after `seen` trained examples."""
    if examples <= 0:
        return jnp.float32(1.0)
    return CURRICULA[kind](jnp.clip(seen / jnp.float32(examples), 0.0, 1.0))  # float32: counts beyond int32 too


def log_loss_term(logit: jax.Array, target: jax.Array, weight: jax.Array, kind: str) -> jax.Array:
    """Weighted mean cross-entropy of τ(logit) against a (possibly soft) target in [0, 1]."""
    log_p, log_not_p = log_likelihood_terms(logit, kind)
    per_example = -(target * log_p + (1.0 - target) * log_not_p)
    return jnp.sum(weight * per_example) / jnp.maximum(jnp.sum(weight), 1e-12)


def focal_loss_term(logit: jax.Array, target: jax.Array, weight: jax.Array, kind: str, gamma: float) -> jax.Array:
    """Weighted mean focal loss (Lin et al. 2017): −[y (1 − p)^γ log p + (1 − y) p^γ log(1 − p)], p = τ(logit).

    γ = 0 is the log loss; γ > 0 down-weights the examples the model already predicts well."""
    log_p, log_not_p = log_likelihood_terms(logit, kind)
    p, not_p = jnp.exp(log_p), jnp.exp(log_not_p)
    per_example = -(target * not_p**gamma * log_p + (1.0 - target) * p**gamma * log_not_p)
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


class LossBatch(NamedTuple):
    """One training batch as the loss terms see it: the model's outputs, the logged columns, and the step's state."""

    logits: jax.Array  # float32[B, E]: each ensemble component's logit
    probabilities: jax.Array  # float32[B, E]: τ of each
    prediction: jax.Array  # float32[B]: their mean, the pCTR
    raw: jax.Array  # int32[B, 5]
    treatment: jax.Array  # int32[B]
    position: jax.Array  # int32[B]
    label: jax.Array  # float32[B]
    weight: jax.Array  # float32[B]: importance weight, 0 on padding rows
    query: jax.Array  # int32[B]: the rank loss's groups
    soft_label: jax.Array  # float32[B]: the teacher's PV prediction (the label without a teacher)
    ramp: jax.Array  # the curriculum's multiplier of the auxiliary terms
    duals: jax.Array  # float32[S]: the bias constraints' dual variables
    transfer: str  # τ's registry name
    slice_sizes: dict  # slice family → number of slices (dual variables) in it
    max_ads_per_query: int  # a query's rows are at most this many apart (the rank loss's pair window)


class SliceFamily(NamedTuple):
    """A family of slices the bias constraints can be put on: each example's slice, and how many slices there are
    for a model of `positions` positions, `treatments` treatments and `advertisers` advertisers."""

    ids: Callable[[LossBatch], jax.Array]
    size: Callable[[int, int, int], int]


# Slice families the bias constraints can be put on (Factory Floor §7): each partitions the examples.
BIAS_SLICES: dict[str, SliceFamily] = {
    "position": SliceFamily(lambda batch: batch.position, lambda positions, treatments, advertisers: positions),
    "treatment": SliceFamily(lambda batch: batch.treatment, lambda positions, treatments, advertisers: treatments),
    "pctr_decile": SliceFamily(lambda batch: batch_deciles(jax.lax.stop_gradient(batch.prediction), batch.weight),
                               lambda positions, treatments, advertisers: 10),
    "advertiser": SliceFamily(lambda batch: batch.raw[:, 3], lambda positions, treatments, advertisers: advertisers),
}


def slice_ids(batch: LossBatch, families: tuple[str, ...]) -> jax.Array:
    """int32[B, F]: each example's dual variable in each constrained slice family (families laid end to end)."""
    columns, offset = [], 0
    for name in families:
        columns.append(BIAS_SLICES[name].ids(batch) + offset)
        offset += batch.slice_sizes[name]
    return jnp.stack(columns, axis=-1)


def _log_loss(batch: LossBatch, config: Any) -> jax.Array:
    """(1 − α₁)·log loss of every component against the label, mixed with the teacher's (distillation, §4.1.2)."""
    distill = batch.ramp * config.distillation_weight
    target = (1.0 - distill) * batch.label + distill * batch.soft_label
    rank = batch.ramp * config.rank_loss_weight
    total = 0.0
    for e in range(batch.logits.shape[-1]):
        total += (1.0 - rank) * log_loss_term(batch.logits[:, e], target, batch.weight, batch.transfer)
    return total


def _rank(batch: LossBatch, config: Any) -> jax.Array:
    """α₁·RankNet of every component (§4.1.1)."""
    rank = batch.ramp * config.rank_loss_weight
    total = 0.0
    for e in range(batch.logits.shape[-1]):
        total += rank * rank_loss_term(batch.logits[:, e], batch.label, batch.weight, batch.query,
                                       batch.max_ads_per_query)
    return total


def _bias(batch: LossBatch, config: Any) -> jax.Array:
    """The bias constraints' Lagrangian term (§7.1), ramped in."""
    ids = slice_ids(batch, tuple(config.bias_constraints))
    return batch.ramp * bias_constraint_term(batch.prediction, batch.label, batch.weight, ids, batch.duals,
                                             config.bias_alpha)


def _focal(batch: LossBatch, config: Any) -> jax.Array:
    """The focal-loss weight × the focal loss of every component against the label."""
    return sum(config.focal_loss_weight * focal_loss_term(batch.logits[:, e], batch.label, batch.weight, batch.transfer,
                                                          config.focal_gamma) for e in range(batch.logits.shape[-1]))


def _anti_distillation(batch: LossBatch, config: Any) -> jax.Array:
    """The anti-distillation weight × the components' (negative) spread (§5)."""
    return config.anti_distillation_weight * anti_distillation_term(batch.probabilities, batch.weight)


class LossTerm(NamedTuple):
    """A weighted term of the training loss: `value(batch, config)`, added when `active(config)`."""

    active: Callable[[Any], bool]
    value: Callable[[LossBatch, Any], jax.Array]


# The registry of the training loss's terms, summed in this order by the trainer.
LOSS_TERMS: dict[str, LossTerm] = {
    "log_loss": LossTerm(lambda config: True, _log_loss),
    "rank": LossTerm(lambda config: config.rank_loss_weight > 0, _rank),
    "bias_constraints": LossTerm(lambda config: bool(config.bias_constraints), _bias),
    "anti_distillation": LossTerm(lambda config: config.anti_distillation_weight > 0, _anti_distillation),
    "focal": LossTerm(lambda config: config.focal_loss_weight > 0, _focal),
}


def active_terms(config: Any) -> tuple[LossTerm, ...]:
    """The loss terms a train config switches on, in the registry's order."""
    return tuple(term for term in LOSS_TERMS.values() if term.active(config))


def total_loss(batch: LossBatch, config: Any, terms: tuple[LossTerm, ...]) -> jax.Array:
    """The training loss: the sum of the given active terms (config: a models.config.TrainConfig)."""
    total = 0.0
    for term in terms:
        total = total + term.value(batch, config)
    return total
