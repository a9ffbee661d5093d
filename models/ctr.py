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


NORMALIZATIONS = ("none", "layer", "weight")


@dataclass(frozen=True)
class HiddenLayers:
    """What happens around each hidden layer (smelu_reproducibility §3): normalisation and clipping of activations.

    `normalization`: "layer" normalises each hidden pre-activation (layer norm); "weight" keeps the L2 norm of
    the weights incoming to every hidden neuron at `weight_norm` (w̃_j = v·w_j/‖w_j‖, foldable into the weights at
    deployment). `activation_clip` c > 0 clips hidden activations to [−c, c]. The output layer is left plain.
    """

    activation: Callable[[jax.Array], jax.Array] = jax.nn.relu
    normalization: str = "none"
    weight_norm: float = 1.0
    activation_clip: float = 0.0

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization: {self.normalization!r} is not allowed; allowed: {', '.join(NORMALIZATIONS)}")


class Mlp(nnx.Module):
    """Dense layers with an activation between them (none after the last), normalised and clipped as `hidden` says.

    With `bottleneck_dim` k > 0, every layer m → n with k < min(m, n) becomes the low-rank product of
    m → k (no bias) and k → n (Factory Floor §3.1): m·k + k·n multiply-adds instead of m·n.
    """

    def __init__(self, widths: list[int], *, hidden: HiddenLayers = HiddenLayers(), bottleneck_dim: int = 0,
                 rngs: nnx.Rngs):
        self.layers = nnx.List([_dense(a, b, bottleneck_dim, rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.norms = nnx.List([nnx.LayerNorm(n, rngs=rngs) for n in widths[1:-1]]) if hidden.normalization == "layer" else None
        self.hidden = hidden

    def __call__(self, x: jax.Array) -> jax.Array:
        *hidden_layers, output_layer = self.layers
        for i, layer in enumerate(hidden_layers):
            if self.hidden.normalization == "weight":
                x = _weight_normalized(layer, x, self.hidden.weight_norm)
            else:
                x = layer(x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = self.hidden.activation(x)
            if self.hidden.activation_clip > 0:
                x = jnp.clip(x, -self.hidden.activation_clip, self.hidden.activation_clip)
        return output_layer(x)


def _dense(m: int, n: int, bottleneck_dim: int, rngs: nnx.Rngs) -> nnx.Module:
    if 0 < bottleneck_dim < min(m, n):
        return nnx.Sequential(nnx.Linear(m, bottleneck_dim, use_bias=False, rngs=rngs), nnx.Linear(bottleneck_dim, n, rngs=rngs))
    return nnx.Linear(m, n, rngs=rngs)


def _weight_normalized(layer: nnx.Module, x: jax.Array, norm: float) -> jax.Array:
    """x through `layer` with every output neuron's incoming weights rescaled to L2 norm `norm`.

    A bottleneck m → k → n is normalised as its product A·B, whose column norms come from the k×k Gram matrix
    AᵀA without forming A·B.
    """
    if isinstance(layer, nnx.Sequential):
        down, up = layer.layers
        a, b = down.kernel[...], up.kernel[...]
        column_norms = jnp.sqrt(jnp.sum(b * ((a.T @ a) @ b), axis=0))
        linear = up
        product = (x @ a) @ b
    else:
        linear = layer
        column_norms = jnp.linalg.norm(layer.kernel[...], axis=0)
        product = x @ layer.kernel[...]
    return product * (norm / jnp.maximum(column_norms, EPS)) + linear.bias[...]


class LowRankCross(nnx.Module):
    """DCNv2 low-rank cross layers as in Factory Floor §4.3: e_i = α·(e_0 ⊙ U_i V_i e_{i−1}) + e_{i−1}.

    α is a trainable scalar per layer starting at 0 (ReZero): the model first learns the embeddings,
    then ramps the crosses in.
    """

    def __init__(self, width: int, layers: int, rank: int, *, rngs: nnx.Rngs):
        self.down = nnx.List([nnx.Linear(width, rank, use_bias=False, rngs=rngs) for _ in range(layers)])
        self.up = nnx.List([nnx.Linear(rank, width, use_bias=False, rngs=rngs) for _ in range(layers)])
        self.alpha = nnx.Param(jnp.zeros(layers))

    def __call__(self, e0: jax.Array) -> jax.Array:
        e = e0
        for i, (down, up) in enumerate(zip(self.down, self.up)):
            e = self.alpha[...][i] * (e0 * up(down(e))) + e
        return e


@dataclass(frozen=True)
class TowerShape:
    """Widths and switches shared by the towers: embedding width, hidden widths, hidden layers, crosses, bottleneck."""

    embedding_dim: int
    quality_hidden: tuple[int, ...]
    ui_hidden: tuple[int, ...]
    interaction_dim: int
    hidden: HiddenLayers = HiddenLayers()
    dcn_layers: int = 0
    dcn_rank: int = 8
    bottleneck_dim: int = 0
    embedding_init_std: float = 0.0  # 0 = Flax's default, 1/√embedding_dim
    position_feature: bool = True  # False: U sees every position as the top one (a misspecified model)

    def embed(self, rows: int, *, rngs: nnx.Rngs) -> nnx.Embed:
        """An embedding table initialised as configured."""
        if self.embedding_init_std > 0:
            return nnx.Embed(rows, self.embedding_dim, embedding_init=nnx.initializers.normal(self.embedding_init_std),
                             rngs=rngs)
        return nnx.Embed(rows, self.embedding_dim, rngs=rngs)


class QualityTower(nnx.Module):
    """Q(query, ad): embeddings of every field, concatenated, optional DCNv2 crosses, an MLP to a vector of length d."""

    def __init__(self, spec: FeatureSpec, shape: TowerShape, out_dim: int, *, extra_inputs: int = 0, rngs: nnx.Rngs):
        self.spec = spec
        width = len(spec.field_sizes) * shape.embedding_dim
        self.embed = shape.embed(sum(spec.field_sizes), rngs=rngs)
        self.cross = LowRankCross(width, shape.dcn_layers, shape.dcn_rank, rngs=rngs) if shape.dcn_layers else None
        self.mlp = Mlp([width + extra_inputs, *shape.quality_hidden, out_dim], hidden=shape.hidden,
                       bottleneck_dim=shape.bottleneck_dim, rngs=rngs)

    def embeddings(self, raw: jax.Array) -> jax.Array:
        """The embedding input layer e_0 (after the cross layers, if any): float32[..., fields × embedding_dim]."""
        x = self.embed(embedding_ids(self.spec, raw))
        x = x.reshape(*x.shape[:-2], -1)
        return self.cross(x) if self.cross is not None else x

    def __call__(self, raw: jax.Array) -> jax.Array:
        return self.mlp(self.embeddings(raw))


class UiFeatures(nnx.Module):
    """The UI treatment as features: treatment and position embeddings plus the treatment's catalogue features."""

    def __init__(self, treatment_features: np.ndarray, num_positions: int, shape: TowerShape, *, rngs: nnx.Rngs):
        self.treatment_features = nnx.Variable(jnp.asarray(treatment_features))  # constant, not trained
        num_treatments, num_features = treatment_features.shape
        self.treatment_embed = shape.embed(num_treatments, rngs=rngs)
        self.position_embed = shape.embed(num_positions, rngs=rngs)
        self.use_position = shape.position_feature
        self.width = 2 * shape.embedding_dim + num_features

    def __call__(self, treatment: jax.Array, position: jax.Array) -> jax.Array:
        position = position if self.use_position else jnp.zeros_like(position)
        return jnp.concatenate(
            [self.treatment_embed(treatment), self.position_embed(position), self.treatment_features[...][treatment]],
            axis=-1,
        )

    def grid(self) -> tuple[jax.Array, jax.Array]:
        """(treatment, position) int32[T, K] over every combination."""
        t, k = self.treatment_embed.num_embeddings, self.position_embed.num_embeddings
        return tuple(jnp.meshgrid(jnp.arange(t), jnp.arange(k), indexing="ij"))


class UiTower(nnx.Module):
    """U(treatment, position): the UI features through a light MLP."""

    def __init__(self, treatment_features: np.ndarray, num_positions: int, shape: TowerShape, out_dim: int, *,
                 rngs: nnx.Rngs):
        self.features = UiFeatures(treatment_features, num_positions, shape, rngs=rngs)
        self.mlp = Mlp([self.features.width, *shape.ui_hidden, out_dim], hidden=shape.hidden, rngs=rngs)

    def __call__(self, treatment: jax.Array, position: jax.Array) -> jax.Array:
        return self.mlp(self.features(treatment, position))

    def table(self) -> jax.Array:
        """U for every (treatment, position): float32[T, K, d] — the cache scoring reuses for all candidates."""
        return self(*self.features.grid())


TRANSFERS = ("sigmoid", "exp")
# exp's knee: below it τ is exactly exp (CTR ≤ ½); above it an exponential tail approaches 1 with the same
# value and slope at the knee, so every logit keeps a gradient (a clamp at 1 would freeze a cell predicting 1)
EXP_KNEE = -float(np.log(2.0))


def transfer(logit: jax.Array, kind: str) -> jax.Array:
    """τ: sigmoid, or exp — exp(z) for CTR ≤ ½ (a product-form click model is exactly representable there),
    1 − exp(−z)/4 above (C¹ at the knee, strictly increasing, below 1 until float32 rounds it there)."""
    if kind == "sigmoid":
        return jax.nn.sigmoid(logit)
    low = logit <= EXP_KNEE
    # each branch sees the logit only where it is selected (the knee elsewhere): finite values, and the whole
    # gradient flows through the selected branch, at the knee too
    return jnp.where(low, jnp.exp(jnp.where(low, logit, EXP_KNEE)), 1.0 - 0.25 * jnp.exp(-jnp.where(low, EXP_KNEE, logit)))


def log_likelihood_terms(logit: jax.Array, kind: str) -> tuple[jax.Array, jax.Array]:
    """(log p, log(1 − p)) of τ(logit), computed stably for each τ."""
    if kind == "sigmoid":
        return jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit)
    low = logit <= EXP_KNEE
    below, above = jnp.where(low, logit, EXP_KNEE), jnp.where(low, EXP_KNEE, logit)
    log_p = jnp.where(low, below, jnp.log1p(-0.25 * jnp.exp(-above)))
    log_not_p = jnp.where(low, jnp.log(-jnp.expm1(below)), -above - np.log(4.0))
    return log_p, log_not_p


class FactorizedCtr(nnx.Module):
    """One component of the factorized model: logit = Q(query, ad) · U(treatment, position) (Factory Floor §6)."""

    def __init__(self, spec: FeatureSpec, treatment_features: np.ndarray, num_positions: int, shape: TowerShape, *,
                 rngs: nnx.Rngs):
        self.quality = QualityTower(spec, shape, shape.interaction_dim, rngs=rngs)
        self.ui = UiTower(treatment_features, num_positions, shape, shape.interaction_dim, rngs=rngs)

    def logit(self, raw: jax.Array, treatment: jax.Array, position: jax.Array) -> jax.Array:
        return jnp.sum(self.quality(raw) * self.ui(treatment, position), axis=-1)

    def candidate_logits(self, raw: jax.Array) -> jax.Array:
        """float32[B, N, T, K]: Q once per candidate, U from its [T, K, d] table, one dot product per cell."""
        return jnp.einsum("bnd,tkd->bntk", self.quality(raw), self.ui.table())


class UnfactorizedCtr(nnx.Module):
    """One component of the unfactorized baseline: one tower over query/ad embeddings and the UI features together.

    Scoring costs a full tower pass per (candidate, treatment, position) instead of one per candidate.
    """

    def __init__(self, spec: FeatureSpec, treatment_features: np.ndarray, num_positions: int, shape: TowerShape, *,
                 rngs: nnx.Rngs):
        self.ui = UiFeatures(treatment_features, num_positions, shape, rngs=rngs)
        self.quality = QualityTower(spec, shape, 1, extra_inputs=self.ui.width, rngs=rngs)

    def _head(self, embedded: jax.Array, ui: jax.Array) -> jax.Array:
        return self.quality.mlp(jnp.concatenate([embedded, ui], axis=-1))[..., 0]

    def logit(self, raw: jax.Array, treatment: jax.Array, position: jax.Array) -> jax.Array:
        return self._head(self.quality.embeddings(raw), self.ui(treatment, position))

    def candidate_logits(self, raw: jax.Array) -> jax.Array:
        """float32[B, N, T, K]: the whole tower once per (candidate, treatment, position)."""
        embedded = self.quality.embeddings(raw)  # [B, N, m]: lookups once per candidate
        ui = self.ui(*self.ui.grid())  # [T, K, u]
        b, n, m = embedded.shape
        t, k, u = ui.shape
        return self._head(jnp.broadcast_to(embedded[:, :, None, None, :], (b, n, t, k, m)),
                          jnp.broadcast_to(ui, (b, n, t, k, u)))


ARCHITECTURES = {"factorized": FactorizedCtr, "unfactorized": UnfactorizedCtr}


class CtrModel(nnx.Module):
    """pCTR = mean over components of τ(component logit): one component, or a self-ensemble (Factory Floor §5)."""

    def __init__(self, spec: FeatureSpec, treatment_features: np.ndarray, num_positions: int, shape: TowerShape, *,
                 transfer: str = "sigmoid", architecture: str = "factorized", ensemble_size: int = 1, rngs: nnx.Rngs):
        if transfer not in TRANSFERS:
            raise ValueError(f"transfer: {transfer!r} is not allowed; allowed: {', '.join(TRANSFERS)}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture: {architecture!r} is not allowed; allowed: {', '.join(ARCHITECTURES)}")
        self.spec = spec
        self.transfer = transfer
        component = ARCHITECTURES[architecture]
        self.components = nnx.List([component(spec, treatment_features, num_positions, shape, rngs=rngs)
                                    for _ in range(ensemble_size)])

    def component_logits(self, raw: jax.Array, treatment: jax.Array, position: jax.Array) -> jax.Array:
        """Logits float32[B, E] of each component for raw fields int32[B, 5] shown in (treatment, position) int32[B]."""
        return jnp.stack([c.logit(raw, treatment, position) for c in self.components], axis=-1)

    def predict(self, raw: jax.Array, treatment: jax.Array, position: jax.Array) -> jax.Array:
        """pCTR float32[B]: the components' probabilities averaged."""
        return jnp.mean(transfer(self.component_logits(raw, treatment, position), self.transfer), axis=-1)

    def score_candidates(self, raw: jax.Array) -> jax.Array:
        """pCTR float32[B, N, T, K] for raw fields int32[B, N, 5]."""
        total = sum(transfer(c.candidate_logits(raw), self.transfer) for c in self.components)
        return total / len(self.components)
