"""Online training with progressive validation, and the scorer the auction calls.

The trainer makes a single pass over logs in time order: each example is scored by the current
parameters before its gradient step (progressive validation), so the returned predictions are honest
out-of-sample predictions. Full batches run through one jitted `lax.scan`; a partial batch waits in
the buffer for the next logs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from models.ctr import FactorizedCtr, log_likelihood_terms, transfer


class Examples(NamedTuple):
    """Logged impressions. raw: int32[n, 5]; treatment, position: int32[n]; label: float32[n]."""

    raw: np.ndarray
    treatment: np.ndarray
    position: np.ndarray
    label: np.ndarray

    @staticmethod
    def concat(parts: list["Examples"]) -> "Examples":
        return Examples(*(np.concatenate(column) for column in zip(*parts)))

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def slice(self, start: int, stop: int) -> "Examples":
        return Examples(*(column[start:stop] for column in self))


def log_loss_term(logit: jax.Array, label: jax.Array, weight: jax.Array, kind: str) -> jax.Array:
    """Weighted mean binary cross-entropy of τ(logit): the main loss term."""
    log_p, log_not_p = log_likelihood_terms(logit, kind)
    per_example = -(label * log_p + (1.0 - label) * log_not_p)
    return jnp.sum(weight * per_example) / jnp.maximum(jnp.sum(weight), 1.0)


def _next_power_of_two(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


class OnlineTrainer:
    """Holds the model parameters and optimizer state; `train` consumes logs, `snapshot` is what gets deployed."""

    def __init__(self, model: FactorizedCtr, optimizer: optax.GradientTransformation, batch_size: int):
        self.graphdef, self.params, self.constants = nnx.split(model, nnx.Param, ...)
        self.optimizer = optimizer
        self.opt_state = optimizer.init(self.params)
        self.batch_size = batch_size
        self.kind = model.transfer
        self._buffer: list[Examples] = []
        self._buffered = 0
        self._train_batches = jax.jit(self._scan_steps)

    def _scan_steps(self, params, opt_state, batches):
        graphdef, constants, kind, optimizer = self.graphdef, self.constants, self.kind, self.optimizer

        def step(carry, batch):
            params, opt_state = carry
            raw, treatment, position, label, weight = batch

            def loss_fn(p):
                logit = nnx.merge(graphdef, p, constants).logit(raw, treatment, position)
                return log_loss_term(logit, label, weight, kind), logit

            (_, logit), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), transfer(logit, kind)

        (params, opt_state), predictions = jax.lax.scan(step, (params, opt_state), batches)
        return params, opt_state, predictions

    def train(self, examples: Examples | None, flush: bool = False) -> tuple[np.ndarray, int]:
        """Train on buffered + new examples in order; return (PV predictions, how many buffered examples they cover).

        The predictions are for the first `len(predictions)` examples in arrival order; with
        `flush`, a final partial batch is trained too (padded with zero-weight rows).
        """
        if examples is not None and len(examples):
            self._buffer.append(examples)
            self._buffered += len(examples)
        usable = self._buffered if flush else self._buffered - self._buffered % self.batch_size
        if usable == 0:
            return np.zeros(0, np.float32), 0
        pending = Examples.concat(self._buffer)
        taken, rest = pending.slice(0, usable), pending.slice(usable, len(pending))
        self._buffer, self._buffered = ([rest] if len(rest) else []), len(rest)
        steps = -(-usable // self.batch_size)
        slots = _next_power_of_two(steps) * self.batch_size  # few distinct shapes ⇒ few compilations
        pad = slots - usable
        weight = np.concatenate([np.ones(usable, np.float32), np.zeros(pad, np.float32)])
        columns = [np.concatenate([c, np.zeros((pad, *c.shape[1:]), c.dtype)]) for c in taken] + [weight]
        batches = tuple(c.reshape(-1, self.batch_size, *c.shape[1:]) for c in columns)
        self.params, self.opt_state, predictions = self._train_batches(self.params, self.opt_state, batches)
        return np.asarray(predictions).reshape(-1)[:usable], usable

    def snapshot(self) -> nnx.State:
        """The current parameters (immutable arrays, so the deployed copy never changes under the auction)."""
        return self.params


class Scorer:
    """Scores a tick's candidates with a deployed snapshot: pCTR float32[B, N, T, K]."""

    def __init__(self, trainer: OnlineTrainer):
        graphdef, constants = trainer.graphdef, trainer.constants
        self._score = jax.jit(lambda params, raw: nnx.merge(graphdef, params, constants).score_candidates(raw))

    def __call__(self, params: nnx.State, raw: np.ndarray | jax.Array) -> jax.Array:
        return self._score(params, raw)
