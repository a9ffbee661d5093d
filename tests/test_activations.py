"""SmeLU and gSmeLU follow the paper's definitions; every activation switch runs in the loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simulator
from models.activations import ACTIVATIONS, gsmelu, smelu
from simulator.config import replace

X = jnp.linspace(-4.0, 4.0, 801)


def test_smelu_matches_equation_7_and_is_smooth():
    beta = 0.7
    expected = np.where(X <= -beta, 0.0, np.where(X >= beta, X, (X + beta) ** 2 / (4 * beta)))
    np.testing.assert_allclose(smelu(X, beta), expected, atol=1e-7)
    grad = jax.vmap(jax.grad(lambda x: smelu(x, beta)))(X)
    assert float(jnp.max(jnp.abs(jnp.diff(grad)))) < 0.02  # continuous gradient (a hard sigmoid)
    assert float(grad[0]) == 0.0 and float(grad[-1]) == 1.0


def test_gsmelu_reduces_to_smelu_and_meets_its_constraints():
    np.testing.assert_allclose(gsmelu(X, alpha=0.5, beta=0.5, g_minus=0.0, g_plus=1.0, t=0.0), smelu(X, 0.5), atol=1e-6)
    alpha, beta, g_minus, g_plus, t = 0.8, 1.5, 0.1, 1.2, -0.3
    f = lambda x: gsmelu(x, alpha, beta, g_minus, g_plus, t)  # noqa: E731
    assert float(f(-alpha)) == pytest.approx(t, abs=1e-6)  # y(−α) = t
    grad = jax.grad(f)
    assert float(grad(-alpha - 1e-3)) == pytest.approx(g_minus, abs=1e-3)
    assert float(grad(-alpha + 1e-3)) == pytest.approx(g_minus, abs=1e-2)
    assert float(grad(beta + 1e-3)) == pytest.approx(g_plus, abs=1e-3)
    assert float(grad(beta - 1e-3)) == pytest.approx(g_plus, abs=1e-2)
    values = f(X)
    assert np.all(np.diff(np.asarray(values)) > 0)  # leaky and monotonic with g₋ > 0


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_each_activation_runs_in_the_loop(name, smoke_scenario):
    output = simulator.run(replace(smoke_scenario, run__duration_hours=0.3, model__activation=name))
    summary = output.summary()
    assert np.isfinite(summary["pv_logloss"]) and summary["stopped"] is None
    if name != "relu":
        relu = simulator.run(replace(smoke_scenario, run__duration_hours=0.3))
        assert not np.array_equal(output.pv_arrays()["prediction"], relu.pv_arrays()["prediction"])


def test_gsmelu_slopes_are_validated():
    with pytest.raises(simulator.ConfigError, match="model.gsmelu_g_plus"):
        simulator.load(overrides=["model.gsmelu_g_minus=1.0", "model.gsmelu_g_plus=0.5"])
