"""Online training does not depend on how the log stream is cut into `train()` calls (padding is not a step)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from models import CtrModel, Examples, FeatureSpec, OnlineTrainer, TowerShape, TrainConfig

SPEC = FeatureSpec.teaching(num_topics=5, num_intents=3, num_advertisers=7, ad_buckets=64, cross_buckets=128)
FEATURES = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
SHAPE = TowerShape(embedding_dim=4, quality_hidden=(16,), ui_hidden=(8,), interaction_dim=4)
BATCH = 64
# 768 examples in four calls of 1, 4, 3 and 4 steps: the third pads to 4 steps before the fourth trains real ones
# (one call: 12 steps padded to 16)
CUTS = (100, 250, 200, 218)


def _examples(n: int = sum(CUTS)) -> Examples:
    rng = np.random.default_rng(3)
    highs = (5, 3, 1000, 7, 5)
    raw = np.stack([rng.integers(0, h, n) for h in highs], axis=-1).astype(np.int32)
    return Examples(raw, rng.integers(0, 3, n).astype(np.int32), rng.integers(0, 4, n).astype(np.int32),
                    (rng.random(n) < 0.2).astype(np.float32), query=np.arange(n) // 4)


def _trainer(config: TrainConfig) -> OnlineTrainer:
    model = CtrModel(SPEC, FEATURES, 4, SHAPE, rngs=nnx.Rngs(0))
    teacher = None
    if config.distillation_weight:
        teacher_model = CtrModel(SPEC, FEATURES, 4, SHAPE, rngs=nnx.Rngs(1))
        teacher = OnlineTrainer(teacher_model, TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=BATCH))
    return OnlineTrainer(model, config, teacher=teacher, max_ads_per_query=4)


CONFIGS = {
    "adagrad": TrainConfig(optimizer="adagrad", batch_size=BATCH),
    "adam": TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=BATCH),
    "shampoo": TrainConfig(optimizer="shampoo", shampoo_block_size=4, shampoo_update_every=3, batch_size=BATCH),
    "adagrad_embedding_l2": TrainConfig(optimizer="adagrad", embedding_l2=0.01, batch_size=BATCH),
    # the duals and the curriculum's example count move only on real steps too
    "bias_duals_and_curriculum": TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=BATCH,
                                             bias_constraints=["position", "pctr_decile"], rank_loss_weight=0.3,
                                             loss_curriculum="linear", loss_curriculum_examples=500),
    # an Adam teacher (padding would move its moments) whose PV predictions are the student's soft labels
    "adam_teacher": TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=BATCH, distillation_weight=0.5),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_same_examples_in_one_call_or_many_give_the_same_model(name):
    examples = _examples()
    whole, pieces = _trainer(CONFIGS[name]), _trainer(CONFIGS[name])
    whole_pv, covered = whole.train(examples, flush=True)
    assert covered == examples.size
    pieces_pv, start = [], 0
    for i, size in enumerate(CUTS):
        pv, _ = pieces.train(examples.slice(start, start + size), flush=i == len(CUTS) - 1)
        pieces_pv.append(pv)
        start += size
    np.testing.assert_allclose(np.concatenate(pieces_pv), whole_pv, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(pieces.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(whole.opt_state), jax.tree.leaves(pieces.opt_state)):  # step counts too
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pieces.duals), np.asarray(whole.duals), rtol=1e-5, atol=1e-7)
    assert float(whole.seen) == float(pieces.seen) == examples.size
    if whole.config.bias_constraints:
        assert float(np.abs(np.asarray(whole.duals)).max()) > 1e-3  # the duals did move
    if whole.teacher is not None:
        for a, b in zip(jax.tree.leaves((whole.teacher.params, whole.teacher.opt_state)),
                        jax.tree.leaves((pieces.teacher.params, pieces.teacher.opt_state))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    moved = sum(float(np.abs(np.asarray(a) - np.asarray(b)).sum())
                for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(_trainer(CONFIGS[name]).params)))
    assert moved > 0.1  # the comparison is between trained models
