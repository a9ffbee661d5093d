"""The model and trainer a scenario describes, and how the loop samples and orders its training data."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from models import CtrModel, DataConfig, OnlineTrainer
from simulator.config import ConfigError, Scenario
from simulator.world.ground_truth import World


def build_model(scenario: Scenario, world: World, width_multiplier: int = 1, seed_offset: int = 0) -> CtrModel:
    """The scenario's CTR model, initialised from the nuisance seed (`width_multiplier` widens the Q tower: teachers)."""
    m = scenario.model
    try:
        spec = world.feature_spec(m).without_crosses(m.omit_crosses)
    except ValueError as err:
        raise ConfigError(f"model.omit_crosses: {err}") from None
    key = jax.random.key(m.init_seed + 7919 * scenario.run.seed + 104_729 * seed_offset)
    return CtrModel.from_config(m, spec, world.treatment_features, world.num_slots, width_multiplier=width_multiplier,
                                rngs=nnx.Rngs(params=key))


def build_trainer(scenario: Scenario, world: World) -> OnlineTrainer:
    """The online trainer the scenario's [train] section describes, with a teacher when it distils."""
    t = scenario.train
    teacher = None
    if t.distillation_weight:
        teacher = OnlineTrainer(build_model(scenario, world, t.teacher_width_multiplier, seed_offset=1), t.teacher())
    return OnlineTrainer(build_model(scenario, world), t, teacher=teacher, max_ads_per_query=scenario.world.num_positions)


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
