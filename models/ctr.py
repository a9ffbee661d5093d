"""The factorized CTR model pCTR = τ(Q·U) (Factory Floor §6) in Flax NNX.

Q (QualityTower) embeds the query/ad fields and runs an MLP: the costly part, evaluated once per
candidate. U (UiTower) embeds treatment and position: light, evaluated once per (treatment, position)
and reused for every candidate. They meet in an inner product and a transfer function τ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.layers import HiddenLayers, LowRankCross, Mlp
from models.transfers import TRANSFERS, transfer

@dataclass(frozen=True)
class SparseField:
    """One raw column of the model's input: ids in [0, vocabulary), one embedding row each, or hashed into
    `buckets` rows when `buckets` > 0 (ids that grow or are too many for a row each, as in production)."""

    name: str
    vocabulary: int
    buckets: int = 0

    @property
    def rows(self) -> int:
        return self.buckets or self.vocabulary


@dataclass(frozen=True)
class FeatureSpec:
    """The raw columns (`fields`, in the order of the last axis of the raw array) and the hashed crosses
    (field a, field b, buckets): each cross hashes the pair of raw ids (a·vocabulary_b + b) into its buckets.

    The world says what its columns are (`World.feature_spec`); every world's first five are the teaching world's
    (query_topic, query_intent, ad_id, advertiser, ad_topic), so the advertiser is column 3 (the bias slices read
    it there). The model embeds each field and cross in one table.
    """

    fields: tuple[SparseField, ...]
    crosses: tuple[tuple[str, str, int], ...] = ()

    @classmethod
    def teaching(cls, num_topics: int, num_intents: int, num_advertisers: int, ad_buckets: int,
                 cross_buckets: int) -> FeatureSpec:
        """The teaching world's columns (query_topic, query_intent, ad_id, advertiser, ad_topic); ad ids hashed into
        `ad_buckets`, the cross ad × query topic into `cross_buckets`."""
        return cls((SparseField("query_topic", num_topics), SparseField("query_intent", num_intents),
                    SparseField("ad_id", 1 << 31, ad_buckets), SparseField("advertiser", num_advertisers),
                    SparseField("ad_topic", num_topics)), (("ad_id", "query_topic", cross_buckets),))

    @property
    def cross_names(self) -> tuple[str, ...]:
        """Each cross as "a*b"."""
        return tuple(f"{a}*{b}" for a, b, _ in self.crosses)

    def without_crosses(self, names: list[str] | tuple[str, ...]) -> FeatureSpec:
        """The same columns without the crosses `names` ("a*b"); ValueError naming one this spec lacks."""
        unknown = [name for name in names if name not in self.cross_names]
        if unknown:
            raise ValueError(f"no cross {unknown[0]!r} in this world; its crosses: {', '.join(self.cross_names)}")
        return FeatureSpec(self.fields, tuple(c for c, name in zip(self.crosses, self.cross_names) if name not in names))

    def index(self, name: str) -> int:
        """The raw column of field `name`."""
        return next(i for i, f in enumerate(self.fields) if f.name == name)

    def vocabulary(self, name: str) -> int:
        return self.fields[self.index(name)].vocabulary

    @property
    def field_sizes(self) -> tuple[int, ...]:
        """Embedding rows per model field: the raw fields, then the hashed crosses."""
        return (*(f.rows for f in self.fields), *(buckets for _, _, buckets in self.crosses))

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.field_sizes)[:-1]]).astype(np.int32)


def _hash(x: jax.Array, buckets: int) -> jax.Array:
    """Multiplicative (Knuth) hash of non-negative ids (wrapped to uint32) into [0, buckets)."""
    mixed = x.astype(jnp.uint32) * jnp.uint32(2654435761)
    return ((mixed >> 7) % jnp.uint32(buckets)).astype(jnp.int32)


def embedding_ids(spec: FeatureSpec, raw: jax.Array) -> jax.Array:
    """Raw fields int32[..., F] → rows of the shared embedding table int32[..., F + crosses]."""
    columns = [_hash(raw[..., i], f.buckets) if f.buckets else raw[..., i] for i, f in enumerate(spec.fields)]
    for a, b, buckets in spec.crosses:
        pair = raw[..., spec.index(a)].astype(jnp.uint32) * jnp.uint32(spec.vocabulary(b)) \
            + raw[..., spec.index(b)].astype(jnp.uint32)
        columns.append(_hash(pair, buckets))
    return jnp.stack(columns, axis=-1) + jnp.asarray(spec.offsets)


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

    @classmethod
    def from_config(cls, config: Any, width_multiplier: int = 1) -> TowerShape:
        """The towers a model config describes; `width_multiplier` widens the Q tower (a distillation teacher)."""
        return cls(embedding_dim=config.embedding_dim,
                   quality_hidden=tuple(width_multiplier * h for h in config.quality_hidden),
                   ui_hidden=tuple(config.ui_hidden), interaction_dim=config.interaction_dim,
                   hidden=HiddenLayers.from_config(config), dcn_layers=config.dcn_layers, dcn_rank=config.dcn_rank,
                   bottleneck_dim=config.bottleneck_dim, embedding_init_std=config.embedding_init_std,
                   position_feature=config.position_feature)

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

    def embeddings(self, raw: jax.Array, rows: jax.Array | None = None) -> jax.Array:
        """The embedding input layer e_0 (after the cross layers, if any): float32[..., fields × embedding_dim].

        `rows` (int32[..., fields]): the table rows to look up instead of `embedding_ids(raw)` — the sparse training
        step's, whose table holds only the rows its batch uses (`models.trainer`)."""
        x = self.embed(embedding_ids(self.spec, raw) if rows is None else rows)
        x = x.reshape(*x.shape[:-2], -1)
        return self.cross(x) if self.cross is not None else x

    def __call__(self, raw: jax.Array, rows: jax.Array | None = None) -> jax.Array:
        return self.mlp(self.embeddings(raw, rows))


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


class FactorizedCtr(nnx.Module):
    """One component of the factorized model: logit = Q(query, ad) · U(treatment, position) (Factory Floor §6)."""

    def __init__(self, spec: FeatureSpec, treatment_features: np.ndarray, num_positions: int, shape: TowerShape, *,
                 rngs: nnx.Rngs):
        self.quality = QualityTower(spec, shape, shape.interaction_dim, rngs=rngs)
        self.ui = UiTower(treatment_features, num_positions, shape, shape.interaction_dim, rngs=rngs)

    def logit(self, raw: jax.Array, treatment: jax.Array, position: jax.Array, rows: jax.Array | None = None) -> jax.Array:
        return jnp.sum(self.quality(raw, rows) * self.ui(treatment, position), axis=-1)

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

    def logit(self, raw: jax.Array, treatment: jax.Array, position: jax.Array, rows: jax.Array | None = None) -> jax.Array:
        return self._head(self.quality.embeddings(raw, rows), self.ui(treatment, position))

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

    @classmethod
    def from_config(cls, config: Any, spec: FeatureSpec, treatment_features: np.ndarray, num_positions: int, *,
                    width_multiplier: int = 1, rngs: nnx.Rngs) -> CtrModel:
        """The model a model config (models.config.ModelConfig) describes, for the given vocabulary and page."""
        return cls(spec, treatment_features, num_positions, TowerShape.from_config(config, width_multiplier),
                   transfer=config.transfer, architecture=config.architecture, ensemble_size=config.ensemble_size,
                   rngs=rngs)

    def component_logits(self, raw: jax.Array, treatment: jax.Array, position: jax.Array,
                         rows: jax.Array | None = None) -> jax.Array:
        """Logits float32[B, E] of each component for raw fields int32[B, F] shown in (treatment, position) int32[B]
        (`rows`: the Q-table rows to look up instead of the raw fields', `QualityTower.embeddings`)."""
        return jnp.stack([c.logit(raw, treatment, position, rows) for c in self.components], axis=-1)

    def predict(self, raw: jax.Array, treatment: jax.Array, position: jax.Array) -> jax.Array:
        """pCTR float32[B]: the components' probabilities averaged."""
        return jnp.mean(transfer(self.component_logits(raw, treatment, position), self.transfer), axis=-1)

    def score_candidates(self, raw: jax.Array) -> jax.Array:
        """pCTR float32[B, N, T, K] for raw fields int32[B, N, F]."""
        total = sum(transfer(c.candidate_logits(raw), self.transfer) for c in self.components)
        return total / len(self.components)
