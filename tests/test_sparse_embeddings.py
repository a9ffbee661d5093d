"""Sparse embedding updates: a step touches only the rows its batch uses, with the same result as the dense step
wherever the optimizer's step on an unused row is zero (AdaGrad, CowClip), and lazily elsewhere (Adam)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from models import CtrModel, Examples, FeatureSpec, OnlineTrainer, TowerShape, TrainConfig
from models.ctr import embedding_ids

SPEC = FeatureSpec.teaching(num_topics=5, num_intents=3, num_advertisers=7, ad_buckets=4096, cross_buckets=4096)
FEATURES = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
SHAPE = TowerShape(embedding_dim=4, quality_hidden=(16,), ui_hidden=(8,), interaction_dim=4)


def _examples(n: int = 640) -> Examples:
    rng = np.random.default_rng(3)
    highs = (5, 3, 300, 7, 5)
    raw = np.stack([rng.integers(0, h, n) for h in highs], axis=-1).astype(np.int32)
    return Examples(raw, rng.integers(0, 3, n).astype(np.int32), rng.integers(0, 4, n).astype(np.int32),
                    (rng.random(n) < 0.2).astype(np.float32), query=np.arange(n) // 4)


def _table(trainer: OnlineTrainer, component: int = 0) -> np.ndarray:
    return np.asarray(trainer.params["components"][component]["quality"]["embed"]["embedding"][...])


def _trained(sparse: bool, ensemble_size: int = 1, **options) -> OnlineTrainer:
    model = CtrModel(SPEC, FEATURES, 4, SHAPE, ensemble_size=ensemble_size, rngs=nnx.Rngs(0))
    trainer = OnlineTrainer(model, TrainConfig(batch_size=64, sparse_embeddings=sparse, **options))
    trainer.train(_examples(), flush=True)
    return trainer


@pytest.mark.parametrize("options", [dict(), dict(cowclip=True, cowclip_r=0.01), dict(ensemble_size=2)],
                         ids=["adagrad", "cowclip", "ensemble"])
def test_sparse_adagrad_steps_equal_the_dense_ones(options):
    ensemble = options.pop("ensemble_size", 1)
    dense, sparse = _trained(False, ensemble, **options), _trained(True, ensemble, **options)
    for a, b in zip(jax.tree.leaves(dense.params), jax.tree.leaves(sparse.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
    for a, b in zip(jax.tree.leaves(dense.opt_state), jax.tree.leaves(sparse.opt_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
    moved = np.any(_table(sparse) != _table(_trained(True, ensemble, learning_rate=1e-8)), axis=1)
    assert moved.sum() > 100  # the tables did train


def test_sparse_adam_is_lazy_rows_a_batch_skips_keep_still():
    """Dense Adam moves a row on every step after its first gradient (momentum); sparse (lazy) Adam only on the
    steps whose batch uses it."""
    first, second = _examples().slice(0, 64), _examples().slice(64, 128)
    skipped = np.zeros(sum(SPEC.field_sizes), bool)
    skipped[np.asarray(embedding_ids(SPEC, first.raw)).reshape(-1)] = True
    skipped[np.asarray(embedding_ids(SPEC, second.raw)).reshape(-1)] = False  # used by the first batch only
    for sparse, moves in ((False, True), (True, False)):
        model = CtrModel(SPEC, FEATURES, 4, SHAPE, rngs=nnx.Rngs(0))
        trainer = OnlineTrainer(model, TrainConfig(batch_size=64, optimizer="adam", learning_rate=0.01,
                                                   sparse_embeddings=sparse))
        trainer.train(first)
        before = _table(trainer)
        trainer.train(second)
        changed = np.any(_table(trainer) != before, axis=1)[skipped]
        assert skipped.sum() > 20 and (changed.all() if moves else not changed.any())


def test_sparse_embeddings_refuse_a_model_whose_tables_cannot_be_told_apart():
    model = CtrModel(FeatureSpec.teaching(3, 2, 3, 3, 2), FEATURES, 4,  # 16 rows of 4: as the (16, 4) kernel
                     TowerShape(embedding_dim=4, quality_hidden=(16,), ui_hidden=(4,), interaction_dim=4),
                     rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="sparse_embeddings"):
        OnlineTrainer(model, TrainConfig(sparse_embeddings=True))


def test_a_deployed_snapshot_and_a_saved_state_outlive_the_donated_training_buffers():
    model = CtrModel(SPEC, FEATURES, 4, SHAPE, rngs=nnx.Rngs(0))
    trainer = OnlineTrainer(model, TrainConfig(batch_size=64, sparse_embeddings=True))
    examples = _examples()
    trainer.train(examples.slice(0, 320))
    deployed, saved = trainer.snapshot(), trainer.state()
    table = np.asarray(deployed["components"][0]["quality"]["embed"]["embedding"][...]).copy()
    trainer.train(examples.slice(320, 640))
    assert np.array_equal(np.asarray(deployed["components"][0]["quality"]["embed"]["embedding"][...]), table)
    assert not np.array_equal(_table(trainer), table)
    trainer.restore(saved)
    assert np.array_equal(_table(trainer), table)


def test_sparse_shampoo_trains_and_the_model_handed_in_keeps_its_arrays():
    """Donation needs buffers of the trainer's own: Shampoo's state shares one empty array among leaves, and the
    model's parameters must outlive the trainer's first step (a reviewer's cases)."""
    model = CtrModel(SPEC, FEATURES, 4, SHAPE, rngs=nnx.Rngs(0))
    trainer = OnlineTrainer(model, TrainConfig(batch_size=64, sparse_embeddings=True, optimizer="shampoo",
                                               shampoo_block_size=4))
    trainer.train(_examples(), flush=True)
    assert np.isfinite(_table(trainer)).all()
    assert np.asarray(model.components[0].quality.embed.embedding[...]).shape == _table(trainer).shape


def test_rows_only_padding_uses_keep_still_under_embedding_l2():
    examples = _examples(100)  # 100 examples in batches of 64: the flush pads 28 zero-weight rows (raw ids 0)
    padding_rows = np.asarray(embedding_ids(SPEC, np.zeros((1, 5), np.int32))).reshape(-1)
    used = np.asarray(embedding_ids(SPEC, examples.raw)).reshape(-1)
    quiet = np.setdiff1d(padding_rows, used)
    assert quiet.size
    model = CtrModel(SPEC, FEATURES, 4, SHAPE, rngs=nnx.Rngs(0))
    before = np.asarray(model.components[0].quality.embed.embedding[...]).copy()
    trainer = OnlineTrainer(model, TrainConfig(batch_size=64, sparse_embeddings=True, embedding_l2=0.01))
    trainer.train(examples, flush=True)
    assert np.array_equal(_table(trainer)[quiet], before[quiet])
