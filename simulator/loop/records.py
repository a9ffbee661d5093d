"""The loop's records: progress, the impression log, probes, logs on their way to training, PV chunks, and how a
tick is cut into chunks."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from models import Examples
from simulator.world.ground_truth import QueryBatch

# A tick's queries go through the jitted scorer and auction in chunks of these sizes only (the last one
# padded), so each compiles four shapes at most; ~1K rows also keeps the auction's slate arrays in cache.
CHUNK_SIZES = (1024, 512, 256, 128)


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


class ColumnLog:
    """Rows appended a tick at a time, column by column, in time order. Past `memory_limit_bytes` held in memory
    (0: no limit), the held rows move to one .npy file a column in a temporary folder of the log's own (removed
    with it), so a long run's records wait on disk rather than in memory; reading a column joins the files and
    the rows still held, in order: the same arrays with or without a limit."""

    COLUMNS: tuple[str, ...] = ()

    def __init__(self, columns: tuple[str, ...] | None = None, memory_limit_bytes: int = 0) -> None:
        self.columns = tuple(columns or self.COLUMNS)
        self.memory_limit_bytes = memory_limit_bytes
        self._held: dict[str, list[np.ndarray]] = {name: [] for name in self.columns}
        self._held_bytes = 0
        self._stored: list[int] = []  # the rows of each part moved to disk, in order
        self._folder: Path | None = None

    def append(self, **columns: np.ndarray) -> None:
        for name in self.columns:
            part = np.asarray(columns[name])
            self._held[name].append(part)
            self._held_bytes += part.nbytes
        if self.memory_limit_bytes and self._held_bytes > self.memory_limit_bytes:
            self._store()

    def _new_folder(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="adfloor-records-"))
        self._remove = weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)

    def _store(self) -> None:
        """Move the held rows to disk, one column at a time (so joining them needs one column's bytes at most)."""
        if self._folder is None:
            self._new_folder()
        part = len(self._stored)
        for name in self.columns:
            rows = np.concatenate(self._held[name])
            np.save(self._part_file(part, name), rows, allow_pickle=False)
            self._held[name] = []
        self._stored.append(len(rows))
        self._held_bytes = 0

    def extend(self, arrays: dict[str, np.ndarray]) -> None:
        """Append whole columns' rows (a pickled log's), if there are any."""
        if len(arrays[self.columns[0]]):
            self.append(**arrays)

    def _part_file(self, part: int, name: str, folder: Path | None = None) -> Path:
        return (folder or self._folder) / f"{part}-{name}.npy"

    def save(self, folder: Path) -> list[int]:
        """Write the rows into `folder` (a new one) a part at a time: one .npy file a column and part, the parts on
        disk linked there (not read), the held rows joined a column at a time. Returns each part's row count. For a
        checkpoint of a long run, which must not join its records in memory."""
        folder.mkdir(parents=True)  # never into files another log may have linked
        for part in range(len(self._stored)):
            for name in self.columns:
                _link_or_copy(self._part_file(part, name), self._part_file(part, name, folder))
        parts = list(self._stored)
        if self._held[self.columns[0]]:  # a part of no rows too: it keeps the columns' dtypes and shapes
            for name in self.columns:
                rows = np.concatenate(self._held[name])
                np.save(self._part_file(len(self._stored), name, folder), rows, allow_pickle=False)
            parts.append(len(rows))
        return parts

    def adopt(self, folder: Path, parts: list[int]) -> None:
        """Append the rows `save` wrote into `folder` (`parts`: its row counts), as parts on disk of this log's own,
        without reading them."""
        if self._held[self.columns[0]]:
            self._store()
        for saved, rows in enumerate(parts):
            if self._folder is None:
                self._new_folder()
            for name in self.columns:
                _link_or_copy(self._part_file(saved, name, folder), self._part_file(len(self._stored), name))
            self._stored.append(rows)

    def extend_with(self, other: ColumnLog) -> None:
        """Append all of `other`'s rows (its parts on disk linked, not read): a restored run's records of its own."""
        if other._stored:
            self.adopt(other._folder, other._stored)
        if other._held[self.columns[0]]:
            self.append(**{name: np.concatenate(other._held[name]) for name in self.columns})

    def close(self) -> None:
        """Remove the files now, not when the log is collected; the log is empty after."""
        if self._folder is not None:
            self._remove()
        self.__init__(self.columns, self.memory_limit_bytes)

    def __len__(self) -> int:
        """The rows logged so far (without joining the parts)."""
        return sum(self._stored) + sum(len(part) for part in self._held[self.columns[0]])

    @property
    def stored_parts(self) -> int:
        """How many times the held rows have moved to disk."""
        return len(self._stored)

    def column(self, name: str) -> np.ndarray:
        """One column's rows, all of them in order (np.zeros(0) when there are none)."""
        parts = [np.load(self._part_file(part, name)) for part in range(len(self._stored))]
        parts += self._held[name]
        return np.concatenate(parts) if parts else np.zeros(0)

    def arrays(self, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The named columns (all by default), each joined whole."""
        return {name: self.column(name) for name in names or self.columns}

    def parts(self):
        """The rows a part at a time, as dicts of columns (what is on disk part by part, then what is held): for
        writing a long log out without joining it in memory."""
        yield from self._on_disk(self.columns)
        if self._held[self.columns[0]]:
            yield {name: np.concatenate(self._held[name]) for name in self.columns}

    def _on_disk(self, names: tuple[str, ...], mmap_mode: str | None = None):
        """Each part on disk in order, as a dict of the named columns (mapped, not loaded, with `mmap_mode` "r")."""
        for part in range(len(self._stored)):
            yield {name: np.load(self._part_file(part, name), mmap_mode=mmap_mode) for name in names}

    def chunks(self, names: tuple[str, ...], rows: int):
        """The named columns in windows of `rows` rows (the last shorter; one of no rows when the log is empty), in
        order: windows by row number, whatever the parts, so a measure summed over them does not depend on when the
        rows moved to disk. A part on disk is mapped while it is read, not loaded, so a pass holds about a window.
        An empty log's one window has float64 columns."""
        if rows < 1:
            raise ValueError(f"rows: a window needs at least 1, got {rows}")
        def pieces():
            yield from self._on_disk(names, mmap_mode="r")
            for i in range(len(self._held[self.columns[0]])):
                yield {name: self._held[name][i] for name in names}

        window: dict[str, list[np.ndarray]] = {name: [] for name in names}
        filled = 0
        for piece in pieces():
            size, start = len(piece[names[0]]), 0
            while start < size:
                take = min(rows - filled, size - start)
                for name in names:
                    window[name].append(np.array(piece[name][start:start + take]))  # a copy: the map can go
                filled, start = filled + take, start + take
                if filled == rows:
                    yield {name: np.concatenate(window[name]) for name in names}
                    window, filled = {name: [] for name in names}, 0
        if filled or not len(self):
            yield {name: (np.concatenate(window[name]) if window[name] else np.zeros(0)) for name in names}

    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame."""
        return pd.DataFrame(self.arrays())

    def __getstate__(self) -> dict:
        """Pickled whole, in memory (a copy in another process has no access to this one's folder)."""
        return {"columns": self.columns, "memory_limit_bytes": self.memory_limit_bytes, "arrays": self.arrays()}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["columns"], state["memory_limit_bytes"])
        self.extend(state["arrays"])


def _link_or_copy(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (free: parts on disk never change), or a copy where the file system
    cannot link it (another file system, no hard links)."""
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
        shutil.copyfile(source, target)


class ImpressionLog(ColumnLog):
    """Every shown ad of the run in time order (what churn and attribution metrics read). `frame()`: query = the
    query's number in the run, device = index in world.devices, position 0 = the page's top."""

    COLUMNS = ("minute", "query", "context", "device", "position", "treatment", "ad_id", "click", "true_ctr", "pctr",
               "price_per_click")


class ProbeRecord(NamedTuple):
    """One tick's probed queries (every `run.probe_every`-th): the tick's minute[n], query number[n],
    pCTR[n, N, T, K] of every candidate, treatment and position, valid[n, N], candidates[n, N] (ad ids),
    relevance[n, N] and lift[n, N, T] (the world's truth), query context[n] and device[n]."""

    minute: np.ndarray
    query: np.ndarray
    pctr: np.ndarray
    valid: np.ndarray
    candidates: np.ndarray
    relevance: np.ndarray
    context: np.ndarray
    device: np.ndarray
    lift: np.ndarray


class PendingLog(NamedTuple):
    """One tick's logged examples on their way to the trainer: usable from `available_minute` (the training delay)."""

    available_minute: float
    examples: Examples
    true_ctr: np.ndarray


class Unscored(NamedTuple):
    """Examples handed to the trainer whose PV predictions have not come back yet (a partial batch waits)."""

    label: np.ndarray
    weight: np.ndarray
    truth: np.ndarray
    query: np.ndarray


def chunk_bounds(count: int, largest: int = CHUNK_SIZES[0]) -> list[tuple[int, int, int]]:
    """Split `count` rows into (start, stop, padded_size) chunks of CHUNK_SIZES up to `largest`; padding < 128. No
    rows give one chunk of padding, so a tick without queries takes the same path."""
    sizes = [s for s in CHUNK_SIZES if s <= largest] or [CHUNK_SIZES[-1]]
    bounds, start = [], 0
    while start < count:
        left = count - start
        size = next((s for s in sizes if s <= left), sizes[-1])
        bounds.append((start, min(start + size, count), size))
        start += size
    return bounds or [(0, 0, sizes[-1])]


@dataclass
class PvChunk:
    """Predictions made by progressive validation at `minute`, with labels, true CTRs, importance weights, query numbers."""

    minute: float
    prediction: np.ndarray
    label: np.ndarray
    truth: np.ndarray
    weight: np.ndarray
    query: np.ndarray

    def rows(self) -> dict[str, np.ndarray]:
        """The chunk as rows of the run's PV log (PV_COLUMNS): its minute on every row."""
        return dict(minute=np.full(len(self.label), self.minute, np.float32), prediction=self.prediction,
                    label=self.label, truth=self.truth, weight=self.weight, query=self.query)


PV_COLUMNS = ("minute", "prediction", "label", "truth", "weight", "query")  # a run's PV log: one row an example
