"""Every choice list exists once, as the registry that implements it: the config's choices, the CLI's and the app's
pickers are the registry's keys, and every entry of every registry works."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from auction.config import AuctionConfig
from auction.mechanisms import MECHANISMS
from auction.reserves import RESERVE_KINDS, RESERVE_MODES
from models import CtrModel, FeatureSpec, TowerShape, TrainConfig, make_optimizer
from models.activations import ACTIVATIONS, activation_from_config
from models.config import ModelConfig
from models.ctr import ARCHITECTURES
from models.layers import NORMALIZATIONS, HiddenLayers, Mlp
from models.losses import BIAS_SLICES, CURRICULA, LOSS_TERMS, active_terms, curriculum_ramp
from models.optim import OPTIMIZERS
from models.transfers import TRANSFERS, log_likelihood_terms, transfer
from simulator.cli import main
from simulator.world.click_models import CLICK_MODELS
from simulator.world.config import WorldConfig
from simulator.world.kinds import WORLD_KINDS

REGISTRIES = {
    (ModelConfig, "activation"): ACTIVATIONS, (ModelConfig, "transfer"): TRANSFERS,
    (ModelConfig, "normalization"): NORMALIZATIONS, (ModelConfig, "architecture"): ARCHITECTURES,
    (TrainConfig, "optimizer"): OPTIMIZERS, (TrainConfig, "loss_curriculum"): CURRICULA,
    (AuctionConfig, "reserve_kind"): RESERVE_KINDS, (AuctionConfig, "reserve_mode"): RESERVE_MODES,
    (AuctionConfig, "mechanism"): MECHANISMS, (WorldConfig, "kind"): WORLD_KINDS,
    (WorldConfig, "click_model"): CLICK_MODELS,
}


def _metadata(section, name: str) -> dict:
    return next(f for f in dataclasses.fields(section) if f.name == name).metadata


@pytest.mark.parametrize("key", REGISTRIES, ids=lambda key: f"{key[0].__name__}.{key[1]}")
def test_config_choices_are_the_registry(key):
    section, name = key
    assert tuple(_metadata(section, name)["choices"]) == tuple(REGISTRIES[key])


def test_list_choices_and_the_cli_are_the_registries(capsys):
    assert tuple(_metadata(TrainConfig, "bias_constraints")["item_choices"]) == tuple(BIAS_SLICES)
    with pytest.raises(SystemExit):
        main(["auction", "case.json", "--reserve-mode", "bogus"])
    assert "(choose from " + ", ".join(f"'{mode}'" for mode in RESERVE_MODES) + ")" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["auction", "case.json", "--mechanism", "bogus"])
    assert "(choose from " + ", ".join(f"'{name}'" for name in MECHANISMS) + ")" in capsys.readouterr().err


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_is_near_zero_far_left_and_near_x_far_right(name):
    f = activation_from_config(dataclasses.replace(ModelConfig(), activation=name))
    y = np.asarray(f(jnp.linspace(-4.0, 4.0, 81)))
    assert np.all(np.isfinite(y)) and abs(y[0]) < 0.1 and abs(y[-1] - 4.0) < 0.1


@pytest.mark.parametrize("name", TRANSFERS)
def test_every_transfer_is_an_increasing_probability_with_consistent_log_terms(name):
    z = jnp.linspace(-12.0, 6.0, 200)
    p = np.asarray(transfer(z, name), np.float64)
    log_p, log_not_p = (np.asarray(t, np.float64) for t in log_likelihood_terms(z, name))
    assert np.all((p > 0) & (p < 1)) and np.all(np.diff(p) > 0)
    np.testing.assert_allclose(np.exp(log_p), p, rtol=1e-4)
    np.testing.assert_allclose(np.exp(log_not_p), 1 - p, rtol=1e-3, atol=1e-6)
    slope = np.asarray(jax.vmap(jax.grad(lambda v: transfer(v, name)))(z))
    assert np.all(slope > 0)  # a gradient everywhere (no clamp)


@pytest.mark.parametrize("name", NORMALIZATIONS)
def test_every_normalization_builds_and_runs_an_mlp(name):
    mlp = Mlp([6, 8, 8, 1], hidden=HiddenLayers(normalization=name), rngs=nnx.Rngs(0))
    out = mlp(jnp.ones((3, 6)))
    assert out.shape == (3, 1) and bool(jnp.all(jnp.isfinite(out)))


SPEC = FeatureSpec.teaching(num_topics=5, num_intents=3, num_advertisers=7, ad_buckets=64, cross_buckets=128)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_is_built_from_its_config_and_scores_candidates(name):
    config = dataclasses.replace(ModelConfig(), architecture=name, quality_hidden=[8], ui_hidden=[4], ensemble_size=2)
    model = CtrModel.from_config(config, SPEC, np.eye(3, 2, dtype=np.float32), 4, rngs=nnx.Rngs(0))
    raw = jnp.zeros((2, 5, 5), jnp.int32)
    scores = model.score_candidates(raw)
    assert scores.shape == (2, 5, 3, 4) and len(model.components) == 2
    assert TowerShape.from_config(config, width_multiplier=2).quality_hidden == (16,)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_steps_dense_and_embedding_parameters(name):
    optimizer = make_optimizer(dataclasses.replace(TrainConfig(), optimizer=name))
    params = {"dense": {"kernel": jnp.ones((4, 4))}, "embed": {"embedding": jnp.ones((3, 2))}}
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    assert all(float(jnp.abs(u).min()) > 0 for u in jax.tree.leaves(updates))
    # embeddings: Adam's first step is the learning rate; AdaGrad's (also under Shampoo) lr·g/√(acc + g²)
    expected = 0.05 if name == "adam" else 0.05 / np.sqrt(0.1 + 1.0)
    np.testing.assert_allclose(np.asarray(updates["embed"]["embedding"]), -expected, rtol=1e-3)
    new = optax.apply_updates(params, updates)
    assert all(float(jnp.max(n - p)) < 0 for n, p in zip(jax.tree.leaves(new), jax.tree.leaves(params)))


@pytest.mark.parametrize("name", CURRICULA)
def test_every_curriculum_ramps_within_zero_and_one_and_ends_at_full_weight(name):
    ramp = [float(curriculum_ramp(jnp.float32(seen), name, 100)) for seen in (0, 25, 50, 100, 1000)]
    assert all(0.0 <= r <= 1.0 for r in ramp) and np.all(np.diff(ramp) >= 0) and ramp[-1] == 1.0


def test_each_reserve_kind_sets_the_reserve_it_names():
    reserve, ctr = jnp.full((2, 3), 0.3), jnp.full((2, 3, 2, 4), 0.1)
    for name in ("uniform", "per_advertiser"):  # the given reserves (the world draws per-advertiser factors)
        np.testing.assert_array_equal(RESERVE_KINDS[name].per_candidate(reserve, ctr), reserve)
    np.testing.assert_allclose(RESERVE_KINDS["quality_weighted"].per_candidate(reserve, ctr), 3.0, rtol=1e-6)  # R / q
    assert [name for name, kind in RESERVE_KINDS.items() if kind.advertiser_factors] == ["per_advertiser"]


def test_each_loss_term_is_switched_on_by_its_config_entry():
    assert [t for t in active_terms(TrainConfig())] == [LOSS_TERMS["log_loss"]]
    config = TrainConfig(rank_loss_weight=0.2, bias_constraints=["position"], anti_distillation_weight=1.0,
                         focal_loss_weight=0.5)
    assert active_terms(config) == tuple(LOSS_TERMS.values())


def test_every_claim_measure_computes_its_operation_and_a_study_file_offers_exactly_them(tmp_path):
    from simulator.experiments.claims import MEASURES, Measure
    from simulator.experiments.study import StudyError, load_study
    from tests.conftest import SMOKE

    by_arm = {"a": {"pd": 0.2, "auc": 0.7}, "b": {"pd": 0.4, "auc": 0.6}}
    expected = {"value": 0.7, "difference": 0.7 - 0.6, "ratio": 0.2 / 0.4, "log_ratio": np.log(0.5),
                "mean_log_ratio": (np.log(0.5) + np.log(0.7 / 0.6)) / 2}
    assert set(expected) == set(MEASURES)
    operands = {"value": (("a", "auc"),), "mean_log_ratio": (("a", "pd"), ("b", "pd"), ("a", "auc"), ("b", "auc"))}
    for name in MEASURES:
        measure = Measure(name, operands.get(name, (("a", "pd"), ("b", "pd")) if "ratio" in name else (("a", "auc"), ("b", "auc"))))
        assert measure(by_arm) == pytest.approx(expected[name]), name
    study = tmp_path / "study.toml"
    study.write_text(f'scenario = "{SMOKE}"\nseeds = 2\nhours = 0.1\n[arms.baseline]\n[[claims]]\nid = "c"\nclaim = "c"\n'
                     'source = "s"\neffect = "e"\nexpect = "increase"\nmeasure = {product = ["baseline.pd", "baseline.pd"]}\n')
    with pytest.raises(StudyError, match="(?s)" + ".*".join(MEASURES)):  # the error lists the registry
        load_study(study)


def test_each_world_kind_names_the_crosses_its_feature_spec_gives():
    """model.omit_crosses is checked at load against WORLD_CROSSES; each world's feature spec is the truth."""
    import simulator
    from simulator.world.config import WORLD_CROSSES

    assert set(WORLD_CROSSES) == set(WORLD_KINDS)
    small = ["world.num_topics=6", "world.num_advertisers=30", "world.initial_ads=60"]
    realistic = ["world.num_queries=3000", "world.num_users=1000"]  # keys another world refuses
    for kind, world_class in WORLD_KINDS.items():
        overrides = [f"world.kind={kind}", *small, *(realistic if kind == "realistic" else [])]
        scenario = simulator.load("scenarios/smoke.toml", overrides=overrides)
        world = world_class(scenario)
        world.reset(0)
        assert world.feature_spec(scenario.model).cross_names == WORLD_CROSSES[kind], kind
