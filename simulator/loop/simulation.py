"""The closed loop on one simpy clock: traffic → scoring → VCG → clicks → logs → online training → deploy.

Three processes share the environment: `traffic` wakes once per tick and runs a whole batch of
queries through the deployed model and the auction; `training` wakes once per tick and trains on the
logs whose training delay has passed; `deployment` snapshots the trainer every D minutes and puts the
snapshot live after the deploy delay.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import simpy
from flax import nnx

from auction import pad_rows
from models import Scorer
from simulator import config as config_module
from simulator.config import Scenario
from simulator.loop import checkpoint
from simulator.loop.auctioneer import Auctioneer, batch_order
from simulator.loop.builders import build_trainer
from simulator.loop.records import (PV_COLUMNS, ColumnLog, ImpressionLog, PendingLog, ProbeRecord, Progress, PvChunk,
                                    TrainingDiverged, Unscored, chunk_bounds, query_context)
from simulator.loop.results import RunOutput
from simulator.loop.processes import Processes
from simulator.loop.state import RunState, Wakeup, pytree_templates
from simulator.loop.tick import (add_pv, check_divergence, exploration_factors, pop_ready, probe_record,
                                 recent_pv_logloss, shown_and_clicked, split_scored)
from simulator.world.click_models import trusted_ctr
from simulator.world.ground_truth import QueryBatch, true_ctr
from simulator.world.kinds import make_world

_oracle_ctr = jax.jit(true_ctr)
_trusted_ctr = jax.jit(trusted_ctr, static_argnums=(1, 2))
WARM_START_VERSION = 2  # in the warm-start cache key: bump when the code changes what a pre-training produces


@jax.jit
def _at_slots(ctr: jax.Array, slots: jax.Array) -> jax.Array:
    """CTRs over the world's slots [B, N, T, S] → at each query's page positions [B, N, T, K] (slots int32[B, K])."""
    return jnp.take_along_axis(ctr, slots[:, None, None, :], axis=3)


class Simulation:
    """One run of the loop. `run()` returns per-tick metric rows and the impression log.

    `sync_stages` waits for each jitted stage to finish, so the stage timers are exact (benchmarks);
    results are identical either way. `keep_training_logs` keeps what the trainer is fed, tick by tick,
    as `training_logs` (True: a list of `PendingLog`s; or any object with `append(PendingLog)`, which then
    receives them); passing another run's list as `training_logs` trains this run on it instead of
    on its own logs (the open-loop control of paired replays).
    """

    def __init__(self, scenario: Scenario, progress: Callable[[Progress], None] | None = None,
                 sync_stages: bool = False, training_logs: list | None = None, keep_training_logs: bool | Any = False,
                 stop: Callable[[], bool] | None = None):
        self.scenario = scenario
        self.stop = stop  # asked after every event: true ends the run there, keeping what it made (the app's Stop)
        # Open loop: train on another run's logs (its `training_logs`) instead of the ones this run's auctions make.
        self._external_logs = collections.deque(training_logs) if training_logs is not None else None
        self.training_logs = ([] if keep_training_logs else None) if isinstance(keep_training_logs, (bool, np.bool_)) \
            else keep_training_logs
        self.progress = progress
        self.sync_stages = sync_stages
        self.world = make_world(scenario)
        self.oracle = scenario.model.oracle
        if not self.oracle:
            self.trainer = build_trainer(scenario, self.world)
            self.scorer = Scorer(self.trainer)
            self.deployed = self.trainer.snapshot()
        self.auctioneer = Auctioneer.from_config(scenario, self.world.treatment_heights)
        self.deploy_version = 0
        self.rows: list[dict] = []
        self.log, self.pv, self.probes = self._new_records()
        self._pending: collections.deque[PendingLog] = collections.deque()
        self._unscored: list[Unscored] = []  # trained, PV predictions not back yet
        self._queries = 0
        self.window_first_query = 0  # a warm start's records number queries from its window's first
        self._trained = 0  # examples trained so far
        self.processes: Processes | None = None  # the simpy environment, from the run's start
        self.upcoming: QueryBatch | None = None  # the next tick's queries, drawn while the auction runs
        self.started_wall: float | None = None
        self.resumed_wall_seconds = 0.0  # wall time spent before a resume
        # A warm start runs after `window_start` simulated minutes of pre-training; its records count from there.
        self.window_start = 60.0 * scenario.run.warm_start_hours
        self._timers = collections.Counter()

    # ---- the processes -------------------------------------------------------------------------
    # Each process takes `wait`: None on a fresh start; on resume, the time until the wake-up it had recorded.
    # Each sleeps through `Processes.sleep`, which records its next wake-up.
    def traffic(self, env: simpy.Environment, wait: float | None = None):
        """Each tick: send the tick's queries to scoring and the auction, and while those run draw the next
        tick's queries (the world does not depend on auction outcomes), then settle clicks and logs."""
        tick = self.scenario.run.tick_minutes
        end = self.window_start + self.scenario.run.duration_hours * 60.0 - 1e-9  # a tick starting before this runs
        if wait is None:
            self.upcoming = self._draw(env.now, tick)
        else:
            yield self.processes.first_sleep(wait)
        while True:
            batch = self.upcoming
            in_flight = self._dispatch(batch)
            self.upcoming = self._draw(env.now + tick, tick) if env.now + tick < end else None
            self.rows.append(self._settle(env.now, batch, in_flight))
            yield self.processes.sleep(tick)

    def training(self, env: simpy.Environment, wait: float | None = None):
        tick = self.scenario.run.tick_minutes
        yield self.processes.first_sleep(tick if wait is None else wait)
        while True:
            self._train_available(env.now, flush=False)
            yield self.processes.sleep(tick)

    def deployment(self, env: simpy.Environment, wait: float | None = None):
        t = self.scenario.train
        yield self.processes.first_sleep(t.deploy_every_minutes if wait is None else wait)
        while True:
            self._start("go_live", t.deploy_delay_minutes, self.trainer.snapshot())
            yield self.processes.sleep(t.deploy_every_minutes)

    def _go_live(self, wait: float, snapshot: nnx.State):
        yield self.processes.first_sleep(wait)
        self.deployed = snapshot
        self.deploy_version += 1
        self.processes.finish()

    def _start(self, kind: str, wait: float | None = None, snapshot=None, wakeup: Wakeup | None = None) -> None:
        env = self.processes.env
        process = self._go_live(wait, snapshot) if kind == "go_live" else getattr(self, kind)(env, wait)
        self.processes.start(kind, process, snapshot, wakeup)

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

        Each in-flight entry: (rows, auction outcome, the auction's inputs, the model's pCTR, the chunk's batch
        rows or None for the next `rows` in order). The auction's and the model's pCTRs differ only on explored
        queries, where the auction ranks on perturbed pCTRs. With `sync_stages`, wait after each stage instead,
        so the timers split scoring from auction.
        """
        clock = time.perf_counter
        explore = exploration_factors(self.scenario.auction, self.scenario.run.seed, self._queries, batch)
        slots = self.world.slots(batch) if self.world.num_devices > 1 else None
        in_flight = []
        for group, positions in self._page_groups(batch):
            for start, stop, size in chunk_bounds(batch.size if group is None else group.size,
                                                  self.auctioneer.chunk_rows):
                rows = None if group is None else group[start:stop]
                take = (lambda a: a[start:stop]) if rows is None else (lambda a: a[rows])  # noqa: E731
                started = clock()
                if self.oracle:
                    ctr = _oracle_ctr(pad_rows(take(batch.relevance), size), pad_rows(take(batch.lift), size),
                                      self.world.examination)
                else:
                    ctr = self.scorer(self.deployed, pad_rows(take(batch.features), size))
                if self.world.num_devices > 1:  # CTRs over every device's slots → at this page's positions
                    ctr = _at_slots(ctr, pad_rows(take(slots), size))
                if self.oracle and self.scenario.world.trust:  # the trust term: still one CTR per ad and position
                    ctr = _trusted_ctr(ctr, self.scenario.world.trust_false_click, self.scenario.world.trust_true_click_drop)
                if self.sync_stages:
                    ctr = jax.block_until_ready(ctr)
                scored = clock()
                bid, reserve = pad_rows(take(batch.bid), size), pad_rows(take(batch.reserve), size)
                outcome, inputs = self.auctioneer.start(ctr, bid, reserve,
                                                        None if explore is None else pad_rows(take(explore), size),
                                                        positions)
                if self.sync_stages:
                    outcome = jax.block_until_ready(outcome)
                self._timers["scoring"] += scored - started
                self._timers["auction"] += clock() - scored
                in_flight.append((stop - start, outcome, inputs, ctr, rows))
        return in_flight

    def _page_groups(self, batch: QueryBatch) -> list[tuple[np.ndarray | None, int]]:
        """The batch's rows (None: all, in order) by page length, with that length: each auction then runs on
        its pages' own positions (a phone's 4 as a 4-position auction, ~3× cheaper than 7 with 3 masked)."""
        length = self.world.page_positions[batch.device]
        if np.all(length == self.scenario.world.num_positions):
            return [(None, self.scenario.world.num_positions)]
        order = np.argsort(length, kind="stable").astype(np.int32)
        return [(rows, int(length[rows[0]])) for rows in np.split(order, np.flatnonzero(np.diff(length[order])) + 1)]

    def _settle(self, minute: float, batch: QueryBatch, in_flight: list) -> dict:
        """Collect the auction outcomes, draw clicks from the true CTR, log impressions; the tick's metric row."""
        clock = time.perf_counter
        waited = clock()
        order = batch_order(in_flight)
        outcome = self.auctioneer.finish(in_flight, self.scenario.world.num_positions, order)
        after_auction = clock()
        self._timers["auction"] += after_auction - waited  # time not hidden behind the next tick's draw
        model_ctr = np.concatenate([np.asarray(ctr)[:rows] for rows, _, _, ctr, _ in in_flight])  # host pCTRs
        if order is not None:  # chunks by page length: back to the batch's order
            model_ctr = model_ctr[order]
        context = query_context(batch, self.scenario.world.num_intents)  # for the probes and the log
        probes = probe_record(self.scenario.run.probe_every, self._queries, minute - self.window_start, batch,
                              model_ctr, context)
        if probes is not None:
            self.probes.append(**probes._replace(query=probes.query - self.window_first_query)._asdict())
        entry, impressions, row = shown_and_clicked(minute, batch, outcome, model_ctr, context,
                                                    self.world.examination, self.world.slots(batch), self._queries,
                                                    self.scenario)
        if self.window_start:  # the window's own clock and query numbers: rows and impressions count from its start
            impressions["minute"] -= np.float32(self.window_start)
            impressions["query"] -= self.window_first_query
            row["sim_minute"] -= self.window_start
        if self.training_logs is not None:
            self.training_logs.append(entry)
        if self._external_logs is None:
            self._pending.append(entry)
        else:  # open loop: the other run's logs of this tick take the place of ours
            while self._external_logs and self._external_logs[0].available_minute <= entry.available_minute:
                self._pending.append(self._external_logs.popleft())
        self.log.append(**impressions)
        self._queries += batch.size
        self._timers["world"] += clock() - after_auction
        return dict(row, deploy_version=self.deploy_version)

    def _train_available(self, minute: float, flush: bool) -> None:
        """Train on every log whose training delay has passed (all of them with `flush`); record PV metrics."""
        examples, unscored = pop_ready(self._pending, minute, flush, self.scenario.train.shuffle_seed)
        if unscored is not None:
            self._unscored.append(unscored)
        started = time.perf_counter()
        if self.oracle:
            predictions, scored = None, sum(len(waiting.label) for waiting in self._unscored)
        else:
            predictions, scored = self.trainer.train(examples, flush=flush)
        self._timers["training"] += time.perf_counter() - started
        if scored == 0:
            return
        done, self._unscored = split_scored(self._unscored, scored)
        chunk = PvChunk(minute - self.window_start, done.truth if predictions is None else predictions, done.label, done.truth,
                        done.weight, done.query)
        self.pv.append(**chunk.rows())
        self._trained += scored
        add_pv(self.rows[-1], chunk)
        check_divergence(self.scenario.train, minute, chunk.prediction, self._trained, self.rows, self.oracle)

    # ---- running -------------------------------------------------------------------------------
    def run(self, checkpoint_dir: str | Path | None = None, finish: bool = True) -> RunOutput:
        """Run the scenario to its end (or on from a checkpoint, see `resume`); same scenario and seed ⇒ same output.

        With `checkpoint_dir`, the whole state is saved there every `run.checkpoint_every_minutes` of
        simulated time; a run that stops on divergence keeps the last checkpoint written before. Without `finish` the
        logs still waiting for their training delay stay waiting (a warm start's pre-training: its state is the
        run's at its end, as an uninterrupted run has it).
        """
        run = self.scenario.run
        duration = run.duration_hours * 60.0
        window = self.window_start
        if checkpoint_dir is not None and (self.training_logs is not None or self._external_logs is not None):
            raise checkpoint.CheckpointError("checkpoints: open-loop runs (shared training logs) cannot be checkpointed")
        if self.processes is None and window:  # a fresh warm start: from the pre-trained state
            try:
                self._warm_start()
            except TrainingDiverged as err:
                return RunOutput(self.scenario, [], self.pv, self.log, {}, 0.0, 0, self.probes, self.training_logs, str(err))
        if self.processes is None:  # a fresh start
            self.processes = Processes()
            for kind in ("traffic", "training") + (() if self.oracle else ("deployment",)):
                self._start(kind)
        env = self.processes.env
        every = run.checkpoint_every_minutes if checkpoint_dir is not None else 0.0
        next_checkpoint = (np.floor(env.now / every) + 1) * every if every else float("inf")
        started = self.started_wall = time.perf_counter()
        last_report = started
        end = window + duration - 1e-9
        stopped = None
        try:
            while env.peek() < end:
                if env.peek() >= next_checkpoint:  # every event before it is done: a consistent state
                    checkpoint.save(self.state(), self.scenario, checkpoint_dir, self.pytree_templates())
                    next_checkpoint += every
                env.step()
                if self.stop is not None and self.stop():
                    stopped = f"stopped by request at simulated hour {(env.now - window) / 60:.2f} of {duration / 60:g}"
                    break
                now = time.perf_counter()
                if self.progress is not None and now - last_report >= 1.0:
                    last_report = now
                    self.progress(Progress(env.now - window, duration, self._queries - self.window_first_query,
                                           now - started, recent_pv_logloss(self.rows)))
            else:
                if finish:
                    self._train_available(window + duration, flush=True)
        except TrainingDiverged as err:
            stopped = str(err)  # the metrics so far are kept; the run ends here
        wall = time.perf_counter() - started + self.resumed_wall_seconds
        if self.progress is not None:
            self.progress(Progress(duration if stopped is None else env.now - window, duration,
                                   self._queries - self.window_first_query, wall, recent_pv_logloss(self.rows)))
        return RunOutput(self.scenario, self.rows, self.pv, self.log, dict(self._timers), wall,
                         self._queries - self.window_first_query, self.probes, self.training_logs, stopped)

    def _warm_start(self) -> None:
        """Start from the state at minute `run.warm_start_hours` × 60 of the same scenario, exactly as an uninterrupted
        run has it (logs in flight, partial batches, pending deploys), from the cache or pre-trained now and cached;
        the window's records start empty, so the measures see only the window. Raises TrainingDiverged when the
        pre-training diverges (nothing is cached then)."""
        run = self.scenario.run
        state, _, _ = self.pretrained_state()
        self.restore(state)
        self.rows, (self.log, self.pv, self.probes) = [], self._new_records()
        self._timers, self.resumed_wall_seconds = collections.Counter(), 0.0
        self.deploy_version, self.window_first_query = 0, self._queries
        if self.upcoming is None:  # the pre-training drew no tick past its end: draw the one its traffic waits for
            traffic = next(w for w in state.wakeups if w.kind == "traffic")
            self.upcoming = self._draw(traffic.minute, run.tick_minutes)

    def pretrained_state(self) -> tuple[RunState, Path, bool]:
        """The state after `run.warm_start_hours` simulated hours of the same scenario (its records empty), its cache
        folder in `run.warm_start_cache`, and whether it was cached already: else it is pre-trained now (the progress
        callback sees the pre-training) and cached. Raises TrainingDiverged when the pre-training diverges (nothing
        is cached then)."""
        run = self.scenario.run
        pre = dataclasses.replace(self.scenario, run=dataclasses.replace(
            run, duration_hours=run.warm_start_hours, warm_start_hours=0.0, warm_start_cache="",
            checkpoint_every_minutes=0.0, probe_every=0, records_memory_mb=config_module.RunConfig.records_memory_mb))
        key = f"{checkpoint.FORMAT_VERSION} {WARM_START_VERSION}\n{config_module.dumps(pre)}"
        folder = Path(run.warm_start_cache) / hashlib.sha256(key.encode()).hexdigest()[:16]
        if (folder / "state.json").is_file():
            try:
                directory, tree, _ = checkpoint.read(folder)
                return checkpoint.load(directory, tree, self.pytree_templates()), folder, True
            except (checkpoint.CheckpointError, ValueError):  # unreadable: pre-train again
                pass
        pretraining = Simulation(pre, progress=self.progress)
        output = pretraining.run(finish=False)
        if output.stopped:
            raise TrainingDiverged(f"warm start: the pre-training stopped: {output.stopped}")
        state = pretraining.state(records=False)  # the window's records start empty
        writing = folder.with_name(f"{folder.name}.{os.getpid()}")  # workers sharing a key write apart
        checkpoint.save(state, pre, writing, pretraining.pytree_templates())
        try:
            writing.rename(folder)
        except OSError:  # another worker cached it first
            shutil.rmtree(writing, ignore_errors=True)
        return state, folder, False

    @classmethod
    def resume(cls, checkpoint_dir: str | Path, progress: Callable[[Progress], None] | None = None) -> "Simulation":
        """The simulation saved in `checkpoint_dir`, ready to `run` on to the end."""
        directory, tree, scenario = checkpoint.read(checkpoint_dir)
        simulation = cls(scenario, progress=progress)
        simulation.restore(checkpoint.load(directory, tree, simulation.pytree_templates()))
        return simulation

    # ---- the run's state -----------------------------------------------------------------------
    def state(self, records: bool = True) -> RunState:
        """Everything the run has changed, as named data: between two events, resuming from it is exact. Its PV
        examples, impressions and probes are the run's own logs, not copies (a checkpoint writes them part by part).
        Without `records`, the metric rows and those logs come empty: a warm start's pre-trained state, whose window
        starts its records afresh."""
        running = time.perf_counter() - self.started_wall if self.started_wall is not None else 0.0
        log, pv, probes = (self.log, self.pv, self.probes) if records else self._new_records()
        return RunState(
            now=self.processes.env.now if self.processes is not None else 0.0, world=self.world.state(), upcoming=self.upcoming,
            trainer=None if self.oracle else self.trainer.state(), deployed=None if self.oracle else self.deployed,
            pending=list(self._pending), unscored=list(self._unscored), pv=pv, log=log, probes=probes,
            rows=[dict(row) for row in self.rows] if records else [], queries=self._queries, trained=self._trained,
            deploy_version=self.deploy_version, timers=dict(self._timers),
            wakeups=self.processes.wakeups() if self.processes is not None else [],
            wall_seconds=self.resumed_wall_seconds + running, window_first_query=self.window_first_query)

    def restore(self, state: RunState) -> None:
        """Set a fresh Simulation of the same scenario to `state`, its processes waiting for their wake-ups."""
        self.world.restore(state.world)
        self.upcoming = state.upcoming
        if not self.oracle:
            self.trainer.restore(state.trainer)
            self.deployed = state.deployed
        self._pending = collections.deque(state.pending)
        self._unscored = list(state.unscored)
        self.log, self.pv, self.probes = self._new_records()
        for records, saved in ((self.log, state.log), (self.pv, state.pv), (self.probes, state.probes)):
            records.extend_with(saved)
        self.rows = [dict(row) for row in state.rows]
        self._queries, self._trained, self.deploy_version = state.queries, state.trained, state.deploy_version
        self.window_first_query = state.window_first_query
        self._timers = collections.Counter(state.timers)
        self.resumed_wall_seconds = state.wall_seconds
        self.processes = Processes.resumed(state.now, state.wakeups)
        for wakeup in state.wakeups:  # in the order they were scheduled ⇒ the same order among equal times
            self._start(wakeup.kind, wakeup.minute - state.now, wakeup.snapshot, wakeup)

    def _new_records(self) -> tuple[ImpressionLog, ColumnLog, ColumnLog]:
        """Empty records for the run's measures: impressions, PV examples and probes, each moving to disk past
        `run.records_memory_mb` held."""
        limit = self.scenario.run.records_memory_bytes
        return ImpressionLog(memory_limit_bytes=limit), ColumnLog(PV_COLUMNS, limit), ColumnLog(ProbeRecord._fields, limit)

    def pytree_templates(self) -> dict:
        """The structures this run's parameter and optimizer pytrees are saved and loaded on."""
        return pytree_templates(None if self.oracle else self.trainer.state())
