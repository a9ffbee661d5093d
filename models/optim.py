"""Optimizers as optax transformations: Shampoo with AdaGrad grafting (Factory Floor §4.2, Distributed
Shampoo), CowClip column-wise clipping of embedding gradients (Zheng et al.), and the partition that
keeps embeddings on AdaGrad while the dense layers use the chosen optimizer.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


# ---- Shampoo -------------------------------------------------------------------------------------
class _LeafState(NamedTuple):
    graft: jax.Array  # AdaGrad accumulator, same shape as the parameter
    momentum: jax.Array
    left: jax.Array  # statistics Σ G Gᵀ per block: [row blocks, col blocks, bm, bm] (empty for vectors)
    right: jax.Array  # statistics Σ Gᵀ G per block: [row blocks, col blocks, bn, bn]
    left_root: jax.Array  # (left + ε‖left‖I)^(−1/4), refreshed every `update_every` steps
    right_root: jax.Array


class ShampooState(NamedTuple):
    count: jax.Array
    leaves: list[_LeafState]


def _blocks(x: jax.Array, bm: int, bn: int) -> jax.Array:
    """[m, n] → [m/bm, n/bn, bm, bn], zero-padded to whole blocks."""
    m, n = x.shape
    pm, pn = -m % bm, -n % bn
    x = jnp.pad(x, ((0, pm), (0, pn)))
    return x.reshape((m + pm) // bm, bm, (n + pn) // bn, bn).transpose(0, 2, 1, 3)


def _unblocks(x: jax.Array, m: int, n: int) -> jax.Array:
    rb, cb, bm, bn = x.shape
    return x.transpose(0, 2, 1, 3).reshape(rb * bm, cb * bn)[:m, :n]


def inverse_pth_root(stats: jax.Array, p: int = 4, epsilon: float = 1e-6, tolerance: float = 1e-5,
                     max_iterations: int = 100) -> jax.Array:
    """(S + ε·‖S‖·I)^(−1/p) per block [..., n, n] by the coupled Newton iteration (Distributed Shampoo, Guo & Higham).

    Matmuls only (no eigendecomposition), so it runs anywhere XLA does; iterates until every block's
    ‖M − I‖_max < tolerance. ‖·‖ is the Frobenius norm, an upper bound of the largest eigenvalue.
    """
    n = stats.shape[-1]
    identity = jnp.eye(n, dtype=stats.dtype)
    norm = jnp.maximum(jnp.linalg.norm(stats, axis=(-2, -1), keepdims=True), 1e-30)
    damped = stats + epsilon * norm * identity
    z = (1.0 + p) / (2.0 * (norm + epsilon * norm))
    m0, h0 = damped * z, identity * z ** (1.0 / p)

    def error(m):
        return jnp.max(jnp.abs(m - identity))

    def keep_going(state):
        i, _, _, err = state
        return (i < max_iterations) & (err > tolerance)

    def newton_step(state):
        i, m, h, _ = state
        m_i = ((1.0 + p) * identity - m) / p
        m = jnp.linalg.matrix_power(m_i, p) @ m
        return i + 1, m, h @ m_i, error(m)

    _, _, h, _ = jax.lax.while_loop(keep_going, newton_step, (0, m0, h0, error(m0)))
    return h


def shampoo(learning_rate: float, *, block_size: int = 128, update_every: int = 10, momentum: float = 0.9,
            nesterov: bool = True, initial_accumulator: float = 0.1, epsilon: float = 1e-6,
            start_preconditioning: int = 10) -> optax.GradientTransformation:
    """Block-diagonal Shampoo for matrices: direction L^(−1/4) G R^(−1/4) per block, AdaGrad's step size per layer
    (grafting), optional Nesterov momentum. Vectors (biases) take the AdaGrad direction.

    Inverse roots are recomputed every `update_every` steps; before `start_preconditioning` steps the
    direction is AdaGrad's. Statistics accumulate without decay, like AdaGrad's.
    """

    def init_leaf(p: jax.Array) -> _LeafState:
        zeros = jnp.zeros_like(p)
        graft = jnp.full_like(p, initial_accumulator)
        if p.ndim != 2:
            empty = jnp.zeros((0,), p.dtype)
            return _LeafState(graft, zeros, empty, empty, empty, empty)
        bm, bn = min(block_size, p.shape[0]), min(block_size, p.shape[1])
        rb, cb = -(-p.shape[0] // bm), -(-p.shape[1] // bn)
        eye_m, eye_n = jnp.broadcast_to(jnp.eye(bm), (rb, cb, bm, bm)), jnp.broadcast_to(jnp.eye(bn), (rb, cb, bn, bn))
        return _LeafState(graft, zeros, jnp.zeros((rb, cb, bm, bm)), jnp.zeros((rb, cb, bn, bn)), eye_m, eye_n)

    def init(params):
        return ShampooState(jnp.zeros([], jnp.int32), [init_leaf(p) for p in jax.tree.leaves(params)])

    def update_leaf(g: jax.Array, s: _LeafState, count: jax.Array) -> tuple[jax.Array, _LeafState]:
        graft = s.graft + g * g
        adagrad_step = g / jnp.sqrt(graft)
        if g.ndim != 2:
            direction, s = adagrad_step, s._replace(graft=graft)
        else:
            bm, bn = s.left.shape[-1], s.right.shape[-1]
            blocks = _blocks(g, bm, bn)
            left = s.left + jnp.einsum("abij,abkj->abik", blocks, blocks)
            right = s.right + jnp.einsum("abji,abjk->abik", blocks, blocks)
            refresh = (count % update_every) == 0
            left_root, right_root = jax.lax.cond(
                refresh, lambda: (inverse_pth_root(left, 4, epsilon), inverse_pth_root(right, 4, epsilon)),
                lambda: (s.left_root, s.right_root))
            preconditioned = _unblocks(jnp.einsum("abij,abjk,abkl->abil", left_root, blocks, right_root), *g.shape)
            # grafting: Shampoo's direction with AdaGrad's step size, per layer
            scale = jnp.linalg.norm(adagrad_step) / jnp.maximum(jnp.linalg.norm(preconditioned), 1e-30)
            direction = jnp.where(count >= start_preconditioning, preconditioned * scale, adagrad_step)
            s = s._replace(graft=graft, left=left, right=right, left_root=left_root, right_root=right_root)
        buffer = momentum * s.momentum + direction
        step = momentum * buffer + direction if nesterov else buffer
        return -learning_rate * step, s._replace(momentum=buffer)

    def update(updates, state: ShampooState, params=None):
        del params
        leaves, treedef = jax.tree.flatten(updates)
        results = [update_leaf(g, s, state.count) for g, s in zip(leaves, state.leaves)]
        new_updates = jax.tree.unflatten(treedef, [u for u, _ in results])
        return new_updates, ShampooState(state.count + 1, [s for _, s in results])

    return optax.GradientTransformation(init, update)


# ---- CowClip -------------------------------------------------------------------------------------
class CowClipState(NamedTuple):
    """Row-steps so far (int32): embedding rows a step touched, and how many of them the clip cut (does it bind?)."""

    clipped: jax.Array
    touched: jax.Array


# Which gradient CowClip bounds by cnt · max(r‖w‖, ζ), given the loss is the batch's weighted mean: the factor that
# turns the trainer's gradient into that one, from the batch's total weight.
COWCLIP_GRADIENTS = {
    # Algorithm 1 (g = (1/b)·Σ∇L) and the paper's code (bytedance/LargeBatchCTR, clip.py on a mean-reduced loss)
    "batch_mean": lambda batch_weight: 1.0,
    # §3.1 (g_t = Σ_{x∈B} ∇L(w, x)) and §3.2 ("the bound is based on 1·∇L(w, x)"): each occurrence's gradient at
    # most max(r‖w‖, ζ). The same as batch_mean with r and ζ divided by the batch's weight (at 16K: r ≈ 6e-5)
    "example_sum": lambda batch_weight: batch_weight,
}


def cowclip(r: float = 1.0, zeta: float = 1e-4, gradient: str = "batch_mean") -> optax.GradientTransformationExtraArgs:
    """Clip each embedding row's gradient to cnt · max(r·‖w_row‖, ζ) (CowClip, Algorithm 1), the gradient read as
    `COWCLIP_GRADIENTS[gradient]` says; count the touched rows and the clipped ones in the state.

    Extra arguments: `row_counts`, a tree like the parameters (for an embedding table, how often each row occurs in
    the batch; an empty array for leaves that are not clipped), and `batch_weight`, the batch's total weight.
    """
    to_bounded = COWCLIP_GRADIENTS[gradient]

    def init(params):
        del params
        return CowClipState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, row_counts=None, batch_weight=None, **extra):
        del extra
        if row_counts is None or batch_weight is None:
            raise ValueError("cowclip: needs row_counts (occurrences of each embedding row in the batch) and "
                             "batch_weight (the batch's total weight)")
        scale = to_bounded(batch_weight)
        clipped, touched = state

        def clip(g, w, counts):
            nonlocal clipped, touched
            if counts.size == 0:
                return g
            threshold = cowclip_threshold(w, counts, r, zeta)
            norm = jnp.linalg.norm(g, axis=-1) * scale
            used = counts > 0
            clipped = clipped + jnp.sum(used & (norm > threshold), dtype=jnp.int32)
            touched = touched + jnp.sum(used, dtype=jnp.int32)
            return g * jnp.minimum(1.0, threshold / jnp.maximum(norm, 1e-30))[:, None]

        clipped_updates = jax.tree.map(clip, updates, params, row_counts)
        return clipped_updates, CowClipState(clipped, touched)

    return optax.GradientTransformationExtraArgs(init, update)


def cowclip_threshold(w: jax.Array, counts: jax.Array, r: float, zeta: float) -> jax.Array:
    """CowClip's bound on each embedding row's gradient norm: cnt · max(r·‖w_row‖, ζ)."""
    return counts * jnp.maximum(r * jnp.linalg.norm(w, axis=-1), zeta)


def cowclip_clipped_share(opt_state: Any) -> float:
    """Share of the embedding row-steps so far that CowClip cut, from an optimizer state holding its counters
    (nan without CowClip or before any step)."""
    counters = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, CowClipState))
                if isinstance(s, CowClipState)]
    touched = sum(float(s.touched) for s in counters)
    return sum(float(s.clipped) for s in counters) / touched if touched else float("nan")


# ---- the trainer's optimizer ----------------------------------------------------------------------
def parameter_labels(params: Any) -> Any:
    """'embedding' for embedding tables (they stay on AdaGrad, CowClip applies to them), 'dense' for the rest."""
    return jax.tree_util.tree_map_with_path(lambda path, _: "embedding" if has_key(path, "embedding") else "dense",
                                            params)


def has_key(path: tuple, name: str) -> bool:
    return any(getattr(k, "key", None) == name for k in path)


class OptimizerKind(NamedTuple):
    """One `train.optimizer` choice: the dense layers' transformation and the embeddings', each given the train
    config, its learning rate and the batch scale s of CowClip's rule (1 without the rule)."""

    dense: Callable[[Any, float, float], optax.GradientTransformation]
    embedding: Callable[[Any, float, float], optax.GradientTransformation]


def _adagrad(config: Any, learning_rate: float, scale: float) -> optax.GradientTransformation:
    return optax.adagrad(learning_rate, initial_accumulator_value=config.adagrad_initial_accumulator)


def _adagrad_embedding(config: Any, learning_rate: float, scale: float) -> optax.GradientTransformation:
    # the rule keeps each rare id's step per occurrence while the mean gradient shrinks by 1/scale: Adam is
    # invariant to that, AdaGrad only when its initial accumulator shrinks by 1/scale² too
    return optax.adagrad(learning_rate, initial_accumulator_value=config.adagrad_initial_accumulator / scale**2)


def _shampoo(config: Any, learning_rate: float, scale: float) -> optax.GradientTransformation:
    return shampoo(learning_rate, block_size=config.shampoo_block_size, update_every=config.shampoo_update_every,
                   momentum=config.shampoo_momentum, initial_accumulator=config.adagrad_initial_accumulator,
                   start_preconditioning=config.shampoo_start_preconditioning)


# The registry of `train.optimizer` choices: embeddings stay on AdaGrad except with Adam.
OPTIMIZERS = {
    "adagrad": OptimizerKind(_adagrad, _adagrad_embedding),
    "adam": OptimizerKind(lambda config, learning_rate, scale: optax.adam(learning_rate),
                          lambda config, learning_rate, scale: optax.adam(learning_rate)),
    "shampoo": OptimizerKind(_shampoo, _adagrad_embedding),
}


def make_optimizer(config: Any) -> optax.GradientTransformationExtraArgs:
    """The train config's optimizer: dense layers and embeddings as `config.optimizer` says, embeddings optionally
    L2-regularised and CowClip'd; learning rates follow CowClip's scaling rule 3 when scaling_base_batch_size > 0."""
    c = config
    scale = c.batch_size / c.scaling_base_batch_size if c.scaling_base_batch_size else 1.0
    kind = OPTIMIZERS[c.optimizer]
    dense = kind.dense(c, c.learning_rate * scale**0.5, scale)
    embedding = [kind.embedding(c, c.embedding_learning_rate or c.learning_rate, scale)]
    if c.embedding_l2:
        embedding.insert(0, optax.add_decayed_weights(c.embedding_l2 * scale))
    chain = [optax.partition({"embedding": optax.chain(*embedding), "dense": dense}, parameter_labels)]
    if c.cowclip:
        chain.insert(0, cowclip(c.cowclip_r, c.cowclip_zeta, c.cowclip_gradient))
    return optax.chain(*chain)
