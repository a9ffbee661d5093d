"""A run's whole state as named data (`RunState`), and its generic flatten into JSON plus named arrays.

Between two simpy events the run is fully described by a `RunState`: the world's changing arrays and random
streams, the trainer's state, the deployed snapshot, the logs on their way to training, the metric rows, PV
examples, impressions and probes (the run's own logs, which a checkpoint writes part by part), and each process's
next wake-up (kept by the process itself). `flatten` turns any other such value into a JSON tree plus a dict of
arrays, and `unflatten` back: records (NamedTuples and dataclasses
named in RECORDS) by name, lists of one record type column by column (few large arrays, not one per tick), and
pytrees (parameters, optimizer states) as their leaves, restored on the structure of a named template.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import numpy as np

from models import Examples
from models.trainer import TrainerState
from simulator.loop.records import ColumnLog, PendingLog, Unscored
from simulator.world.ground_truth import QueryBatch, WorldState


class Wakeup(NamedTuple):
    """A process's next wake-up: the simulated minute, its place among equal-time events (the order it was
    scheduled in), the process kind, and the snapshot it will deploy (go-live processes only)."""

    minute: float
    order: int
    kind: str
    snapshot: Any


@dataclass
class RunState:
    """Everything a run changes, between two events: resuming from it continues the run exactly."""

    now: float
    world: WorldState
    upcoming: QueryBatch | None  # the next tick's queries, drawn while the auction ran
    trainer: TrainerState | None  # None for the oracle
    deployed: Any  # the live snapshot (parameters), None for the oracle
    pending: list[PendingLog]
    unscored: list[Unscored]
    pv: ColumnLog  # the PV log (records.PV_COLUMNS)
    log: ColumnLog  # the impression log
    probes: ColumnLog  # the probes (records.ProbeRecord's fields)
    rows: list[dict]
    queries: int
    trained: int
    deploy_version: int
    timers: dict[str, float]
    wakeups: list[Wakeup]  # in queue order
    wall_seconds: float
    window_first_query: int = 0  # a warm-started run's first query number (its records count queries from there)


RECORDS = {cls.__name__: cls for cls in (RunState, WorldState, TrainerState, Examples, PendingLog, Unscored, Wakeup,
                                         QueryBatch)}


class StateError(ValueError):
    """A value the flatten cannot write or read back; the message says where."""


def _fields(record: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(record):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return record._asdict()


def _is_record(value: Any) -> bool:
    return RECORDS.get(type(value).__name__) is type(value)


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, jax.Array))


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _scalar_type(value: Any) -> str:
    if isinstance(value, np.generic):
        return value.dtype.name
    return "int" if isinstance(value, int) else "float"


def _scalar(value: Any, kind: str) -> Any:
    return {"int": int, "float": float}[kind](value) if kind in ("int", "float") else np.dtype(kind).type(value)


def flatten(value: Any, templates: dict[str, Any], arrays: dict[str, np.ndarray], path: str = "state") -> Any:
    """A JSON tree for `value`, its arrays written into `arrays` under names from `path`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):  # a numpy scalar keeps its dtype
        return {"scalar": value.item(), "dtype": value.dtype.name}
    if _is_array(value):
        arrays[path] = np.asarray(value)
        return {"array": path}
    if _is_record(value):
        return {"record": type(value).__name__,
                "fields": {k: flatten(v, templates, arrays, f"{path}/{k}") for k, v in _fields(value).items()}}
    template = _template_name(value, templates)
    if template is not None:  # parameters, optimizer states: leaves, on a named structure
        for i, leaf in enumerate(jax.tree.leaves(value)):
            arrays[f"{path}/{i}"] = np.asarray(leaf)
        return {"pytree": template, "path": path}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise StateError(f"{path}: dict keys must be strings")
        return {"dict": {k: flatten(v, templates, arrays, f"{path}/{k}") for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        kind = type(value).__name__
        if value and _is_record(value[0]) and all(type(v) is type(value[0]) for v in value):
            return {"columns": _columns(list(value), templates, arrays, path), kind: len(value)}
        return {kind: [flatten(v, templates, arrays, f"{path}/{i}") for i, v in enumerate(value)]}
    raise StateError(f"{path}: a {type(value).__name__} that matches no pytree template ({', '.join(templates)})")


def _template_name(value: Any, templates: dict[str, Any]) -> str | None:
    """The name of the template whose structure `value` has, if any."""
    if not templates:
        return None
    structure = jax.tree.structure(value)
    return next((name for name, template in templates.items() if template == structure), None)


def _columns(records: list, templates: dict, arrays: dict, path: str) -> dict:
    """Records of one type, field by field: arrays concatenated (with their lengths), scalars as one array."""
    columns = {}
    for name in _fields(records[0]):
        values = [_fields(r)[name] for r in records]
        where = f"{path}/{name}"
        if all(_is_array(v) and np.ndim(v) > 0 for v in values) and len({(np.shape(v)[1:], np.asarray(v).dtype)
                                                                           for v in values}) == 1:
            arrays[where] = np.concatenate([np.asarray(v) for v in values])
            arrays[f"{where}#lengths"] = np.array([len(v) for v in values], np.int64)
            columns[name] = {"concatenated": where}
        elif all(_is_scalar(v) for v in values) and len({_scalar_type(v) for v in values}) == 1:
            arrays[where] = np.array(values)
            columns[name] = {"scalars": where, "type": _scalar_type(values[0])}
        elif all(_is_record(v) for v in values) and len({type(v) for v in values}) == 1:
            columns[name] = {"columns": _columns(values, templates, arrays, where), "list": len(values)}
        else:
            columns[name] = {"list": [flatten(v, templates, arrays, f"{where}/{i}") for i, v in enumerate(values)]}
    return {"record": type(records[0]).__name__, "fields": columns}


def unflatten(tree: Any, templates: dict[str, Any], arrays: Any) -> Any:
    """The value `flatten` wrote (arrays: a dict or an open .npz)."""
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if "array" in tree:
        return arrays[tree["array"]]
    if "scalar" in tree:
        return _scalar(tree["scalar"], tree["dtype"])
    if "record" in tree:
        fields = {k: unflatten(v, templates, arrays) for k, v in tree["fields"].items()}
        return _record(tree["record"], fields)
    if "dict" in tree:
        return {k: unflatten(v, templates, arrays) for k, v in tree["dict"].items()}
    if "pytree" in tree:
        template = templates[tree["pytree"]]
        return jax.tree.unflatten(template, [arrays[f"{tree['path']}/{i}"] for i in range(template.num_leaves)])
    kind = "tuple" if "tuple" in tree else "list"
    if "columns" in tree:
        values = _uncolumns(tree["columns"], templates, arrays, tree[kind])
    else:
        values = [unflatten(v, templates, arrays) for v in tree[kind]]
    return tuple(values) if kind == "tuple" else values


def _record(name: str, fields: dict) -> Any:
    if name not in RECORDS:
        raise StateError(f"unknown record {name!r}; known: {', '.join(RECORDS)}")
    return RECORDS[name](**fields)


def _uncolumns(tree: dict, templates: dict, arrays: Any, count: int) -> list:
    columns = {}
    for name, column in tree["fields"].items():
        if "concatenated" in column:
            where = column["concatenated"]
            columns[name] = np.split(arrays[where], np.cumsum(arrays[f"{where}#lengths"])[:-1])
        elif "scalars" in column:
            columns[name] = [_scalar(v, column["type"]) for v in arrays[column["scalars"]].tolist()]
        elif "columns" in column:
            columns[name] = _uncolumns(column["columns"], templates, arrays, column["list"])
        else:
            columns[name] = [unflatten(v, templates, arrays) for v in column["list"]]
    return [_record(tree["record"], {name: values[i] for name, values in columns.items()}) for i in range(count)]


def pytree_templates(trainer: TrainerState | None) -> dict[str, Any]:
    """The structures a run's pytrees are restored on: its trainer's (and teacher's) parameters and optimizer state."""
    templates, prefix = {}, "trainer"
    while trainer is not None:
        templates[f"{prefix}/params"] = jax.tree.structure(trainer.params)
        templates[f"{prefix}/opt_state"] = jax.tree.structure(trainer.opt_state)
        trainer, prefix = trainer.teacher, f"{prefix}/teacher"
    return templates


def equal(a: Any, b: Any) -> bool:
    """Whether two states flatten to the same tree and bit-identical arrays (dtype and shape included); a RunState's
    records compare as their columns, joined."""
    templates = {}
    for state in (a, b):
        if isinstance(state, RunState):
            templates.update(pytree_templates(state.trainer))
    a, b = (dataclasses.replace(state, pv=state.pv.arrays(), log=state.log.arrays(), probes=state.probes.arrays())
            if isinstance(state, RunState) else state for state in (a, b))
    arrays_a, arrays_b = {}, {}
    trees = [json.dumps(flatten(state, templates, arrays)) for state, arrays in ((a, arrays_a), (b, arrays_b))]
    if trees[0] != trees[1] or arrays_a.keys() != arrays_b.keys():  # as JSON text: a NaN equals a NaN
        return False
    return all(x.dtype == arrays_b[k].dtype and np.array_equal(x, arrays_b[k], equal_nan=True)
               for k, x in arrays_a.items())
