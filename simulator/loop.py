"""The closed loop on one simpy clock: traffic → scoring → VCG → clicks → logs → online training → deploy.

Three processes share the environment: `traffic` wakes once per tick and runs a whole batch of
queries through the deployed model and the auction; `training` wakes once per tick and trains on the
logs whose training delay has passed; `deployment` snapshots the trainer every D minutes and puts the
snapshot live after the deploy delay.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import pandas as pd
import simpy
from flax import nnx

from auction import (
    AuctionOutcome,
    pad_rows,
    preferred_batch,
    quality_weighted_reserve,
    resolve_ties,
    vcg_batch,
)
from models import (
    CtrModel,
    Examples,
    FeatureSpec,
    HiddenLayers,
    LossConfig,
    OnlineTrainer,
    OptimizerConfig,
    Scorer,
    TowerShape,
    make_optimizer,
)
from models.activations import activation
from models.metrics import log_loss
from simulator.config import DataConfig, Scenario
from simulator.results import RunOutput
from simulator.world import QueryBatch, World, true_ctr

# A tick's queries go through the jitted scorer and auction in chunks of these sizes only (the last one
# padded), so each compiles four shapes at most; ~1K rows also keeps the auction's slate arrays in cache.
CHUNK_SIZES = (1024, 512, 256, 128)
EXPLORATION_STREAM = 0xE7  # spawn key of the exploration generator (the world's streams use 0xAD)


@dataclass
class Progress:
    """What a progress callback sees, about once a second and at the end."""

    sim_minute: float
    duration_minutes: float
    queries: int
    wall_seconds: float
    recent_pv_logloss: float

    @property
    def fraction(self) -> float:
        return min(self.sim_minute / self.duration_minutes, 1.0)

    @property
    def queries_per_second(self) -> float:
        return self.queries / self.wall_seconds if self.wall_seconds > 0 else 0.0


class TrainingDiverged(RuntimeError):
    """Training went wrong (non-finite or exploding loss); the message is the one-line reason."""


def query_context(batch: QueryBatch, num_intents: int) -> np.ndarray:
    """int32[B]: each query's context (topic, intent) as one number, topic·intents + intent."""
    return (batch.topic.astype(np.int32) * num_intents + batch.intent).astype(np.int32)


class ImpressionLog:
    """Every shown ad of the run in time order, column by column (what churn and attribution metrics read)."""

    COLUMNS = ("minute", "query", "context", "position", "treatment", "ad_id", "click", "true_ctr", "pctr",
               "price_per_click")

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in self.COLUMNS}

    def append(self, **columns: np.ndarray) -> None:
        for name in self.COLUMNS:
            self._parts[name].append(np.asarray(columns[name]))

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(self._parts[name]) if self._parts[name] else np.zeros(0)

    def frame(self) -> pd.DataFrame:
        """All impressions as a DataFrame (query = the query's number in the run, position 0 = top)."""
        return pd.DataFrame({name: self.column(name) for name in self.COLUMNS})


def build_model(scenario: Scenario, world: World, width_multiplier: int = 1, seed_offset: int = 0) -> CtrModel:
    """The scenario's CTR model, initialised from the nuisance seed (`width_multiplier` widens the Q tower: teachers)."""
    w, m = scenario.world, scenario.model
    spec = FeatureSpec(w.num_topics, w.num_intents, w.num_advertisers, m.ad_buckets, m.cross_buckets)
    shape = TowerShape(
        embedding_dim=m.embedding_dim, quality_hidden=tuple(width_multiplier * h for h in m.quality_hidden),
        ui_hidden=tuple(m.ui_hidden), interaction_dim=m.interaction_dim, dcn_layers=m.dcn_layers, dcn_rank=m.dcn_rank,
        bottleneck_dim=m.bottleneck_dim, embedding_init_std=m.embedding_init_std, position_feature=m.position_feature,
        hidden=HiddenLayers(
            activation=activation(m.activation, smelu_beta=m.smelu_beta, gsmelu_params=dict(
                alpha=m.gsmelu_alpha, beta=m.gsmelu_beta, g_minus=m.gsmelu_g_minus, g_plus=m.gsmelu_g_plus, t=m.gsmelu_t)),
            normalization=m.normalization, weight_norm=m.weight_norm, activation_clip=m.activation_clip))
    key = jax.random.key(m.init_seed + 7919 * scenario.run.seed + 104_729 * seed_offset)
    return CtrModel(spec, world.treatment_features, w.num_positions, shape, transfer=m.transfer,
                    architecture=m.architecture, ensemble_size=m.ensemble_size, rngs=nnx.Rngs(params=key))


def build_trainer(scenario: Scenario, world: World) -> OnlineTrainer:
    """The online trainer the scenario asks for: optimizer, loss terms, teacher (distillation), devices."""
    t = scenario.train
    optimizer = make_optimizer(OptimizerConfig(
        kind=t.optimizer, learning_rate=t.learning_rate, initial_accumulator=t.adagrad_initial_accumulator,
        embedding_learning_rate=t.embedding_learning_rate, embedding_l2=t.embedding_l2, batch_size=t.batch_size,
        base_batch_size=t.scaling_base_batch_size, cowclip=t.cowclip, cowclip_r=t.cowclip_r,
        cowclip_zeta=t.cowclip_zeta, shampoo_block_size=t.shampoo_block_size,
        shampoo_update_every=t.shampoo_update_every, shampoo_momentum=t.shampoo_momentum,
        shampoo_start_preconditioning=t.shampoo_start_preconditioning))
    losses = LossConfig(
        rank_weight=t.rank_loss_weight, distillation_weight=t.distillation_weight,
        anti_distillation_weight=t.anti_distillation_weight, curriculum=t.loss_curriculum,
        curriculum_examples=t.loss_curriculum_examples, bias_slices=tuple(t.bias_constraints),
        bias_alpha=t.bias_alpha, bias_learning_rate=t.bias_learning_rate)
    teacher = None
    if t.distillation_weight:
        teacher_optimizer = make_optimizer(OptimizerConfig(learning_rate=t.learning_rate,
                                                           initial_accumulator=t.adagrad_initial_accumulator))
        teacher = OnlineTrainer(build_model(scenario, world, t.teacher_width_multiplier, seed_offset=1),
                                teacher_optimizer, t.batch_size, num_devices=t.num_devices)
    return OnlineTrainer(build_model(scenario, world), optimizer, t.batch_size, losses=losses, teacher=teacher,
                         num_devices=t.num_devices, max_ads_per_query=scenario.world.num_positions)


# The ideal system's "model": the world's true CTR, computed where the auction runs.
_oracle_ctr = jax.jit(true_ctr)


def sampling_rates(data: DataConfig, click: np.ndarray, position: np.ndarray, pctr: np.ndarray) -> np.ndarray:
    """Each logged example's keep probability (Factory Floor §3.3): the smallest rate of the conditions it meets."""
    rate = np.where(click > 0, 1.0, data.negative_keep_rate)
    rate = np.where(position >= data.low_position_from, np.minimum(rate, data.low_position_keep_rate), rate)
    low_loss = (click == 0) & (pctr < data.low_pctr_threshold)
    return np.where(low_loss, np.minimum(rate, data.low_pctr_keep_rate), rate).astype(np.float32)


def uniform_hash(query: np.ndarray, position: np.ndarray, salt: int = 0) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) per (query number, position, salt < 256): splitmix64 finaliser."""
    x = np.asarray(query, np.uint64) * np.uint64(8) + np.asarray(position, np.uint64) + (np.uint64(salt) << np.uint64(56))
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def training_order(query: np.ndarray, shuffle_seed: int) -> np.ndarray:
    """Rows in a query order drawn from `shuffle_seed` (a fixed hash: no RNG state), each query's rows kept together."""
    return np.argsort(uniform_hash(query, 0, salt=shuffle_seed), kind="stable")


def chunk_bounds(count: int, largest: int = CHUNK_SIZES[0]) -> list[tuple[int, int, int]]:
    """Split `count` rows into (start, stop, padded_size) chunks of CHUNK_SIZES up to `largest`; padding < 128."""
    sizes = [s for s in CHUNK_SIZES if s <= largest] or [CHUNK_SIZES[-1]]
    bounds, start = [], 0
    while start < count:
        left = count - start
        size = next((s for s in sizes if s <= left), sizes[-1])
        bounds.append((start, min(start + size, count), size))
        start += size
    return bounds


class Simulation:
    """One run of the loop. `run()` returns per-tick metric rows and the impression log.

    `sync_stages` waits for each jitted stage to finish, so the stage timers are exact (benchmarks);
    results are identical either way. `keep_training_logs` keeps what the trainer is fed, tick by tick,
    as `training_logs`; passing another run's list as `training_logs` trains this run on it instead of
    on its own logs (the open-loop control of paired replays).
    """

    def __init__(self, scenario: Scenario, progress: Callable[[Progress], None] | None = None,
                 sync_stages: bool = False, training_logs: list | None = None, keep_training_logs: bool = False):
        self.scenario = scenario
        # Open loop: train on another run's logs (its `training_logs`) instead of the ones this run's auctions make.
        self._external_logs = collections.deque(training_logs) if training_logs is not None else None
        self.training_logs: list | None = [] if keep_training_logs else None
        self.progress = progress
        self.sync_stages = sync_stages
        self.world = World(scenario)
        self.world.reset(scenario.run.seed)
        self.oracle = scenario.model.oracle
        if not self.oracle:
            self.trainer = build_trainer(scenario, self.world)
            self.scorer = Scorer(self.trainer)
            self.deployed = self.trainer.snapshot()
        a = scenario.auction
        budget = a.page_height_budget or None
        self._auction_options = dict(mode=a.reserve_mode, space_budget=budget,
                                     heights=tuple(map(float, self.world.treatment_heights)) if budget else None)
        self._chunk_rows = preferred_batch(scenario.world.num_positions, scenario.world.candidates_per_query,
                                           self._auction_options["heights"], budget)
        self.deploy_version = 0
        self.rows: list[dict] = []
        self.log = ImpressionLog()
        self.probes: list[tuple[np.ndarray, ...]] = []  # PROBE_FIELDS per tick
        self.pv: list[PvChunk] = []
        self._pending: collections.deque = collections.deque()  # (available_minute, Examples, true_ctr)
        self._unscored: list[tuple[np.ndarray, ...]] = []  # (label, weight, true CTR, query) trained, not yet scored
        self._queries = 0
        self._trained = 0  # examples trained so far
        self.env: simpy.Environment | None = None
        self.processes: dict = {}  # live simpy process → (kind, snapshot it deploys), for checkpoints
        self.upcoming: QueryBatch | None = None  # the next tick's queries, drawn while the auction runs
        self.resumed_wall_seconds = 0.0  # wall time spent before a resume
        self._timers = collections.Counter()

    # ---- the processes -------------------------------------------------------------------------
    # Each process takes `wait`: None on a fresh start; on resume, the time until the event it was waiting
    # for when the checkpoint was taken (checkpoint.py re-creates the pending events in their order).
    def traffic(self, env: simpy.Environment, wait: float | None = None):
        """Each tick: send the tick's queries to scoring and the auction, and while those run draw the next
        tick's queries (the world does not depend on auction outcomes), then settle clicks and logs."""
        tick = self.scenario.run.tick_minutes
        end = self.scenario.run.duration_hours * 60.0 - 1e-9  # a tick starting before this runs (as in `run`)
        if wait is None:
            self.upcoming = self._draw(env.now, tick)
        else:
            yield env.timeout(wait)
        while True:
            batch = self.upcoming
            in_flight = self._dispatch(batch)
            self.upcoming = self._draw(env.now + tick, tick) if env.now + tick < end else None
            self.rows.append(self._settle(env.now, batch, in_flight))
            yield env.timeout(tick)

    def training(self, env: simpy.Environment, wait: float | None = None):
        tick = self.scenario.run.tick_minutes
        yield env.timeout(tick if wait is None else wait)
        while True:
            self._train_available(env.now, flush=False)
            yield env.timeout(tick)

    def deployment(self, env: simpy.Environment, wait: float | None = None):
        t = self.scenario.train
        yield env.timeout(t.deploy_every_minutes if wait is None else wait)
        while True:
            self._start(env, "go_live", t.deploy_delay_minutes, self.trainer.snapshot())
            yield env.timeout(t.deploy_every_minutes)

    def _go_live(self, env: simpy.Environment, wait: float, snapshot: nnx.State):
        yield env.timeout(wait)
        self.deployed = snapshot
        self.deploy_version += 1
        del self.processes[env.active_process]  # done: nothing left to checkpoint

    def _start(self, env: simpy.Environment, kind: str, wait: float | None = None, snapshot=None) -> None:
        """Start one of the processes and remember its kind (and snapshot), which checkpoints record."""
        if kind == "go_live":
            process = env.process(self._go_live(env, wait, snapshot))
        else:
            process = env.process(getattr(self, kind)(env, wait))
        self.processes[process] = (kind, snapshot)

    # ---- the work of one tick --------------------------------------------------------------------
    def _draw(self, minute: float, tick: float) -> QueryBatch:
        """Advance the world to `minute` (ad churn) and draw the tick's queries with their candidates."""
        started = time.perf_counter()
        self.world.churn(minute, tick)
        batch = self.world.queries(minute, tick)
        self._timers["world"] += time.perf_counter() - started
        return batch

    def _dispatch(self, batch: QueryBatch) -> list:
        """Start scoring and the auction for every chunk of the batch; JAX runs them asynchronously.

        Each in-flight entry: (rows, auction outcome, the auction's inputs, the model's pCTR). They differ only
        on explored queries, where the auction ranks on perturbed pCTRs. With `sync_stages`, wait after each
        stage instead, so the timers split scoring from auction.
        """
        clock = time.perf_counter
        explore = self._exploration_factors(batch)
        in_flight = []
        for start, stop, size in chunk_bounds(batch.size, self._chunk_rows):
            started = clock()
            if self.oracle:
                ctr = _oracle_ctr(pad_rows(batch.relevance[start:stop], size), self.world.examination)
            else:
                ctr = self.scorer(self.deployed, pad_rows(batch.features[start:stop], size))
            if self.sync_stages:
                ctr = jax.block_until_ready(ctr)
            scored = clock()
            bid, reserve = pad_rows(batch.bid[start:stop], size), pad_rows(batch.reserve[start:stop], size)
            if self.scenario.auction.reserve_kind == "quality_weighted":
                reserve = quality_weighted_reserve(reserve, ctr)
            ranked = ctr if explore is None else ctr * pad_rows(explore[start:stop], size)[:, :, None, None]
            outcome = vcg_batch(ranked, bid, reserve, **self._auction_options)
            if self.sync_stages:
                outcome = jax.block_until_ready(outcome)
            self._timers["scoring"] += scored - started
            self._timers["auction"] += clock() - scored
            in_flight.append((stop - start, outcome, (ranked, bid, reserve), ctr))
        return in_flight

    def _exploration_factors(self, batch: QueryBatch) -> np.ndarray | None:
        """float32[B, N] pCTR multipliers: exp(σz − σ²/2) for every candidate of an explored query, 1 elsewhere.

        Drawn from a generator keyed by (seed, first query number of the tick): deterministic, no state to
        checkpoint, and independent of the world's streams, so paired replays keep their common random numbers.
        """
        a = self.scenario.auction
        if a.exploration_rate <= 0:
            return None
        rng = np.random.default_rng([self.scenario.run.seed, EXPLORATION_STREAM, self._queries])
        explored = rng.random(batch.size) < a.exploration_rate
        noise = np.exp(a.exploration_noise * rng.standard_normal(batch.candidates.shape) - a.exploration_noise ** 2 / 2)
        return np.where(explored[:, None], noise, 1.0).astype(np.float32)

    def _record_probes(self, minute: float, batch: QueryBatch, in_flight: list, context: np.ndarray) -> None:
        """Keep every `run.probe_every`-th query's pCTR of every candidate, treatment and position.

        Paired runs see the same queries and candidates, so these are predictions on the same examples.
        """
        every = self.scenario.run.probe_every
        if not every:
            return
        number = self._queries + np.arange(batch.size)
        chosen = np.flatnonzero(number % every == 0)
        if chosen.size == 0:
            return
        offsets = np.cumsum([0] + [rows for rows, *_ in in_flight])
        chunk = np.searchsorted(offsets, chosen, side="right") - 1
        pctr = np.concatenate([np.asarray(in_flight[c][3])[chosen[chunk == c] - offsets[c]]  # host view, numpy gather
                               for c in np.unique(chunk)])
        self.probes.append((np.full(chosen.size, minute, np.float32), number[chosen], pctr, batch.valid[chosen],
                            batch.candidates[chosen], batch.relevance[chosen],
                            context[chosen]))

    def _settle(self, minute: float, batch: QueryBatch, in_flight: list) -> dict:
        """Collect the auction outcomes, draw clicks from the true CTR, log impressions; the tick's metric row."""
        clock = time.perf_counter
        waited = clock()
        parts = [resolve_ties(AuctionOutcome(*(np.asarray(c)[:rows] for c in outcome)), *inputs, **self._auction_options)
                 for rows, outcome, inputs, _ in in_flight]
        outcome = AuctionOutcome(*(np.concatenate(column) for column in zip(*parts)))
        after_auction = clock()
        self._timers["auction"] += after_auction - waited  # time not hidden behind the next tick's draw
        context = query_context(batch, self.scenario.world.num_intents)  # for the probes and the log
        self._record_probes(minute, batch, in_flight, context)
        b = batch.size
        ad, treatment = outcome.ad, outcome.treatment
        query, position = np.nonzero(ad >= 0)
        candidate = ad[query, position]
        chosen = treatment[query, position]
        true_ctr = batch.relevance[query, candidate] * self.world.examination[chosen, position]
        # the model's own pCTR of the shown placement: not the auction's (which is perturbed on explored queries
        # and made non-increasing along positions), so calibration measures the model
        model_ctr = np.concatenate([np.asarray(ctr)[:rows] for rows, _, _, ctr in in_flight])
        pctr = model_ctr[query, candidate, chosen, position]
        click = (batch.click_noise[query, candidate] < true_ctr).astype(np.float32)
        price = outcome.price_per_click[query, position]
        examples = Examples(batch.features[query, candidate], chosen.astype(np.int32), position.astype(np.int32), click,
                            query=self._queries + query)
        keep_rate = sampling_rates(self.scenario.data, click, position, pctr)
        kept = keep_rate >= uniform_hash(self._queries + query, position)  # same data for every model: no RNG state
        examples = Examples(*(column[kept] for column in examples._replace(weight=1.0 / keep_rate)))
        entry = (minute + self.scenario.train.training_delay_minutes, examples, true_ctr[kept])
        if self.training_logs is not None:
            self.training_logs.append(entry)
        if self._external_logs is None:
            self._pending.append(entry)
        else:  # open loop: the other run's logs of this tick take the place of ours
            while self._external_logs and self._external_logs[0][0] <= entry[0]:
                self._pending.append(self._external_logs.popleft())
        self.log.append(minute=np.full(len(click), minute, np.float32), query=self._queries + query,
                        context=context[query],
                        position=position.astype(np.int8), treatment=chosen.astype(np.int8),
                        ad_id=batch.candidates[query, candidate], click=click.astype(np.int8), true_ctr=true_ctr,
                        pctr=pctr, price_per_click=price)
        self._queries += b
        self._timers["world"] += clock() - after_auction
        return {
            "sim_minute": minute,
            "queries": b,
            "impressions": int(len(click)),
            "clicks": int(click.sum()),
            "revenue": float(np.sum(click * price)),
            "expected_revenue": float(np.sum(price * true_ctr)),
            "welfare": float(np.sum(batch.bid[query, candidate] * true_ctr)),
            "mean_pctr_shown": float(pctr.mean()) if len(click) else float("nan"),
            "mean_true_ctr_shown": float(true_ctr.mean()) if len(click) else float("nan"),
            "deploy_version": self.deploy_version,
        }

    def _train_available(self, minute: float, flush: bool) -> None:
        """Train on every log whose training delay has passed (all of them with `flush`); record PV metrics."""
        ready, truths = [], []
        while self._pending and (flush or self._pending[0][0] <= minute):
            _, examples, true_ctr = self._pending.popleft()
            ready.append(examples)
            truths.append(true_ctr)
        examples = Examples.concat(ready) if ready else None
        if examples is not None:
            true_ctr = np.concatenate(truths)
            if self.scenario.train.shuffle_seed:
                order = training_order(examples.query, self.scenario.train.shuffle_seed)
                examples, true_ctr = examples.take(order), true_ctr[order]
            self._unscored.append((examples.label, examples.weight, true_ctr, examples.query))
        started = time.perf_counter()
        if self.oracle:
            scored = sum(len(label) for label, *_ in self._unscored)
            predictions = None
        else:
            predictions, scored = self.trainer.train(examples, flush=flush)
        self._timers["training"] += time.perf_counter() - started
        if scored == 0:
            return
        columns = [np.concatenate(column) for column in zip(*self._unscored)]
        self._unscored = [tuple(c[scored:] for c in columns)] if scored < len(columns[0]) else []
        label, weight, truth, query = (c[:scored] for c in columns)
        predictions = truth if predictions is None else predictions
        self.pv.append(PvChunk(minute, predictions, label, truth, weight, query))
        self._trained += scored
        row = self.rows[-1]
        row["trained_examples"] = row.get("trained_examples", 0) + scored
        total_weight = float(weight.sum())
        row["trained_weight"] = row.get("trained_weight", 0.0) + total_weight
        row["pv_loss_sum"] = row.get("pv_loss_sum", 0.0) + total_weight * log_loss(predictions, label, weight)
        row["oracle_loss_sum"] = row.get("oracle_loss_sum", 0.0) + total_weight * log_loss(truth, label, weight)
        self._check_divergence(minute, predictions)

    def _check_divergence(self, minute: float, predictions: np.ndarray) -> None:
        """Raise TrainingDiverged on non-finite predictions, or a PV log loss far above the oracle's."""
        where = f"at simulated hour {minute / 60:.2f}"
        if not np.all(np.isfinite(predictions)):
            raise TrainingDiverged(f"training diverged {where}: non-finite predictions")
        t = self.scenario.train
        warmup = max(t.divergence_warmup_examples, 20 * t.batch_size)  # large batches take fewer, later steps
        if self.oracle or not t.divergence_factor or self._trained < warmup:
            return
        pv_sum = oracle_sum = count = 0.0
        for row in reversed(self.rows):
            pv_sum, oracle_sum = pv_sum + row.get("pv_loss_sum", 0.0), oracle_sum + row.get("oracle_loss_sum", 0.0)
            count += row.get("trained_weight", 0.0)
            if count >= 2000:
                break
        if count and pv_sum > t.divergence_factor * oracle_sum:
            raise TrainingDiverged(f"training diverged {where}: PV log loss {pv_sum / count:.3f} > "
                                   f"{t.divergence_factor:g} × the oracle's {oracle_sum / count:.3f} over the last "
                                   f"{int(count):,} examples (train.divergence_factor)")

    # ---- running -------------------------------------------------------------------------------
    def run(self, checkpoint_dir: str | Path | None = None) -> RunOutput:
        """Run the scenario to its end (or on from a checkpoint, see `resume`); same scenario and seed ⇒ same output.

        With `checkpoint_dir`, the whole state is saved there every `run.checkpoint_every_minutes` of
        simulated time; a run that stops on divergence keeps the last checkpoint written before.
        """
        run = self.scenario.run
        duration = run.duration_hours * 60.0
        if self.env is None:  # a fresh start
            self.env = simpy.Environment()
            for kind in ("traffic", "training") + (() if self.oracle else ("deployment",)):
                self._start(self.env, kind)
        env = self.env
        every = run.checkpoint_every_minutes if checkpoint_dir is not None else 0.0
        next_checkpoint = (np.floor(env.now / every) + 1) * every if every else float("inf")
        started = self.started_wall = time.perf_counter()
        last_report = started
        stop = duration - 1e-9
        stopped = None
        try:
            while env.peek() < stop:
                if env.peek() >= next_checkpoint:  # every event before it is done: a consistent state
                    from simulator.checkpoint import save

                    save(self, checkpoint_dir)
                    next_checkpoint += every
                env.step()
                now = time.perf_counter()
                if self.progress is not None and now - last_report >= 1.0:
                    last_report = now
                    self.progress(Progress(env.now, duration, self._queries, now - started, self._recent_pv_logloss()))
            self._train_available(duration, flush=True)
        except TrainingDiverged as err:
            stopped = str(err)  # the metrics so far are kept; the run ends here
        wall = time.perf_counter() - started + self.resumed_wall_seconds
        if self.progress is not None:
            self.progress(Progress(duration, duration, self._queries, wall, self._recent_pv_logloss()))
        return RunOutput(self.scenario, self.rows, self.pv, self.log, dict(self._timers), wall, self._queries,
                         self.probes, self.training_logs, stopped)

    @classmethod
    def resume(cls, checkpoint_dir: str | Path, progress: Callable[[Progress], None] | None = None) -> "Simulation":
        """The simulation saved in `checkpoint_dir`, ready to `run` on to the end."""
        from simulator.checkpoint import load

        return load(checkpoint_dir, progress)

    def _recent_pv_logloss(self) -> float:
        """PV log loss over about the last 20,000 trained examples (for progress displays)."""
        losses, count = 0.0, 0.0
        for chunk in reversed(self.pv):
            weight = float(chunk.weight.sum())
            losses += weight * log_loss(chunk.prediction, chunk.label, chunk.weight)
            count += weight
            if count >= 20_000:
                break
        return losses / count if count else float("nan")


@dataclass
class PvChunk:
    """Predictions made by progressive validation at `minute`, with labels, true CTRs, importance weights, query numbers."""

    minute: float
    prediction: np.ndarray
    label: np.ndarray
    truth: np.ndarray
    weight: np.ndarray
    query: np.ndarray
