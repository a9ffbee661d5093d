"""The closed loop on one simpy clock: traffic → scoring → VCG → clicks → logs → online training → deploy.

Three processes share the environment: `traffic` wakes once per tick and runs a whole batch of
queries through the deployed model and the auction; `training` wakes once per tick and trains on the
logs whose training delay has passed; `deployment` snapshots the trainer every D minutes and puts the
snapshot live after the deploy delay.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import simpy
from flax import nnx

from auction import (
    AuctionOutcome,
    pad_rows,
    preferred_batch,
    resolve_ties,
    vcg_batch,
)
from auction.reserves import RESERVE_KINDS
from models import (
    Examples,
    Scorer,
)
from models.metrics import log_loss
from simulator.config import Scenario
from simulator.loop import checkpoint
from simulator.loop.builders import (
    build_trainer,
    sampling_rates,
    training_order,
    uniform_hash,
)
from simulator.loop.records import (
    ImpressionLog,
    Progress,
    PvChunk,
    TrainingDiverged,
    chunk_bounds,
    query_context,
)
from simulator.loop.results import RunOutput
from simulator.world.ground_truth import QueryBatch, World, true_ctr

EXPLORATION_STREAM = 0xE7  # spawn key of the exploration generator (the world's streams use 0xAD)
_oracle_ctr = jax.jit(true_ctr)


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
        self._reserves = RESERVE_KINDS[a.reserve_kind].per_candidate
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
            reserve = self._reserves(reserve, ctr)
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
                    checkpoint.save(self, checkpoint_dir)
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
        directory, state, scenario = checkpoint.read(checkpoint_dir)
        simulation = cls(scenario, progress=progress)
        checkpoint.restore(simulation, directory, state)
        return simulation

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
