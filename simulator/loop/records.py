"""The loop's records: progress, the impression log, probes, logs on their way to training, PV chunks, and how a
tick is cut into chunks."""

from __future__ import annotations

from dataclasses import dataclass
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


class ImpressionLog:
    """Every shown ad of the run in time order, column by column (what churn and attribution metrics read)."""

    COLUMNS = ("minute", "query", "context", "device", "position", "treatment", "ad_id", "click", "true_ctr", "pctr",
               "price_per_click")

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in self.COLUMNS}

    def append(self, **columns: np.ndarray) -> None:
        for name in self.COLUMNS:
            self._parts[name].append(np.asarray(columns[name]))

    def __len__(self) -> int:
        """The impressions logged so far (without joining the parts)."""
        return sum(len(part) for part in self._parts["minute"])

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(self._parts[name]) if self._parts[name] else np.zeros(0)

    def frame(self) -> pd.DataFrame:
        """All impressions as a DataFrame (query = the query's number in the run, device = index in world.devices,
        position 0 = the page's top)."""
        return pd.DataFrame({name: self.column(name) for name in self.COLUMNS})


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
