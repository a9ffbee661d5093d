"""Checkpoints of a running simulation, in data formats only: `state.json` + `arrays.npz` + `config.toml`.

A checkpoint is taken between two simpy events, when every event before the next checkpoint time is
done: then the whole state is in `Simulation`'s attributes — world (ads, random streams), trainer
(parameters, optimizer state, dual variables, buffered examples, teacher), deployed and pending
snapshots, logs not yet trained on, metric rows, PV predictions, impressions, probes — plus the queue
of pending simpy events, recorded as (time, process kind) in queue order. `Simulation.resume` rebuilds the
Simulation from the scenario and `restore` overwrites that state; re-creating the pending events in the same
order gives them the same relative order in the new queue, so the resumed run ends with the same
numbers as an uninterrupted one. Files are written to a temporary folder and renamed into place, so a
kill mid-write leaves the previous checkpoint intact. Loading never unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import simpy

from models import Examples
from simulator import config as config_module
from simulator.config import Scenario
from simulator.loop.records import PvChunk
from simulator.loop.results import PROBE_FIELDS
from simulator.world.ground_truth import QueryBatch

FORMAT_VERSION = 2  # 2: query context in the impression log and the probes
BATCH_FIELDS = tuple(f.name for f in dataclasses.fields(QueryBatch))
WORLD_ARRAYS = ("ad_advertiser", "ad_topic", "ad_quality", "ad_bid", "ad_active", "ad_born_minute")
RNG_NAMES = ("_world_rng", "_traffic_rng", "_click_rng")


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be resumed: the message says why, in one line."""


class _Arrays:
    """Named arrays for the .npz file, with helpers for pytrees and lists of chunks."""

    def __init__(self) -> None:
        self.data: dict[str, np.ndarray] = {}

    def tree(self, name: str, tree: Any) -> None:
        for i, leaf in enumerate(jax.tree.leaves(tree)):
            self.data[f"{name}/{i}"] = np.asarray(leaf)

    def chunks(self, name: str, parts: list[np.ndarray]) -> None:
        self.data[f"{name}/lengths"] = np.array([len(p) for p in parts], np.int64)
        self.data[name] = np.concatenate(parts) if parts else np.zeros(0)


def _tree(data, name: str, like: Any) -> Any:
    leaves, treedef = jax.tree.flatten(like)
    return jax.tree.unflatten(treedef, [data[f"{name}/{i}"] for i in range(len(leaves))])


def _chunks(data, name: str) -> list[np.ndarray]:
    return np.split(data[name], np.cumsum(data[f"{name}/lengths"])[:-1]) if len(data[f"{name}/lengths"]) else []


def _trainer_state(arrays: _Arrays, name: str, trainer) -> None:
    arrays.tree(f"{name}/params", trainer.params)
    arrays.tree(f"{name}/opt_state", trainer.opt_state)
    arrays.data[f"{name}/duals"] = np.asarray(trainer.duals)
    arrays.data[f"{name}/seen"] = np.asarray(trainer.seen)


def _restore_trainer(data, name: str, trainer) -> None:
    params, opt_state = _tree(data, f"{name}/params", trainer.params), _tree(data, f"{name}/opt_state", trainer.opt_state)
    state = (params, opt_state, data[f"{name}/duals"], data[f"{name}/seen"])
    trainer.params, trainer.opt_state, trainer.duals, trainer.seen = trainer.place(state)


def _examples_columns(arrays: _Arrays, name: str, parts: list[Examples]) -> None:
    filled = [p.filled() for p in parts]
    for field in Examples._fields:
        arrays.chunks(f"{name}/{field}", [getattr(p, field) for p in filled])


def _examples_parts(data, name: str) -> list[Examples]:
    columns = [_chunks(data, f"{name}/{field}") for field in Examples._fields]
    return [Examples(*column) for column in zip(*columns)]


def _json_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def save(sim, directory: str | Path) -> Path:
    """Write `sim`'s whole state to `directory` (replacing the checkpoint there)."""
    if sim.training_logs is not None or sim._external_logs is not None:
        raise CheckpointError("checkpoints: open-loop runs (shared training logs) cannot be checkpointed")
    directory = Path(directory)
    env = sim.env
    arrays = _Arrays()
    world = sim.world
    for name in WORLD_ARRAYS:
        arrays.data[f"world/{name}"] = getattr(world, name)
    if sim.upcoming is not None:
        for field in BATCH_FIELDS:
            arrays.data[f"upcoming/{field}"] = getattr(sim.upcoming, field)
    # pending simpy events, in queue order: (time, priority, eid) decides which of equal-time events goes first
    events, saved_snapshots = [], 0
    for when, _, _, event in sorted(env._queue, key=lambda entry: entry[:3]):
        owners = [callback.__self__ for callback in event.callbacks or [] if hasattr(callback, "__self__")]
        process = next((p for p in owners if p in sim.processes), None)
        if process is None:
            raise CheckpointError(f"checkpoints: an event at minute {when} belongs to no known process")
        kind, snapshot = sim.processes[process]
        index = None
        if snapshot is not None:
            index, saved_snapshots = saved_snapshots, saved_snapshots + 1
            arrays.tree(f"snapshot/{index}", snapshot)
        events.append({"time": when, "kind": kind, "snapshot": index})
    if not sim.oracle:
        _trainer_state(arrays, "trainer", sim.trainer)
        if sim.trainer.teacher is not None:
            _trainer_state(arrays, "teacher", sim.trainer.teacher)
        _examples_columns(arrays, "trainer/buffer", sim.trainer._buffer)
        arrays.tree("deployed", sim.deployed)
    _examples_columns(arrays, "pending/examples", [entry[1] for entry in sim._pending])
    arrays.chunks("pending/truth", [entry[2] for entry in sim._pending])
    arrays.data["pending/minute"] = np.array([entry[0] for entry in sim._pending], np.float64)
    for i, field in enumerate(("label", "weight", "truth", "query")):
        arrays.chunks(f"unscored/{field}", [entry[i] for entry in sim._unscored])
    for field in ("prediction", "label", "truth", "weight", "query"):
        arrays.chunks(f"pv/{field}", [getattr(chunk, field) for chunk in sim.pv])
    arrays.data["pv/minute"] = np.array([chunk.minute for chunk in sim.pv], np.float64)
    for name in sim.log.COLUMNS:
        arrays.data[f"log/{name}"] = sim.log.column(name)
    for i, field in enumerate(PROBE_FIELDS):
        arrays.chunks(f"probes/{field}", [probe[i] for probe in sim.probes])
    state = {
        "format_version": FORMAT_VERSION,
        "now": env.now,
        "events": events,
        "rows": [{k: _json_value(v) for k, v in row.items()} for row in sim.rows],
        "counters": {"queries": sim._queries, "trained": sim._trained, "deploy_version": sim.deploy_version},
        "timers": dict(sim._timers),
        "rng": {name: getattr(world, name).bit_generator.state for name in RNG_NAMES},
        "has_upcoming": sim.upcoming is not None,
        "wall_seconds": sim.resumed_wall_seconds + time.perf_counter() - sim.started_wall,
    }
    temporary = directory.with_name(directory.name + ".writing")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    (temporary / "config.toml").write_text(config_module.dumps(sim.scenario))
    np.savez(temporary / "arrays.npz", **arrays.data)
    (temporary / "state.json").write_text(json.dumps(state))  # written last: its presence marks a whole checkpoint
    previous = directory.with_name(directory.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        directory.rename(previous)
    temporary.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)
    return directory


def read(directory: str | Path) -> tuple[Path, dict, Scenario]:
    """The checkpoint folder to load (the `.previous` one if killed mid-replace), its state and its scenario."""
    directory = Path(directory)
    if not (directory / "state.json").is_file():
        previous = directory.with_name(directory.name + ".previous")
        if (previous / "state.json").is_file():  # killed while replacing the checkpoint
            directory = previous
        else:
            raise CheckpointError(f"--resume: no checkpoint in {str(directory)!r} (state.json missing)")
    state = json.loads((directory / "state.json").read_text())
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"--resume: checkpoint format {state.get('format_version')!r}, expected {FORMAT_VERSION}")
    return directory, state, config_module.load(directory / "config.toml")


def restore(sim, directory: Path, state: dict) -> None:
    """Overwrite a fresh Simulation of the checkpoint's scenario with the state saved in `directory`."""
    with np.load(directory / "arrays.npz", allow_pickle=False) as data:
        world = sim.world
        for name in WORLD_ARRAYS:
            setattr(world, name, data[f"world/{name}"])
        for name, rng_state in state["rng"].items():
            getattr(world, name).bit_generator.state = rng_state
        if state["has_upcoming"]:
            sim.upcoming = QueryBatch(*(data[f"upcoming/{field}"] for field in BATCH_FIELDS))
        if not sim.oracle:
            _restore_trainer(data, "trainer", sim.trainer)
            if sim.trainer.teacher is not None:
                _restore_trainer(data, "teacher", sim.trainer.teacher)
            sim.trainer._buffer = _examples_parts(data, "trainer/buffer")
            sim.trainer._buffered = sum(part.size for part in sim.trainer._buffer)
            sim.deployed = _tree(data, "deployed", sim.trainer.params)
        pending = zip(data["pending/minute"], _examples_parts(data, "pending/examples"), _chunks(data, "pending/truth"))
        sim._pending.extend((float(minute), examples, truth) for minute, examples, truth in pending)
        unscored = [_chunks(data, f"unscored/{field}") for field in ("label", "weight", "truth", "query")]
        sim._unscored = [tuple(columns) for columns in zip(*unscored)]
        pv = [_chunks(data, f"pv/{field}") for field in ("prediction", "label", "truth", "weight", "query")]
        sim.pv = [PvChunk(float(minute), *columns) for minute, *columns in zip(data["pv/minute"], *pv)]
        sim.log.append(**{name: data[f"log/{name}"] for name in sim.log.COLUMNS})
        probes = [_chunks(data, f"probes/{field}") for field in PROBE_FIELDS]
        sim.probes = [tuple(columns) for columns in zip(*probes)]
        snapshots = {event["snapshot"]: _tree(data, f"snapshot/{event['snapshot']}", sim.trainer.params)
                     for event in state["events"] if event["snapshot"] is not None}
    sim.rows = state["rows"]
    sim._queries, sim._trained = state["counters"]["queries"], state["counters"]["trained"]
    sim.deploy_version = state["counters"]["deploy_version"]
    sim._timers.update(state["timers"])
    sim.resumed_wall_seconds = state["wall_seconds"]
    sim.env = simpy.Environment(initial_time=state["now"])
    for event in state["events"]:  # same order ⇒ same relative order in the new queue
        sim._start(sim.env, event["kind"], event["time"] - state["now"],
                   snapshots[event["snapshot"]] if event["snapshot"] is not None else None)
