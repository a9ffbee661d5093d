"""The factorized CTR model pCTR = τ(Q·U) (Factory Floor §6) in Flax NNX.

Q (QualityTower) embeds the query/ad fields and runs an MLP: the costly part, evaluated once per
candidate. U (UiTower) embeds treatment and position: light, evaluated once per (treatment, position)
and reused for every candidate. They meet in an inner product and a transfer function τ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Probabilities are kept inside (EPS, 1 − EPS) wherever a log is taken.
EPS = 1e-7


@dataclass(frozen=True)
class FeatureSpec:
    """Vocabulary of each raw field: (query_topic, query_intent, ad_id, advertiser, ad_topic).

    ad ids are hashed into `ad_buckets`; the cross query_topic × ad id is hashed into `cross_buckets`.
    """

    num_topics: int
    num_intents: int
    num_advertisers: int
    ad_buckets: int
    cross_buckets: int

    @property
    def field_sizes(self) -> tuple[int, ...]:
        """Embedding rows per model field: the five raw fields plus the hashed cross."""
        return (self.num_topics, self.num_intents, self.ad_buckets, self.num_advertisers, self.num_topics, self.cross_buckets)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.field_sizes)[:-1]]).astype(np.int32)


def _hash(x: jax.Array, buckets: int) -> jax.Array:
    """Multiplicative (Knuth) hash of non-negative int32 ids into [0, buckets)."""
    mixed = x.astype(jnp.uint32) * jnp.uint32(2654435761)
    return ((mixed >> 7) % jnp.uint32(buckets)).astype(jnp.int32)


def embedding_ids(spec: FeatureSpec, raw: jax.Array) -> jax.Array:
    """Raw fields int32[..., 5] → rows of the shared embedding table int32[..., 6]."""
    topic, intent, ad, advertiser, ad_topic = (raw[..., i] for i in range(5))
    cross = _hash(ad * spec.num_topics + topic, spec.cross_buckets)
    ids = jnp.stack([topic, intent, _hash(ad, spec.ad_buckets), advertiser, ad_topic, cross], axis=-1)
    return ids + jnp.asarray(spec.offsets)


class Mlp(nnx.Module):
    """Dense layers with an activation between them (none after the last)."""

    def __init__(self, widths: list[int], *, activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
                 rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x


class QualityTower(nnx.Module):
    """Q(query, ad): embeddings of every field, concatenated, through an MLP to a vector of length d."""

    def __init__(self, spec: FeatureSpec, embedding_dim: int, hidden: list[int], out_dim: int, *,
                 activation: Callable[[jax.Array], jax.Array] = jax.nn.relu, rngs: nnx.Rngs):
        self.spec = spec
        self.embed = nnx.Embed(sum(spec.field_sizes), embedding_dim, rngs=rngs)
        self.mlp = Mlp([len(spec.field_sizes) * embedding_dim, *hidden, out_dim], activation=activation, rngs=rngs)

    def __call__(self, raw: jax.Array) -> jax.Array:
        x = self.embed(embedding_ids(self.spec, raw))
        return self.mlp(x.reshape(*x.shape[:-2], -1))


class UiTower(nnx.Module):
    """U(treatment, position): treatment and position embeddings plus the treatment's catalogue features."""

    def __init__(self, treatment_features: np.ndarray, num_positions: int, embedding_dim: int, hidden: list[int],
                 out_dim: int, *, activation: Callable[[jax.Array], jax.Array] = jax.nn.relu, rngs: nnx.Rngs):
        self.treatment_features = nnx.Variable(jnp.asarray(treatment_features))  # constant, not trained
        num_treatments, num_features = treatment_features.shape
        self.treatment_embed = nnx.Embed(num_treatments, embedding_dim, rngs=rngs)
        self.position_embed = nnx.Embed(num_positions, embedding_dim, rngs=rngs)
        self.mlp = Mlp([2 * embedding_dim + num_features, *hidden, out_dim], activation=activation, rngs=rngs)

    def __call__(self, treatment: jax.Array, position: jax.Array) -> jax.Array:
        x = jnp.concatenate(
            [self.treatment_embed(treatment), self.position_embed(position), self.treatment_features[...][treatment]],
            axis=-1,
        )
        return self.mlp(x)

    def table(self) -> jax.Array:
        """U for every (treatment, position): float32[T, K, d] — the cache scoring reuses for all candidates."""
        t, k = self.treatment_embed.num_embeddings, self.position_embed.num_embeddings
        treatment, position = jnp.meshgrid(jnp.arange(t), jnp.arange(k), indexing="ij")
        return self(treatment, position)


TRANSFERS = ("sigmoid", "exp")


def transfer(logit: jax.Array, kind: str) -> jax.Array:
    """τ: sigmoid, or exp (which makes a product-form click model exactly representable)."""
    if kind == "sigmoid":
        return jax.nn.sigmoid(logit)
    return jnp.exp(jnp.minimum(logit, 0.0))


def log_likelihood_terms(logit: jax.Array, kind: str) -> tuple[jax.Array, jax.Array]:
    """(log p, log(1 − p)) of τ(logit), computed stably for each τ."""
    if kind == "sigmoid":
        return jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit)
    z = jnp.minimum(logit, -EPS)  # exp(z) < 1
    return z, jnp.log(-jnp.expm1(z))


class FactorizedCtr(nnx.Module):
    """pCTR = τ(Q(query, ad) · U(treatment, position))."""

    def __init__(self, spec: FeatureSpec, treatment_features: np.ndarray, num_positions: int, *, embedding_dim: int,
                 quality_hidden: list[int], ui_hidden: list[int], interaction_dim: int, transfer: str, rngs: nnx.Rngs,
                 activation: Callable[[jax.Array], jax.Array] = jax.nn.relu):
        if transfer not in TRANSFERS:
            raise ValueError(f"transfer: {transfer!r} is not allowed; allowed: {', '.join(TRANSFERS)}")
        self.transfer = transfer
        self.quality = QualityTower(spec, embedding_dim, quality_hidden, interaction_dim, activation=activation, rngs=rngs)
        self.ui = UiTower(treatment_features, num_positions, embedding_dim, ui_hidden, interaction_dim,
                          activation=activation, rngs=rngs)

    def logit(self, raw: jax.Array, treatment: jax.Array, position: jax.Array) -> jax.Array:
        """Logits float32[B] for examples with raw fields int32[B, 5] shown in (treatment, position) int32[B]."""
        return jnp.sum(self.quality(raw) * self.ui(treatment, position), axis=-1)

    def score_candidates(self, raw: jax.Array) -> jax.Array:
        """pCTR float32[B, N, T, K] for raw fields int32[B, N, 5]: Q once per candidate, U from its table."""
        return transfer(jnp.einsum("bnd,tkd->bntk", self.quality(raw), self.ui.table()), self.transfer)
