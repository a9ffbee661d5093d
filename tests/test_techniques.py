"""Each model technique does its job in isolation: losses, optimizers, clipping, architectures, sampling, devices."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from models import (
    CtrModel,
    Examples,
    FeatureSpec,
    HiddenLayers,
    OnlineTrainer,
    TowerShape,
    TrainConfig,
    make_optimizer,
)
from models.ctr import embedding_ids
from models.layers import Mlp
from models.losses import (
    anti_distillation_term,
    batch_deciles,
    curriculum_ramp,
    focal_loss_term,
    log_loss_term,
    rank_loss_term,
)
from models.metrics import log_loss
from models.optim import cowclip, inverse_pth_root, shampoo
from models.config import DataConfig
from simulator.loop.builders import sampling_rates, training_order, uniform_hash

SPEC = FeatureSpec.teaching(num_topics=5, num_intents=3, num_advertisers=7, ad_buckets=64, cross_buckets=128)
FEATURES = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
SHAPE = TowerShape(embedding_dim=4, quality_hidden=(16,), ui_hidden=(8,), interaction_dim=4)


def _model(seed: int = 0, shape: TowerShape = SHAPE, **options) -> CtrModel:
    return CtrModel(SPEC, FEATURES, 4, shape, rngs=nnx.Rngs(seed), **options)


def _examples(rng: np.random.Generator, n: int, ctr: float = 0.2) -> Examples:
    highs = (5, 3, 1000, 7, 5)
    raw = np.stack([rng.integers(0, h, n) for h in highs], axis=-1).astype(np.int32)
    return Examples(raw, rng.integers(0, 3, n).astype(np.int32), rng.integers(0, 4, n).astype(np.int32),
                    (rng.random(n) < ctr).astype(np.float32), query=np.arange(n) // 4)


# ---- loss terms ---------------------------------------------------------------------------------
def test_rank_loss_matches_brute_force_over_pairs_of_the_same_query():
    rng = np.random.default_rng(0)
    logit = rng.normal(size=40).astype(np.float32)
    label = (rng.random(40) < 0.4).astype(np.float32)
    query = np.repeat(np.arange(10), 4)
    pairs = [(i, j) for i in range(40) for j in range(40) if query[i] == query[j] and label[i] == 1 and label[j] == 0]
    brute = np.mean([-np.log(1 / (1 + np.exp(-(logit[i] - logit[j])))) for i, j in pairs])
    got = float(rank_loss_term(jnp.asarray(logit), jnp.asarray(label), jnp.ones(40), jnp.asarray(query), max_gap=4))
    np.testing.assert_allclose(got, brute, rtol=1e-5)
    shifted = float(rank_loss_term(jnp.asarray(logit + 3.0), jnp.asarray(label), jnp.ones(40), jnp.asarray(query), 4))
    np.testing.assert_allclose(shifted, got, rtol=1e-5)  # only differences within a query matter


def test_curriculum_ramps_from_zero_to_full_weight():
    assert float(curriculum_ramp(jnp.float32(0), "linear", 100)) == 0.0
    assert float(curriculum_ramp(jnp.float32(50), "linear", 100)) == pytest.approx(0.5)
    assert float(curriculum_ramp(jnp.float32(50), "cosine", 100)) == pytest.approx(0.5)
    assert float(curriculum_ramp(jnp.float32(10), "cosine", 100)) < 0.1
    assert float(curriculum_ramp(jnp.float32(500), "linear", 100)) == 1.0
    assert float(curriculum_ramp(jnp.float32(0), "none", 100)) == 1.0


def test_batch_deciles_ignore_padding_rows():
    prediction = jnp.concatenate([jnp.linspace(0.01, 0.5, 100), jnp.zeros(28)])
    weight = jnp.concatenate([jnp.ones(100), jnp.zeros(28)])
    deciles = np.asarray(batch_deciles(prediction, weight))
    assert np.array_equal(np.bincount(deciles[:100], minlength=10), np.full(10, 10))
    assert np.all(np.diff(deciles[:100]) >= 0)


def test_anti_distillation_rewards_spread_between_components():
    same = jnp.full((8, 3), 0.2)
    spread = jnp.tile(jnp.array([0.1, 0.2, 0.3]), (8, 1))
    assert float(anti_distillation_term(same, jnp.ones(8))) == pytest.approx(0.0, abs=1e-9)
    # pairs (0.1, 0.2), (0.1, 0.3), (0.2, 0.3): mean squared difference 0.02
    assert float(anti_distillation_term(spread, jnp.ones(8))) == pytest.approx(-0.02, rel=1e-5)
    assert float(anti_distillation_term(jnp.full((8, 1), 0.2), jnp.ones(8))) == 0.0


def test_bias_constraint_duals_settle_at_slice_bias_over_alpha():
    """With the model frozen (learning rate ~0), the ascent on λ_k converges to (mean bias on S_k) / α."""
    rng = np.random.default_rng(1)
    alpha = 0.5
    trainer = OnlineTrainer(_model(), TrainConfig(batch_size=256, bias_constraints=["position"], bias_alpha=alpha,
                                                   bias_learning_rate=0.5), optimizer=optax.sgd(0.0))
    examples = _examples(rng, 256 * 200)
    predictions, _ = trainer.train(examples)
    bias = [np.mean(examples.label[examples.position == k] - predictions[examples.position == k]) for k in range(4)]
    np.testing.assert_allclose(np.asarray(trainer.duals), np.array(bias) / alpha, atol=0.05)  # bias/α ≈ −0.55


def test_bias_constraints_pull_slow_learning_slices_onto_their_true_rate():
    """Clicks = ad quality × position effect; with a slow learning rate, log loss alone leaves the low positions
    over-predicted for long; the position duals pull every slice's mean pCTR onto its true mean CTR."""
    quality = np.random.default_rng(2).uniform(0.02, 0.4, 1000)
    examination = np.array([1.0, 0.5, 0.25, 0.1])

    def slice_bias(config: TrainConfig) -> np.ndarray:
        rng = np.random.default_rng(2)
        trainer = OnlineTrainer(_model(), config, optimizer=optax.adagrad(0.02))
        ex = _examples(rng, 2048 * 40)
        truth = quality[ex.raw[:, 2]] * examination[ex.position]
        predictions, _ = trainer.train(ex._replace(label=(rng.random(ex.size) < truth).astype(np.float32)))
        late = slice(ex.size // 2, None)
        position, truth, predictions = ex.position[late], truth[late], predictions[late]
        return np.array([predictions[position == k].sum() / truth[position == k].sum() - 1 for k in range(4)])

    plain = slice_bias(TrainConfig(batch_size=256))
    constrained = slice_bias(TrainConfig(batch_size=256, bias_constraints=["position"], bias_alpha=0.01,
                                         bias_learning_rate=0.1))
    assert np.max(np.abs(plain)) > 0.2  # the setting has slice bias to remove
    assert np.max(np.abs(constrained)) < 0.5 * np.max(np.abs(plain))


# ---- distillation, ensembles ----------------------------------------------------------------------
def test_distillation_student_trains_on_the_teachers_pv_predictions():
    rng = np.random.default_rng(3)
    examples = _examples(rng, 1024)
    teacher = OnlineTrainer(_model(seed=5), TrainConfig(batch_size=256), optimizer=optax.adagrad(0.1))
    student = OnlineTrainer(_model(), TrainConfig(batch_size=256, distillation_weight=1.0), optimizer=optax.adagrad(0.1),
                            teacher=teacher)
    student.train(examples)
    # the same student trained on the teacher's PV predictions as labels, without a teacher
    reference_teacher = OnlineTrainer(_model(seed=5), TrainConfig(batch_size=256), optimizer=optax.adagrad(0.1))
    soft, _ = reference_teacher.train(examples)
    reference = OnlineTrainer(_model(), TrainConfig(batch_size=256), optimizer=optax.adagrad(0.1))
    reference.train(examples._replace(label=soft.astype(np.float32)))
    for a, b in zip(jax.tree.leaves(student.params), jax.tree.leaves(reference.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(teacher.params), jax.tree.leaves(reference_teacher.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_focal_loss_is_the_log_loss_at_gamma_zero_and_down_weights_easy_examples():
    logit = jnp.array([4.0, -4.0, 0.3, -0.2])  # an easy positive, an easy negative, two hard ones
    label, weight = jnp.array([1.0, 0.0, 0.0, 1.0]), jnp.ones(4)
    assert float(focal_loss_term(logit, label, weight, "sigmoid", 0.0)) == pytest.approx(
        float(log_loss_term(logit, label, weight, "sigmoid")), rel=1e-6)
    per_example = jax.vmap(jax.grad(lambda z, y: focal_loss_term(z[None], y[None], jnp.ones(1), "sigmoid", 2.0)))
    plain = jax.vmap(jax.grad(lambda z, y: log_loss_term(z[None], y[None], jnp.ones(1), "sigmoid")))
    shrink = np.abs(per_example(logit, label)) / np.abs(plain(logit, label))
    assert shrink[0] < 1e-3 and shrink[1] < 1e-3 and np.all(shrink[2:] > 0.1)  # easy examples barely pull


def test_the_focal_term_joins_the_trainers_loss():
    """With γ = 0 the focal term is a second log loss: plain SGD on log loss + 1 × focal = SGD at twice the rate."""
    examples = _examples(np.random.default_rng(6), 512)

    def trained(config: TrainConfig, rate: float):
        trainer = OnlineTrainer(_model(), config, optimizer=optax.sgd(rate))
        trainer.train(examples)
        return jax.tree.leaves(trainer.params)

    focal = trained(TrainConfig(batch_size=256, focal_loss_weight=1.0, focal_gamma=0.0), 0.05)
    for a, b in zip(focal, trained(TrainConfig(batch_size=256), 0.1)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    with_gamma = trained(TrainConfig(batch_size=256, focal_loss_weight=1.0, focal_gamma=2.0), 0.05)
    assert max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(with_gamma, focal)) > 1e-4


def test_anti_distillation_drives_ensemble_components_apart():
    rng = np.random.default_rng(4)
    examples = _examples(rng, 256 * 40)

    def component_spread(weight: float) -> float:
        model = _model(ensemble_size=3)
        trainer = OnlineTrainer(model, TrainConfig(batch_size=256, anti_distillation_weight=weight), optimizer=optax.adagrad(0.1))
        trainer.train(examples)
        trained = nnx.merge(trainer.graphdef, trainer.params, trainer.constants)
        probabilities = jax.nn.sigmoid(trained.component_logits(examples.raw, examples.treatment, examples.position))
        return float(jnp.mean(jnp.std(probabilities, axis=-1)))

    assert component_spread(5.0) > 1.5 * component_spread(0.0)


# ---- architectures ---------------------------------------------------------------------------------
def test_dcn_crosses_start_as_identity_and_learn():
    """ReZero: α = 0 at initialisation, so the cross layers pass e₀ through; training moves α off zero."""
    model = _model(shape=TowerShape(4, (16,), (8,), 4, dcn_layers=2, dcn_rank=3))
    raw = _examples(np.random.default_rng(5), 8).raw
    quality = model.components[0].quality
    e0 = quality.embed(embedding_ids(SPEC, jnp.asarray(raw))).reshape(8, -1)
    np.testing.assert_allclose(np.asarray(quality.embeddings(raw)), np.asarray(e0))
    trainer = OnlineTrainer(model, TrainConfig(batch_size=256), optimizer=optax.adagrad(0.1))
    trainer.train(_examples(np.random.default_rng(6), 2048))
    alpha = nnx.merge(trainer.graphdef, trainer.params, trainer.constants).components[0].quality.cross.alpha[...]
    assert np.all(np.abs(np.asarray(alpha)) > 0)


def test_dcn_cross_fits_a_product_of_two_fields_a_linear_tower_cannot():
    """CTR depends on intent × advertiser (high when their parities differ), a pair without a cross embedding. With
    no hidden layer Q is additive over fields and misses it; one cross layer multiplies the fields' embeddings."""
    def data(seed: int, n: int):
        rng = np.random.default_rng(seed)
        raw = np.stack([rng.integers(0, h, n) for h in (5, 3, 1000, 7, 5)], axis=-1).astype(np.int32)
        truth = np.where(raw[:, 1] % 2 != raw[:, 3] % 2, 0.3, 0.05).astype(np.float32)
        zeros = np.zeros(n, np.int32)
        return Examples(raw, zeros, zeros, (rng.random(n) < truth).astype(np.float32)), truth

    train, (test, truth) = data(0, 60_000)[0], data(1, 20_000)
    oracle = log_loss(truth, test.label)

    def excess(dcn_layers: int) -> float:
        trainer = OnlineTrainer(_model(shape=TowerShape(4, (), (8,), 4, dcn_layers=dcn_layers, dcn_rank=4)),
                                TrainConfig(batch_size=256), optimizer=optax.adagrad(0.1))
        for _ in range(2):
            trainer.train(train)
        return log_loss(trainer.predict(test), test.label) / oracle - 1

    plain, crossed = excess(0), excess(1)
    assert plain > 0.08 and crossed < 0.04  # measured: 13 % and 2 % above the oracle's log loss


def test_bottleneck_replaces_wide_layers_by_low_rank_products():
    wide = TowerShape(8, (128, 64), (8,), 4)
    count = lambda m: sum(x.size for x in jax.tree.leaves(nnx.state(m.components[0].quality.mlp, nnx.Param)))
    plain, narrow = _model(shape=wide), _model(shape=TowerShape(8, (128, 64), (8,), 4, bottleneck_dim=16))
    # layers 48→128, 128→64 get k = 16; 64→4 stays (16 ≥ 4)
    assert count(narrow) == (48 * 16 + 16 * 128 + 128) + (128 * 16 + 16 * 64 + 64) + (64 * 4 + 4)
    assert count(narrow) < 0.5 * count(plain)


@pytest.mark.parametrize("bottleneck_dim", [0, 3])
def test_weight_norm_fixes_each_neurons_incoming_weight_norm(bottleneck_dim):
    """Weight norm (smelu_reproducibility §3): W's columns act at L2 norm v, so scaling a hidden layer's weights is moot."""
    x = jax.random.normal(jax.random.key(0), (5, 6))
    mlp = Mlp([6, 8, 2], hidden=HiddenLayers(normalization="weight", weight_norm=2.0), bottleneck_dim=bottleneck_dim,
              rngs=nnx.Rngs(1))
    first = mlp.layers[0]
    kernel = (first.layers[0].kernel[...] @ first.layers[1].kernel[...]) if bottleneck_dim else first.kernel[...]
    bias = (first.layers[1] if bottleneck_dim else first).bias[...]
    unit = 2.0 * kernel / jnp.linalg.norm(kernel, axis=0)
    np.testing.assert_allclose(mlp(x), mlp.layers[1](jax.nn.relu(x @ unit + bias)), rtol=1e-5, atol=1e-6)
    before = mlp(x)
    for linear in (first.layers if bottleneck_dim else [first]):
        linear.kernel[...] = linear.kernel[...] * 7.0
    np.testing.assert_allclose(mlp(x), before, rtol=1e-5, atol=1e-6)


def test_layer_norm_makes_hidden_layers_scale_invariant():
    x = jax.random.normal(jax.random.key(0), (5, 6))
    mlp = Mlp([6, 8, 8, 2], hidden=HiddenLayers(normalization="layer"), rngs=nnx.Rngs(1))
    before = mlp(x)
    mlp.layers[0].kernel[...] = mlp.layers[0].kernel[...] * 7.0
    mlp.layers[0].bias[...] = mlp.layers[0].bias[...] * 7.0
    np.testing.assert_allclose(mlp(x), before, rtol=1e-4, atol=1e-5)
    plain = Mlp([6, 8, 8, 2], rngs=nnx.Rngs(1))
    plain.layers[0].kernel[...] = plain.layers[0].kernel[...] * 7.0
    assert not np.allclose(plain(x), before, atol=1e-3)


def test_activation_clip_caps_hidden_activations():
    x = 100.0 * jax.random.normal(jax.random.key(0), (5, 6))
    mlp = Mlp([6, 8, 2], hidden=HiddenLayers(activation=jax.nn.relu, activation_clip=0.5), rngs=nnx.Rngs(1))
    first, last = mlp.layers
    hidden = jnp.clip(jax.nn.relu(first(x)), -0.5, 0.5)
    assert float(jnp.max(jax.nn.relu(first(x)))) > 0.5  # the clip binds
    np.testing.assert_allclose(mlp(x), last(hidden), rtol=1e-6)


def test_normalization_must_be_one_of_the_known_kinds():
    with pytest.raises(ValueError, match="normalization: 'batch' is not allowed"):
        HiddenLayers(normalization="batch")


# ---- optimizers ------------------------------------------------------------------------------------
def test_inverse_pth_root_matches_eigendecomposition():
    rng = np.random.default_rng(7)
    g = rng.normal(size=(2, 12, 30))
    stats = g @ g.transpose(0, 2, 1)
    root = np.asarray(inverse_pth_root(jnp.asarray(stats, jnp.float32), 4, 1e-6))
    for s, r in zip(stats, root):
        w, v = np.linalg.eigh(s)
        expected = (v * (w + 1e-6 * np.linalg.norm(s)) ** -0.25) @ v.T
        np.testing.assert_allclose(r, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_shampoo_takes_adagrads_step_size_in_its_own_direction():
    """Grafting: per layer, ‖Shampoo update‖ = ‖AdaGrad update‖, and once preconditioning starts the direction differs."""
    rng = np.random.default_rng(8)
    params = {"w": jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)}
    tx, ada = shampoo(0.1, momentum=0.0, update_every=1, start_preconditioning=1), optax.adagrad(0.1, 0.1)
    s, a = tx.init(params), ada.init(params)
    for step in range(3):
        g = {"w": jnp.asarray(rng.normal(size=(6, 5)) * np.array([10, 1, 1, 1, 0.1]), jnp.float32)}
        u, s = tx.update(g, s, params)
        v, a = ada.update(g, a, params)
        np.testing.assert_allclose(float(jnp.linalg.norm(u["w"])), float(jnp.linalg.norm(v["w"])), rtol=1e-4)
        cosine = float(jnp.sum(u["w"] * v["w"]) / jnp.linalg.norm(u["w"]) / jnp.linalg.norm(v["w"]))
        assert (cosine > 0.9999) if step == 0 else (cosine < 0.999)


def test_shampoo_beats_adagrad_on_an_ill_conditioned_regression():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(512, 8)) @ np.diag(np.logspace(0, 1.5, 8)) @ np.linalg.qr(rng.normal(size=(8, 8)))[0]
    w_true = rng.normal(size=(8, 4))
    y = jnp.asarray(x @ w_true, jnp.float32)
    x = jnp.asarray(x, jnp.float32)
    loss = lambda p: jnp.mean((x @ p["w"] - y) ** 2)

    def final_loss(tx):
        p = {"w": jnp.zeros((8, 4))}
        state = tx.init(p)
        for _ in range(150):
            u, state = tx.update(jax.grad(loss)(p), state, p)
            p = optax.apply_updates(p, u)
        return float(loss(p))

    assert final_loss(shampoo(0.3, update_every=5, momentum=0.5)) < 0.5 * final_loss(optax.adagrad(0.3, 0.1))


def test_cowclip_clips_each_row_to_count_times_its_weight_norm():
    w = {"table": jnp.array([[3.0, 4.0], [0.0, 0.0], [0.3, 0.4], [1.0, 0.0]]), "dense": jnp.ones(2)}
    g = {"table": jnp.array([[30.0, 40.0], [1.0, 0.0], [0.03, 0.04], [0.0, 0.0]]), "dense": jnp.full(2, 100.0)}
    counts = {"table": jnp.array([2.0, 1.0, 1.0, 0.0]), "dense": jnp.zeros(0)}
    transform = cowclip(r=1.0, zeta=0.1)
    clipped, state = transform.update(g, transform.init(w), w, row_counts=counts, batch_weight=3.0)  # a mean: unused
    np.testing.assert_allclose(np.linalg.norm(clipped["table"][0]), 2 * 5.0, rtol=1e-5)  # cnt · r‖w‖ = 10 < 50
    np.testing.assert_allclose(np.linalg.norm(clipped["table"][1]), 0.1, rtol=1e-5)  # ζ floor for a zero row
    np.testing.assert_allclose(clipped["table"][2], g["table"][2])  # within bound: untouched
    np.testing.assert_allclose(clipped["dense"], g["dense"])  # not an embedding: untouched
    assert (float(state.clipped), float(state.touched)) == (2.0, 3.0)  # rows 0 and 1 cut, of the 3 the batch touched
    _, state = transform.update(g, state, w, row_counts=counts, batch_weight=3.0)
    assert (float(state.clipped), float(state.touched)) == (4.0, 6.0)  # counted over steps


def test_cowclip_example_sum_bounds_each_occurrences_gradient():
    """Read as the paper's §3.1 writes it, the bound is on the summed per-example gradients: the mean loss's gradient
    × the batch's weight. A row within the bound as a batch mean is cut as a sum, to the same bound in sum units."""
    w = {"table": jnp.array([[0.3, 0.4]])}
    g = {"table": jnp.array([[0.003, 0.004]])}  # norm 0.005 ≤ cnt · r‖w‖ = 0.5 as a mean; 0.005 × 1000 = 5 as a sum
    counts = {"table": jnp.array([1.0])}
    as_mean, _ = cowclip(r=1.0, zeta=0.0).update(g, cowclip().init(w), w, row_counts=counts, batch_weight=1000.0)
    np.testing.assert_allclose(as_mean["table"], g["table"])
    transform = cowclip(r=1.0, zeta=0.0, gradient="example_sum")
    as_sum, state = transform.update(g, transform.init(w), w, row_counts=counts, batch_weight=1000.0)
    np.testing.assert_allclose(1000.0 * np.linalg.norm(as_sum["table"][0]), 0.5, rtol=1e-5)
    assert float(state.clipped) == 1.0


def test_cowclip_in_the_trainer_bounds_embedding_updates():
    rng = np.random.default_rng(10)
    examples = _examples(rng, 1024)

    def embedding_change(clip: bool) -> float:
        config = TrainConfig(optimizer="adagrad", learning_rate=0.5, batch_size=1024, cowclip=clip, cowclip_r=1e-6,
                             cowclip_zeta=0.0)
        trainer = OnlineTrainer(_model(), config)
        before = np.asarray(trainer.params["components"][0]["quality"]["embed"]["embedding"][...])
        trainer.train(examples)
        return float(np.abs(np.asarray(trainer.params["components"][0]["quality"]["embed"]["embedding"][...]) - before).max())

    # AdaGrad's first step moves every touched coordinate by ~lr; clipped rows move far less
    assert embedding_change(True) < 0.1 * embedding_change(False)


def test_clipped_share_counts_every_step_of_the_training():
    """The share of touched embedding row-steps the clip cut, over all of training: every real step's touched rows
    (a flushed partial batch included, the zero-weight padding steps and rows not), all cut at a tiny r, none at a
    huge one. At the paper's r = 1, its CowClip init (σ = 0.01) and a 4K batch the batch-mean reading cannot bind (a
    row's mean gradient is ~cnt/B of an example's, far below cnt·‖w‖); the per-example reading binds on some rows."""
    from models.optim import CowClipState
    from simulator.measure.runs import clipped_share

    rng = np.random.default_rng(12)
    examples = _examples(rng, 2 * 4096 + 1500, ctr=0.5)  # 3 steps, padded to 4 in one scan
    examples = examples._replace(weight=np.where(rng.random(examples.size) < 0.2, 0.0, 2.0).astype(np.float32))
    small_init = dataclasses.replace(SHAPE, embedding_init_std=0.01)

    def trained(**cowclip_settings) -> OnlineTrainer:
        trainer = OnlineTrainer(_model(shape=small_init), TrainConfig(batch_size=4096, cowclip=True, **cowclip_settings))
        trainer.train(examples, flush=True)
        return trainer

    steps = [examples.slice(start, start + 4096) for start in range(0, examples.size, 4096)]
    touched = sum(np.unique(np.asarray(embedding_ids(SPEC, step.raw[step.weight > 0]))).size for step in steps)
    all_cut = trained(cowclip_r=1e-9, cowclip_zeta=0.0)
    counters = next(s for s in jax.tree.leaves(all_cut.opt_state, is_leaf=lambda x: isinstance(x, CowClipState))
                    if isinstance(s, CowClipState))
    assert int(counters.touched) == touched and int(counters.clipped) == touched
    assert clipped_share(all_cut) == 1.0 and clipped_share(trained(cowclip_r=1e6, cowclip_zeta=0.0)) == 0.0
    assert clipped_share(trained(cowclip_r=1.0, cowclip_zeta=1e-5)) == 0.0
    assert 0.0 < clipped_share(trained(cowclip_r=1.0, cowclip_zeta=1e-5, cowclip_gradient="example_sum")) < 1.0
    assert np.isnan(clipped_share(OnlineTrainer(_model(), TrainConfig())))  # no CowClip: no share


def test_cowclip_scaling_rule_scales_dense_learning_rate_by_root_of_batch_ratio():
    grads = {"dense": {"kernel": jnp.ones((2, 2))}}
    params = {"dense": {"kernel": jnp.zeros((2, 2))}}
    base = make_optimizer(TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=512, scaling_base_batch_size=512))
    scaled = make_optimizer(TrainConfig(optimizer="adam", learning_rate=0.01, batch_size=8192, scaling_base_batch_size=512))
    u1, _ = base.update(grads, base.init(params), params)
    u2, _ = scaled.update(grads, scaled.init(params), params)
    np.testing.assert_allclose(np.asarray(u2["dense"]["kernel"]), 4.0 * np.asarray(u1["dense"]["kernel"]), rtol=1e-5)


def test_cowclip_scaling_rule_keeps_a_rare_ids_adagrad_step_per_occurrence():
    # a row seen once: its mean gradient in a batch 32× larger is 32× smaller; the step must stay the same
    params = {"embedding": jnp.zeros((1, 4))}
    gradient = jnp.full((1, 4), 1e-4)
    step = {}
    for batch, scale in ((512, 1.0), (16_384, 32.0)):
        optimizer = make_optimizer(TrainConfig(batch_size=batch, scaling_base_batch_size=512))
        step[batch], _ = optimizer.update({"embedding": gradient / scale}, optimizer.init(params), params)
    np.testing.assert_allclose(step[16_384]["embedding"], step[512]["embedding"], rtol=1e-3)  # up to AdaGrad's ε
    plain = make_optimizer(TrainConfig(batch_size=16_384))  # without the rule: 32× smaller
    small, _ = plain.update({"embedding": gradient / 32}, plain.init(params), params)
    np.testing.assert_allclose(small["embedding"] * 32, step[512]["embedding"], rtol=1e-3)


# ---- data sampling ---------------------------------------------------------------------------------
def test_sampling_keeps_the_configured_share_and_weights_by_its_inverse():
    rng = np.random.default_rng(11)
    n = 200_000
    click, position = (rng.random(n) < 0.05).astype(np.float32), rng.integers(0, 4, n)
    pctr = rng.random(n) * 0.1
    data = DataConfig(negative_keep_rate=0.2, low_position_keep_rate=0.5, low_position_from=2)
    rate = sampling_rates(data, click, position, pctr)
    kept = rate >= uniform_hash(np.arange(n) // 4, position)
    assert np.all(rate[click > 0] == np.where(position[click > 0] >= 2, 0.5, 1.0))
    assert np.all(rate[(click == 0)] == 0.2)
    assert abs(kept[click == 0].mean() - 0.2) < 0.01
    weight = 1.0 / rate[kept]
    # importance weights keep the estimated click rate unbiased
    assert abs(np.sum(weight * click[kept]) / np.sum(weight) - click.mean()) < 0.003


def test_uniform_hash_is_a_fixed_function_of_query_and_position():
    q, p = np.arange(10), np.zeros(10, np.int64)
    assert np.array_equal(uniform_hash(q, p), uniform_hash(q, p))
    values = uniform_hash(np.arange(100_000), np.arange(100_000) % 4)
    assert 0 <= values.min() and values.max() < 1 and abs(values.mean() - 0.5) < 0.01


# ---- devices -----------------------------------------------------------------------------------------
def test_training_order_shuffles_whole_queries_by_a_fixed_seed():
    query = np.repeat(np.arange(1000, 1300), 4)
    order = training_order(query, 1)
    assert sorted(order) == list(range(query.size))
    shuffled = query[order]
    assert np.all(shuffled.reshape(-1, 4) == shuffled.reshape(-1, 4)[:, :1])  # a query's rows stay together
    assert np.all(np.diff(order.reshape(-1, 4), axis=1) == 1)  # in their own order
    assert not np.array_equal(shuffled, query)
    assert np.array_equal(order, training_order(query, 1))  # a fixed function: no RNG state
    assert not np.array_equal(order, training_order(query, 2))


def test_predict_is_the_pv_prediction_before_training():
    examples = _examples(np.random.default_rng(11), 256)
    trainer = OnlineTrainer(_model(), TrainConfig(batch_size=128))
    before = trainer.predict(examples)
    pv, scored = trainer.train(examples)
    assert scored == 256 and before.shape == (256,)
    np.testing.assert_allclose(before[:128], pv[:128], rtol=1e-5)  # the first batch is scored before any step
    assert not np.allclose(trainer.predict(examples), before, rtol=1e-3)  # and training moved it


def test_four_devices_match_one_device(tmp_path):
    """Data-parallel training over 4 (forced host) devices equals single-device training up to float tolerance."""
    script = textwrap.dedent("""
        import numpy as np, jax, optax
        from flax import nnx
        from models import CtrModel, Examples, FeatureSpec, OnlineTrainer, TowerShape, TrainConfig
        assert len(jax.devices()) == 4, jax.devices()
        spec = FeatureSpec.teaching(5, 3, 7, 64, 128)
        rng = np.random.default_rng(0)
        n = 256 * 8
        raw = np.stack([rng.integers(0, h, n) for h in (5, 3, 1000, 7, 5)], -1).astype(np.int32)
        ex = Examples(raw, rng.integers(0, 3, n).astype(np.int32), rng.integers(0, 4, n).astype(np.int32),
                      (rng.random(n) < 0.2).astype(np.float32), query=np.arange(n) // 3)
        results = []
        for devices in (1, 4):
            model = CtrModel(spec, np.eye(3, 2, dtype=np.float32), 4, TowerShape(4, (16,), (8,), 4), rngs=nnx.Rngs(0))
            config = TrainConfig(batch_size=256, num_devices=devices, rank_loss_weight=0.3, bias_constraints=["position"])
            trainer = OnlineTrainer(model, config, optimizer=optax.adagrad(0.1), max_ads_per_query=3)
            predictions, _ = trainer.train(ex)
            results.append((predictions, jax.tree.leaves(trainer.params)))
        np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-6)
        for a, b in zip(results[0][1], results[1][1]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
        # on 4 devices too, padding batches are not steps: one call or calls that pad give the same Adam model
        trained = []
        for cuts in ((n,), (300, 700, n - 1000)):
            model = CtrModel(spec, np.eye(3, 2, dtype=np.float32), 4, TowerShape(4, (16,), (8,), 4), rngs=nnx.Rngs(0))
            trainer = OnlineTrainer(model, TrainConfig(batch_size=256, num_devices=4, optimizer="adam",
                                                       learning_rate=0.01, bias_constraints=["position"]))
            start = 0
            for i, size in enumerate(cuts):
                trainer.train(ex.slice(start, start + size), flush=i == len(cuts) - 1)
                start += size
            trained.append(jax.tree.leaves((trainer.params, trainer.opt_state, trainer.duals)))
        for a, b in zip(*trained):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
        from simulator import config
        from simulator.loop.simulation import Simulation
        run = Simulation(config.load("scenarios/smoke.toml", ["run.duration_hours=0.3", "train.num_devices=4"])).run()
        assert run.stopped is None and run.summary()["trained_examples"] > 1000  # the loop trains on 4 devices
        print("ok")
    """)
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()  # and the suite's
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


# ---- every switch in the closed loop -----------------------------------------------------------------
SWITCHES = [
    ["model.architecture=unfactorized"], ["model.dcn_layers=2", "model.dcn_rank=4"], ["model.bottleneck_dim=8"],
    ["model.ensemble_size=2", "train.anti_distillation_weight=0.5"], ["train.optimizer=adam", "train.learning_rate=0.003"],
    ["train.optimizer=shampoo"], ["train.rank_loss_weight=0.3", "train.loss_curriculum=linear"],
    ["train.distillation_weight=0.5"], ["train.bias_constraints=['position', 'treatment', 'pctr_decile', 'advertiser']"],
    ["train.cowclip=true", "train.cowclip_r=1e-4"], ["data.negative_keep_rate=0.3"], ["train.shuffle_seed=1"],
    ["model.normalization=layer"], ["model.quality_hidden=[]"], ["model.normalization=weight", "model.weight_norm=2.0", "model.activation_clip=6"],
]


@pytest.fixture(scope="module")
def baseline_run():
    from simulator import config
    from simulator.loop.simulation import Simulation

    return Simulation(config.load("scenarios/smoke.toml", ["run.duration_hours=0.75"])).run()


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: " ".join(s))
def test_switch_runs_in_the_closed_loop_and_learns(switch, baseline_run):
    """Wiring: each switch runs in the loop, learns, and reaches the model (its own effect is tested in isolation
    above, in a setting built for it)."""
    from simulator import config
    from simulator.loop.simulation import Simulation

    output = Simulation(config.load("scenarios/smoke.toml", ["run.duration_hours=0.75", *switch])).run()
    summary = output.summary()
    assert summary["stopped"] is None and np.isfinite(summary["pv_logloss"])
    assert summary["final_window_gap"] < 0.25  # learning, not broken
    a, b = output.pv_arrays(), baseline_run.pv_arrays()
    n = min(len(a["prediction"]), len(b["prediction"]))
    assert not np.allclose(a["prediction"][:n], b["prediction"][:n], rtol=1e-3)
    if switch[0].startswith("data."):
        assert len(a["label"]) < 0.6 * len(b["label"]) and set(np.unique(a["weight"])) == {1.0, np.float32(1 / 0.3)}
