"""The factorized model and the online trainer do what they claim."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from models import CtrModel, Examples, FeatureSpec, OnlineTrainer, Scorer, TowerShape, TrainConfig
from models.transfers import log_likelihood_terms, transfer

SPEC = FeatureSpec.teaching(num_topics=5, num_intents=3, num_advertisers=7, ad_buckets=64, cross_buckets=128)
FEATURES = np.array([[0, 0], [1, 0], [0, 1]], np.float32)


def _model(kind: str = "sigmoid", seed: int = 0, **options) -> CtrModel:
    shape = TowerShape(embedding_dim=4, quality_hidden=(16,), ui_hidden=(8,), interaction_dim=4)
    return CtrModel(SPEC, FEATURES, 4, shape, transfer=kind, rngs=nnx.Rngs(seed), **options)


def _raw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    highs = (5, 3, 1000, 7, 5)
    return np.stack([rng.integers(0, h, shape) for h in highs], axis=-1).astype(np.int32)


@pytest.mark.parametrize("kind, options", [("sigmoid", {}), ("exp", {}), ("sigmoid", {"architecture": "unfactorized"}),
                                           ("sigmoid", {"ensemble_size": 3})])
def test_candidate_scoring_equals_per_example_scoring(kind, options):
    model, rng = _model(kind, **options), np.random.default_rng(0)
    raw = _raw(rng, (6, 5))
    scores = np.asarray(model.score_candidates(raw))  # [6, 5, 3, 4]
    b, n, t, k = np.meshgrid(*(np.arange(s) for s in scores.shape), indexing="ij")
    direct = model.predict(raw[b.ravel(), n.ravel()], t.ravel(), k.ravel())
    np.testing.assert_allclose(scores.ravel(), np.asarray(direct), rtol=1e-5, atol=1e-7)
    assert np.all((scores > 0) & (scores <= 1))


def test_pv_predictions_are_made_before_the_update():
    model, rng = _model(), np.random.default_rng(1)
    n = 64
    examples = Examples(_raw(rng, (n,)), rng.integers(0, 3, n).astype(np.int32), rng.integers(0, 4, n).astype(np.int32),
                        (rng.random(n) < 0.3).astype(np.float32))
    before = np.asarray(model.predict(examples.raw, examples.treatment, examples.position))
    trainer = OnlineTrainer(model, TrainConfig(batch_size=32), optimizer=optax.adagrad(0.5))
    predictions, scored = trainer.train(examples)
    assert scored == n
    np.testing.assert_allclose(predictions[:32], before[:32], rtol=1e-5)  # first batch: the initial model
    assert not np.allclose(predictions[32:], before[32:], rtol=1e-3)  # second batch: after one step


def test_partial_batches_wait_and_flush_trains_them():
    rng = np.random.default_rng(2)
    trainer = OnlineTrainer(_model(), TrainConfig(batch_size=32), optimizer=optax.adagrad(0.1))
    examples = Examples(_raw(rng, (40,)), np.zeros(40, np.int32), np.zeros(40, np.int32), np.zeros(40, np.float32))
    assert trainer.train(examples)[1] == 32
    assert trainer.train(None)[1] == 0
    assert trainer.train(None, flush=True)[1] == 8


def test_online_training_learns_a_planted_position_effect():
    """Clicks depend on position only; after training the model's pCTR ratio by position matches it."""
    rng = np.random.default_rng(3)
    trainer = OnlineTrainer(_model(), TrainConfig(batch_size=256), optimizer=optax.adagrad(0.1, initial_accumulator_value=0.1))
    true = np.array([0.2, 0.1, 0.05, 0.02])
    for _ in range(40):
        position = rng.integers(0, 4, 2048).astype(np.int32)
        examples = Examples(np.zeros((2048, 5), np.int32), np.zeros(2048, np.int32), position,
                            (rng.random(2048) < true[position]).astype(np.float32))
        trainer.train(examples)
    scores = np.asarray(Scorer(trainer)(trainer.snapshot(), np.zeros((1, 1, 5), np.int32)))[0, 0, 0, :]
    np.testing.assert_allclose(scores, true, rtol=0.15)


def test_transfer_rejects_unknown_kind():
    with pytest.raises(ValueError, match="transfer: 'tanh' is not allowed"):
        _model("tanh")


def test_exp_transfer_is_exp_below_one_half_and_keeps_a_gradient_everywhere():
    z = jnp.linspace(-8.0, 8.0, 321)
    p = transfer(z, "exp")
    below = z <= -np.log(2.0)
    np.testing.assert_allclose(p[below], np.exp(z[below]), rtol=1e-6)  # exactly exp where CTR ≤ ½
    assert float(p.max()) < 1.0 and np.all(np.diff(np.asarray(p)) > 0)
    slope = jax.vmap(jax.grad(lambda x: transfer(x, "exp")))(z)
    assert float(slope.min()) > 0  # no flat region
    knee = -np.log(2.0)
    left, right = (float(jax.grad(lambda x: transfer(x, "exp"))(jnp.float32(knee + d))) for d in (-1e-4, 1e-4))
    assert left == pytest.approx(right, rel=1e-3)  # C¹ at the knee
    at_knee = float(jax.grad(lambda x: transfer(x, "exp"))(jnp.float32(knee)))
    assert at_knee == pytest.approx(0.5, rel=1e-5)  # and the whole slope exactly at it
    assert float(jax.grad(lambda x: log_likelihood_terms(x, "exp")[1])(jnp.float32(knee))) == pytest.approx(-1.0, rel=1e-5)
    # a cell predicting ~1 that keeps not being clicked is pushed down: the log-loss gradient of a non-click
    # on the logit is 1 above the knee, not 0 as with a clamp at CTR 1
    grad_non_click = jax.vmap(jax.grad(lambda x: -log_likelihood_terms(x, "exp")[1]))(jnp.array([0.0, 2.0, 6.0]))
    np.testing.assert_allclose(grad_non_click, 1.0, rtol=1e-5)
    log_p, log_not_p = log_likelihood_terms(z, "exp")
    np.testing.assert_allclose(np.exp(log_p), p, rtol=1e-5)
    z64 = np.asarray(z, np.float64)
    np.testing.assert_allclose(np.exp(log_not_p), np.where(z64 <= knee, -np.expm1(z64), 0.25 * np.exp(-z64)), rtol=1e-5)
