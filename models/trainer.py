"""Online training with progressive validation, and the scorer the auction calls.

The trainer makes a single pass over logs in time order: each example is scored by the current
parameters before its gradient step (progressive validation), so the returned predictions are honest
out-of-sample predictions. Full batches run through one jitted `lax.scan`; a partial batch waits in
the buffer for the next logs. The loss is the sum of the terms in `models.losses`; a teacher trainer,
if given, trains first on the same batches and its PV predictions are the student's soft labels
(two-pass online distillation).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from models.ctr import CtrModel, embedding_ids
from models.transfers import transfer
from models.config import TrainConfig
from models.losses import BIAS_SLICES, LossBatch, active_terms, curriculum_ramp, total_loss
from models.optim import has_key, make_optimizer, parameter_labels


class Examples(NamedTuple):
    """Logged impressions. raw: int32[n, F] (the world's feature columns); treatment, position: int32[n]; label: float32[n];
    weight: float32[n] importance weight (1 when None); query: int64[n] query number, the rank loss's groups."""

    raw: np.ndarray
    treatment: np.ndarray
    position: np.ndarray
    label: np.ndarray
    weight: np.ndarray | None = None
    query: np.ndarray | None = None

    def filled(self) -> Examples:
        """With the optional columns present: weight 1, and every example its own query."""
        n = self.size
        return self._replace(weight=np.ones(n, np.float32) if self.weight is None else self.weight,
                             query=np.arange(n, dtype=np.int64) if self.query is None else self.query)

    @staticmethod
    def concat(parts: list[Examples]) -> Examples:
        return Examples(*(np.concatenate(column) for column in zip(*(p.filled() for p in parts))))

    @property
    def size(self) -> int:
        return int(self.label.shape[0])

    def slice(self, start: int, stop: int) -> Examples:
        return Examples(*(column[start:stop] for column in self.filled()))

    def take(self, rows: np.ndarray) -> Examples:
        return Examples(*(column[rows] for column in self.filled()))


class TrainerState(NamedTuple):
    """Everything an OnlineTrainer changes as it trains: parameters, optimizer state, bias duals, examples trained,
    the partial batch waiting in its buffer, and its teacher's state (None without one)."""

    params: Any
    opt_state: Any
    duals: jax.Array
    seen: jax.Array
    buffer: tuple[Examples, ...]
    teacher: TrainerState | None


def _zero_padded(column: np.ndarray, rows: int) -> np.ndarray:
    """`column` with zero rows appended up to `rows` (padding keeps the jitted shapes few)."""
    return np.concatenate([column, np.zeros((rows - column.shape[0], *column.shape[1:]), column.dtype)])


def _next_power_of_two(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _distinct_rows(ids: jax.Array, table_rows: int) -> tuple[jax.Array, jax.Array]:
    """The distinct table rows in `ids` (int32[...]) as int32[ids.size], padded with `table_rows` (past the table's
    end: gathers clamp, scatters drop them), and where each id's row is in that list (int32 like `ids`)."""
    flat = ids.reshape(-1)
    order = jnp.argsort(flat)
    ordered = flat[order]
    first = jnp.concatenate([jnp.ones(1, bool), ordered[1:] != ordered[:-1]])
    slot = jnp.cumsum(first) - 1
    rows = jnp.full(flat.shape, table_rows, flat.dtype).at[jnp.where(first, slot, flat.size)].set(ordered, mode="drop")
    return rows, jnp.zeros_like(flat).at[order].set(slot.astype(flat.dtype)).reshape(ids.shape)


class OnlineTrainer:
    """Holds the parameters, optimizer state and bias-constraint duals; `train` consumes logs, `snapshot` is deployed.

    Everything comes from the train config: batch size, devices, loss terms and, unless `optimizer` is given
    (tests compose their own), the optimizer. `config.num_devices` > 1 shards every batch over that many jax
    devices (data parallel, parameters replicated); results match one device up to float summation order.
    """

    def __init__(self, model: CtrModel, config: TrainConfig = TrainConfig(), *,
                 optimizer: optax.GradientTransformation | None = None, teacher: OnlineTrainer | None = None,
                 max_ads_per_query: int = 1):
        config.check()
        batch_size, num_devices = config.batch_size, config.num_devices
        self.graphdef, self.params, self.constants = nnx.split(model, nnx.Param, ...)
        self.optimizer = optax.with_extra_args_support(make_optimizer(config) if optimizer is None else optimizer)
        self.opt_state = self.optimizer.init(self.params)
        self.batch_size = batch_size
        self.kind = model.transfer
        self.config = config
        self._terms = active_terms(config)
        self.teacher = teacher
        self.max_ads_per_query = max_ads_per_query
        self._buffer: list[Examples] = []
        self._buffered = 0
        ui = model.components[0].ui
        features = getattr(ui, "features", ui)
        vocabulary = (features.position_embed.num_embeddings, features.treatment_embed.num_embeddings,
                      model.spec.vocabulary("advertiser"))
        self._slice_sizes = {name: family.size(*vocabulary) for name, family in BIAS_SLICES.items()}
        self.duals = jnp.zeros(sum(self._slice_sizes[s] for s in config.bias_constraints), jnp.float32)
        self.seen = jnp.zeros([], jnp.float32)  # examples trained (weight > 0), for the loss curriculum
        self._spec = model.spec
        self._row_count_paths = {path for path, label in
                                 jax.tree_util.tree_flatten_with_path(parameter_labels(self.params))[0]
                                 if label == "embedding" and has_key(path, "quality")}
        self._table_shape = self._sparse_table_shape() if config.sparse_embeddings else None
        if num_devices > 1:
            devices = jax.devices()
            if len(devices) < num_devices:
                raise ValueError(f"num_devices: {num_devices} requested, jax sees {len(devices)} "
                                 "(on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N)")
            mesh = jax.sharding.Mesh(np.array(devices[:num_devices]), ("data",))
            self._batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "data"))
            self._replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        else:
            self._batch_sharding = self._replicated = None
        # own buffers (not the model's; none shared between state leaves): sparse steps donate them
        self.params, self.opt_state, self.duals, self.seen = self.place(
            self._own((self.params, self.opt_state, self.duals, self.seen)))
        # sparse steps update the tables in place: a call that copied them (10⁷ rows: ~0.4 s) would cost what the
        # steps save, so the trainer's own buffers are donated, and what leaves it (snapshots, state) is a copy
        self._train_batches = jax.jit(self._scan_steps, donate_argnums=(0, 1, 2, 3) if self._table_shape else ())
        self._predict = jax.jit(lambda params, raw, treatment, position: nnx.merge(
            self.graphdef, params, self.constants).predict(raw, treatment, position))
        self._component_predict = jax.jit(lambda params, raw, treatment, position: transfer(nnx.merge(
            self.graphdef, params, self.constants).component_logits(raw, treatment, position), self.kind))

    def place(self, state):
        """Put trainer state (any pytree of arrays) on the training devices: replicated over them when several."""
        if self._replicated is not None:
            return jax.device_put(state, self._replicated)
        return jax.tree.map(jnp.asarray, state)

    def _sparse_table_shape(self) -> tuple[int, ...]:
        """The Q-embedding tables' shape: optimizer state leaves of that shape hold per-row state (AdaGrad's
        accumulator, Adam's moments), gathered and scattered with the rows in a sparse step."""
        leaves = jax.tree_util.tree_flatten_with_path(self.params)[0]
        shapes = {leaf.shape for path, leaf in leaves if path in self._row_count_paths}
        others = {leaf.shape for path, leaf in leaves if path not in self._row_count_paths}
        if len(shapes) != 1 or shapes & others:
            raise ValueError("sparse_embeddings: needs Q-embedding tables of one shape that no other parameter has")
        return shapes.pop()

    # ---- the jitted pass ------------------------------------------------------------------------
    def _by_path(self, params, on_table, on_other):
        """`params` with `on_table` applied to the Q-embedding tables and `on_other` to every other leaf."""
        return jax.tree_util.tree_map_with_path(
            lambda path, leaf: on_table(leaf) if path in self._row_count_paths else on_other(leaf), params)

    def _row_counts(self, params, raw, weight):
        """Occurrences of each Q-tower embedding row in the batch (CowClip's cnt); empty for other leaves."""
        counts = jnp.zeros(sum(self._spec.field_sizes), jnp.float32).at[embedding_ids(self._spec, raw)].add(
            (weight > 0).astype(jnp.float32)[:, None])
        return self._by_path(params, lambda _: counts, lambda _: jnp.zeros(0))

    def _scan_steps(self, params, opt_state, duals, seen, batches):
        graphdef, constants, kind, config, terms = self.graphdef, self.constants, self.kind, self.config, self._terms

        def objective(p, duals, raw, treatment, position, label, weight, query, soft_label, ramp, rows=None):
            logits = nnx.merge(graphdef, p, constants).component_logits(raw, treatment, position, rows)  # [B, E]
            probabilities = transfer(logits, kind)
            prediction = probabilities.mean(axis=-1)
            batch = LossBatch(logits, probabilities, prediction, raw, treatment, position, label, weight, query,
                              soft_label, ramp, duals, kind, self._slice_sizes, self.max_ads_per_query)
            return total_loss(batch, config, terms), prediction

        def train_step(carry, batch):
            params, opt_state, duals, seen = carry
            raw, treatment, position, label, weight, query, soft_label = batch
            ramp = curriculum_ramp(seen, config.loss_curriculum, config.loss_curriculum_examples)
            if self._table_shape is None:
                rows, row_counts = None, self._row_counts(params, raw, weight)
                step_params, step_state = params, opt_state
            else:  # the rows the batch uses, gathered from the tables and their per-row optimizer state
                rows, lookup = _distinct_rows(embedding_ids(self._spec, raw), self._table_shape[0])
                counts = jnp.zeros(rows.shape, jnp.float32).at[lookup].add((weight > 0).astype(jnp.float32)[:, None])
                row_counts = self._by_path(params, lambda _: counts, lambda _: jnp.zeros(0))
                step_params = self._by_path(params, lambda table: table[rows], lambda leaf: leaf)
                step_state = jax.tree.map(lambda x: x[rows] if x.shape == self._table_shape else x, opt_state)
            (_, prediction), (grads, dual_grads) = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)(
                step_params, duals, raw, treatment, position, label, weight, query, soft_label, ramp,
                None if rows is None else lookup)
            updates, step_state = self.optimizer.update(grads, step_state, step_params, row_counts=row_counts,
                                                        batch_weight=jnp.sum(weight))
            step_params = optax.apply_updates(step_params, updates)
            if self._table_shape is None:
                params, opt_state = step_params, step_state
            else:  # written back, but not rows only zero-weight examples (padding) used, nor the padding slots
                written = jnp.where(counts > 0, rows, self._table_shape[0])  # past the table's end: dropped
                scatter = lambda full, part: full.at[written].set(part, mode="drop")  # noqa: E731
                params = jax.tree_util.tree_map_with_path(
                    lambda path, full, part: scatter(full, part) if path in self._row_count_paths else part,
                    params, step_params)
                opt_state = jax.tree.map(lambda full, part: scatter(full, part) if full.shape == self._table_shape
                                         else part, opt_state, step_state)
            duals = duals + config.bias_learning_rate * dual_grads  # gradient ascent on the duals
            seen = seen + jnp.sum(weight > 0)
            return (params, opt_state, duals, seen), prediction

        def padding_step(carry, batch):
            return carry, jnp.zeros(batch[3].shape, jnp.float32)

        def step(carry, batch):
            # a batch with no weight (the padding that keeps scan lengths few) is not an optimizer step: Adam's
            # and Shampoo's moments and step counts, and weight decay, would otherwise move on it
            return jax.lax.cond(jnp.any(batch[4] > 0), train_step, padding_step, carry, batch)

        (params, opt_state, duals, seen), predictions = jax.lax.scan(step, (params, opt_state, duals, seen), batches)
        return params, opt_state, duals, seen, predictions

    def train_batches(self, batches: tuple) -> jax.Array:
        """Train on stacked batches (raw, treatment, position, label, weight, query, soft_label), each [steps, B, ...];
        return the PV predictions [steps, B]."""
        if self._batch_sharding is not None:
            batches = jax.device_put(batches, self._batch_sharding)
        if self.teacher is not None:
            soft = self.teacher.train_batches(batches)
            batches = (*batches[:-1], soft)
        self.params, self.opt_state, self.duals, self.seen, predictions = self._train_batches(
            self.params, self.opt_state, self.duals, self.seen, batches)
        return predictions

    def train(self, examples: Examples | None, flush: bool = False) -> tuple[np.ndarray, int]:
        """Train on buffered + new examples in order; return (PV predictions, how many buffered examples they cover).

        The predictions are for the first `len(predictions)` examples in arrival order; with
        `flush`, a final partial batch is trained too (padded with zero-weight rows).
        """
        if examples is not None and examples.size:
            self._buffer.append(examples)
            self._buffered += examples.size
        usable = self._buffered if flush else self._buffered - self._buffered % self.batch_size
        if usable == 0:
            return np.zeros(0, np.float32), 0
        pending = Examples.concat(self._buffer)
        taken, rest = pending.slice(0, usable), pending.slice(usable, pending.size)
        self._buffer, self._buffered = ([rest] if rest.size else []), rest.size
        steps = -(-usable // self.batch_size)
        slots = _next_power_of_two(steps) * self.batch_size  # few distinct shapes ⇒ few compilations
        pad = slots - usable
        # padding rows: zero weight, and queries −1, −2, … so no padding row pairs with another row
        columns = [_zero_padded(c, slots) for c in taken[:5]]
        query = taken.query - taken.query.min()
        columns += [np.concatenate([query, -1 - np.arange(pad)]).astype(np.int32), columns[3]]  # soft label = label
        batches = tuple(c.reshape(-1, self.batch_size, *c.shape[1:]) for c in columns)
        predictions = self.train_batches(batches)
        return np.asarray(predictions).reshape(-1)[:usable], usable

    def predict(self, examples: Examples, chunk: int = 65_536) -> np.ndarray:
        """pCTR of the current parameters for each example, without training (held-out evaluation)."""
        return self._chunked(self._predict, examples, chunk)

    def component_predict(self, examples: Examples, chunk: int = 65_536) -> np.ndarray:
        """Each ensemble component's pCTR float32[n, E] for each example (the spread anti-distillation acts on)."""
        return self._chunked(self._component_predict, examples, chunk)

    def _chunked(self, function, examples: Examples, chunk: int) -> np.ndarray:
        parts = []
        for start in range(0, examples.size, chunk):
            rows = examples.slice(start, start + chunk)
            columns = [_zero_padded(c, chunk) for c in rows[:3]]  # one compiled shape
            parts.append(np.asarray(function(self.params, *columns))[:rows.size])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _own(self, tree):
        """`tree` (this trainer's arrays) safe to hand out: a copy where training donates its buffers."""
        return jax.tree.map(jnp.copy, tree) if self._table_shape else tree

    def state(self) -> TrainerState:
        """What training has changed, as named data (checkpoints save it; `restore` sets it)."""
        return TrainerState(*self._own((self.params, self.opt_state, self.duals, self.seen)), tuple(self._buffer),
                            None if self.teacher is None else self.teacher.state())

    def restore(self, state: TrainerState) -> None:
        """Set the state `state()` returned (placed on this trainer's devices)."""
        self.params, self.opt_state, self.duals, self.seen = self.place(
            self._own((state.params, state.opt_state, state.duals, state.seen)))
        self._buffer, self._buffered = list(state.buffer), sum(part.size for part in state.buffer)
        if self.teacher is not None:
            self.teacher.restore(state.teacher)

    def snapshot(self) -> nnx.State:
        """The current parameters (immutable arrays, or a copy where training donates them, so the deployed copy
        never changes under the auction)."""
        return self._own(self.params)


class Scorer:
    """Scores a tick's candidates with a deployed snapshot: pCTR float32[B, N, T, K]."""

    def __init__(self, trainer: OnlineTrainer):
        graphdef, constants = trainer.graphdef, trainer.constants
        self._score = jax.jit(lambda params, raw: nnx.merge(graphdef, params, constants).score_candidates(raw))

    def __call__(self, params: nnx.State, raw: np.ndarray | jax.Array) -> jax.Array:
        return self._score(params, raw)
