"""The towers' building blocks: hidden layers (activation, normalisation, clipping), MLPs, DCNv2 cross layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from models.activations import activation_from_config

EPS = 1e-7  # keeps a weight norm's division finite for an all-zero column


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


class Normalization(NamedTuple):
    """How a hidden layer is normalised: `pre_activation(layer, x, weight_norm)`, then a LayerNorm if `layer_norm`."""

    pre_activation: Callable[[nnx.Module, jax.Array, float], jax.Array]
    layer_norm: bool


# The registry of hidden-layer normalisations (smelu_reproducibility §3); `model.normalization` chooses one.
NORMALIZATIONS = {
    "none": Normalization(lambda layer, x, weight_norm: layer(x), layer_norm=False),
    "layer": Normalization(lambda layer, x, weight_norm: layer(x), layer_norm=True),
    "weight": Normalization(_weight_normalized, layer_norm=False),
}


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

    @classmethod
    def from_config(cls, config: Any) -> HiddenLayers:
        """The hidden layers a model config (models.config.ModelConfig) describes."""
        return cls(activation=activation_from_config(config), normalization=config.normalization,
                   weight_norm=config.weight_norm, activation_clip=config.activation_clip)


class Mlp(nnx.Module):
    """Dense layers with an activation between them (none after the last), normalised and clipped as `hidden` says.

    With `bottleneck_dim` k > 0, every layer m → n with k < min(m, n) becomes the low-rank product of
    m → k (no bias) and k → n (Factory Floor §3.1): m·k + k·n multiply-adds instead of m·n.
    """

    def __init__(self, widths: list[int], *, hidden: HiddenLayers = HiddenLayers(), bottleneck_dim: int = 0,
                 rngs: nnx.Rngs):
        self.layers = nnx.List([_dense(a, b, bottleneck_dim, rngs) for a, b in zip(widths[:-1], widths[1:])])
        normalization = NORMALIZATIONS[hidden.normalization]
        self.norms = nnx.List([nnx.LayerNorm(n, rngs=rngs) for n in widths[1:-1]]) if normalization.layer_norm else None
        self.hidden = hidden

    def __call__(self, x: jax.Array) -> jax.Array:
        *hidden_layers, output_layer = self.layers
        pre_activation = NORMALIZATIONS[self.hidden.normalization].pre_activation
        for i, layer in enumerate(hidden_layers):
            x = pre_activation(layer, x, self.hidden.weight_norm)
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
