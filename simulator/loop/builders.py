"""The model and trainer a scenario describes, and how the loop samples and orders its training data."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from models import (
    CtrModel,
    FeatureSpec,
    HiddenLayers,
    LossConfig,
    OnlineTrainer,
    OptimizerConfig,
    TowerShape,
    make_optimizer,
)
from models.activations import activation
from simulator.config import DataConfig, Scenario
from simulator.world.ground_truth import World


def build_model(scenario: Scenario, world: World, width_multiplier: int = 1, seed_offset: int = 0) -> CtrModel:
    """The scenario's CTR model, initialised from the nuisance seed (`width_multiplier` widens the Q tower: teachers)."""
    w, m = scenario.world, scenario.model
    spec = FeatureSpec(w.num_topics, w.num_intents, w.num_advertisers, m.ad_buckets, m.cross_buckets)
    shape = TowerShape(
        embedding_dim=m.embedding_dim, quality_hidden=tuple(width_multiplier * h for h in m.quality_hidden),
        ui_hidden=tuple(m.ui_hidden), interaction_dim=m.interaction_dim, dcn_layers=m.dcn_layers, dcn_rank=m.dcn_rank,
        bottleneck_dim=m.bottleneck_dim, embedding_init_std=m.embedding_init_std, position_feature=m.position_feature,
        hidden=HiddenLayers(
            activation=activation(m.activation, smelu_beta=m.smelu_beta, gsmelu_params=dict(
                alpha=m.gsmelu_alpha, beta=m.gsmelu_beta, g_minus=m.gsmelu_g_minus, g_plus=m.gsmelu_g_plus, t=m.gsmelu_t)),
            normalization=m.normalization, weight_norm=m.weight_norm, activation_clip=m.activation_clip))
    key = jax.random.key(m.init_seed + 7919 * scenario.run.seed + 104_729 * seed_offset)
    return CtrModel(spec, world.treatment_features, w.num_positions, shape, transfer=m.transfer,
                    architecture=m.architecture, ensemble_size=m.ensemble_size, rngs=nnx.Rngs(params=key))


def build_trainer(scenario: Scenario, world: World) -> OnlineTrainer:
    """The online trainer the scenario asks for: optimizer, loss terms, teacher (distillation), devices."""
    t = scenario.train
    optimizer = make_optimizer(OptimizerConfig(
        kind=t.optimizer, learning_rate=t.learning_rate, initial_accumulator=t.adagrad_initial_accumulator,
        embedding_learning_rate=t.embedding_learning_rate, embedding_l2=t.embedding_l2, batch_size=t.batch_size,
        base_batch_size=t.scaling_base_batch_size, cowclip=t.cowclip, cowclip_r=t.cowclip_r,
        cowclip_zeta=t.cowclip_zeta, shampoo_block_size=t.shampoo_block_size,
        shampoo_update_every=t.shampoo_update_every, shampoo_momentum=t.shampoo_momentum,
        shampoo_start_preconditioning=t.shampoo_start_preconditioning))
    losses = LossConfig(
        rank_weight=t.rank_loss_weight, distillation_weight=t.distillation_weight,
        anti_distillation_weight=t.anti_distillation_weight, curriculum=t.loss_curriculum,
        curriculum_examples=t.loss_curriculum_examples, bias_slices=tuple(t.bias_constraints),
        bias_alpha=t.bias_alpha, bias_learning_rate=t.bias_learning_rate)
    teacher = None
    if t.distillation_weight:
        teacher_optimizer = make_optimizer(OptimizerConfig(learning_rate=t.learning_rate,
                                                           initial_accumulator=t.adagrad_initial_accumulator))
        teacher = OnlineTrainer(build_model(scenario, world, t.teacher_width_multiplier, seed_offset=1),
                                teacher_optimizer, t.batch_size, num_devices=t.num_devices)
    return OnlineTrainer(build_model(scenario, world), optimizer, t.batch_size, losses=losses, teacher=teacher,
                         num_devices=t.num_devices, max_ads_per_query=scenario.world.num_positions)


# The ideal system's "model": the world's true CTR, computed where the auction runs.


def sampling_rates(data: DataConfig, click: np.ndarray, position: np.ndarray, pctr: np.ndarray) -> np.ndarray:
    """Each logged example's keep probability (Factory Floor §3.3): the smallest rate of the conditions it meets."""
    rate = np.where(click > 0, 1.0, data.negative_keep_rate)
    rate = np.where(position >= data.low_position_from, np.minimum(rate, data.low_position_keep_rate), rate)
    low_loss = (click == 0) & (pctr < data.low_pctr_threshold)
    return np.where(low_loss, np.minimum(rate, data.low_pctr_keep_rate), rate).astype(np.float32)


def uniform_hash(query: np.ndarray, position: np.ndarray, salt: int = 0) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) per (query number, position, salt < 256): splitmix64 finaliser."""
    x = np.asarray(query, np.uint64) * np.uint64(8) + np.asarray(position, np.uint64) + (np.uint64(salt) << np.uint64(56))
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def training_order(query: np.ndarray, shuffle_seed: int) -> np.ndarray:
    """Rows in a query order drawn from `shuffle_seed` (a fixed hash: no RNG state), each query's rows kept together."""
    return np.argsort(uniform_hash(query, 0, salt=shuffle_seed), kind="stable")
