"""Checkpoints of a running simulation, in data formats only: `state.json` + `arrays.npz` + `config.toml` + `records/`.

A checkpoint is a `RunState` (`simulator.loop.state`) taken between two simpy events, flattened generically
into a JSON tree and named arrays; its records (PV examples, impressions, probes) go part by part into
`records/<name>/`, linked from the files a long run's records already moved to disk, so a checkpoint never joins
them in memory. `Simulation.resume` builds a fresh Simulation of the saved scenario, `load`
reads the state back on the structures of its pytrees, and `Simulation.restore` re-creates every process at
its recorded wake-up, in the order they were scheduled, so the resumed run ends with the same numbers as an
uninterrupted one. Files are written to a temporary folder and renamed into place, so a kill mid-write leaves
the previous checkpoint intact. Loading never unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from simulator import config as config_module
from simulator.config import Scenario
from simulator.loop.records import ColumnLog
from simulator.loop.state import RunState, flatten, unflatten

RECORDS = ("pv", "log", "probes")  # the RunState fields written part by part
FORMAT_VERSION = 8  # 3: the run's state as one flattened RunState; 4: queries, probes and impressions carry the device;
# 5: CowClip's optimizer state counts its row-steps; 6: the realistic world's users (a feature more) and retrieval order;
# 7: PV examples and probes as columns, as the impression log; 8: the records part by part, in records/


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be resumed: the message says why, in one line."""


def save(state: RunState, scenario: Scenario, directory: str | Path, templates: dict) -> Path:
    """Write `state` (of a run of `scenario`) to `directory`, replacing the checkpoint there."""
    directory = Path(directory)
    arrays: dict[str, np.ndarray] = {}
    rest = dataclasses.replace(state, **{name: None for name in RECORDS})
    tree = {"format_version": FORMAT_VERSION, "now": state.now, "state": flatten(rest, templates, arrays)}
    temporary = directory.with_name(directory.name + ".writing")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    tree["records"] = {name: {"columns": list(getattr(state, name).columns),
                              "parts": getattr(state, name).save(temporary / "records" / name)} for name in RECORDS}
    (temporary / "config.toml").write_text(config_module.dumps(scenario))
    np.savez(temporary / "arrays.npz", **arrays)
    (temporary / "state.json").write_text(json.dumps(tree))  # written last: its presence marks a whole checkpoint
    previous = directory.with_name(directory.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if directory.exists():
        directory.rename(previous)
    temporary.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)
    return directory


def read(directory: str | Path) -> tuple[Path, dict, Scenario]:
    """The checkpoint folder to load (the `.previous` one if killed mid-replace), its state tree and its scenario."""
    directory = Path(directory)
    if not (directory / "state.json").is_file():
        previous = directory.with_name(directory.name + ".previous")
        if (previous / "state.json").is_file():  # killed while replacing the checkpoint
            directory = previous
        else:
            raise CheckpointError(f"--resume: no checkpoint in {str(directory)!r} (state.json missing)")
    tree = json.loads((directory / "state.json").read_text())
    if tree.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"--resume: checkpoint format {tree.get('format_version')!r}, expected {FORMAT_VERSION}")
    return directory, tree, config_module.load(directory / "config.toml")


def _check_parts(folder: Path, columns: tuple[str, ...], parts: list[int]) -> None:
    """Each saved part's files hold the rows the state says (their .npy headers only: the rows are not read), so a
    damaged checkpoint fails here, not at the end of the resumed run."""
    for part, rows in enumerate(parts):
        for name in columns:
            with open(folder / f"{part}-{name}.npy", "rb") as file:
                header = (np.lib.format.read_array_header_1_0 if np.lib.format.read_magic(file) == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape = header(file)[0]
            if not shape or shape[0] != rows:
                raise ValueError(f"records/{folder.name}/{part}-{name}.npy holds shape {shape}, not {rows} rows")


def load(directory: Path, tree: dict, templates: dict) -> RunState:
    """The RunState saved in `directory` (its tree from `read`), pytrees restored on `templates`' structures."""
    try:
        with np.load(directory / "arrays.npz", allow_pickle=False) as data:
            state = unflatten(tree["state"], templates, {name: data[name] for name in data.files})
        records = {}
        for name, saved in tree["records"].items():
            folder, records[name] = directory / "records" / name, ColumnLog(tuple(saved["columns"]))
            _check_parts(folder, records[name].columns, saved["parts"])
            records[name].adopt(folder, saved["parts"])
        return dataclasses.replace(state, **records)
    except (OSError, ValueError, KeyError, TypeError) as err:  # StateError is a ValueError
        raise CheckpointError(f"--resume: checkpoint in {str(directory)!r} cannot be read: {err}") from None
