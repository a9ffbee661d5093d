"""A run's results: per-tick metrics, the summary numbers, and the files written for every run."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.metrics import ROWS_IN_MEMORY, Passes, auc_in_parts, calibration_by_decile_in_parts, log_loss_sums
from simulator import config as config_module
from simulator.config import Scenario
from simulator.loop.records import ColumnLog, ImpressionLog

# The "final window" the learning criteria are judged on: the examples trained in the last quarter of
# simulated time (not the last quarter of the examples: traffic follows the time of day).
FINAL_WINDOW_SHARE = 0.25
TIMING_KEYS = ("world", "scoring", "auction", "training")


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN for a zero denominator (no examples in a window)."""
    return numerator / denominator if denominator else float("nan")


@dataclass
class RunOutput:
    """Everything one run produced; `metrics()`, `summary()` and `write(dir)` derive the reports."""

    scenario: Scenario
    rows: list[dict]
    pv: ColumnLog  # PV examples in training order (records.PV_COLUMNS)
    log: ImpressionLog  # every shown ad
    timers: dict[str, float]
    wall_seconds: float
    queries: int
    probes: ColumnLog  # every `run.probe_every`-th query's pCTRs (records.ProbeRecord's fields)
    training_logs: Any = None  # what the trainer was fed, when the run was asked to keep it (its list or sink)
    stopped: str | None = None  # why the run ended early (training diverged, a stop request), else None

    def close(self) -> None:
        """Remove the files of the records that moved to disk now, not when the output is collected (a study's cell
        does, after measuring); its records are empty after."""
        for records in (self.log, self.pv, self.probes):
            records.close()

    @property
    def simulated_hours(self) -> float:
        """The simulated time the run covered: its duration, or up to the end of its last tick when it stopped early."""
        if self.stopped is None or not self.rows:
            return self.scenario.run.duration_hours
        return min(self.rows[-1]["sim_minute"] + self.scenario.run.tick_minutes, 60.0 * self.scenario.run.duration_hours) / 60.0

    def probe_arrays(self) -> dict[str, np.ndarray]:
        """The probed queries' pCTRs: minute[P], query[P], pctr[P, N, T, K], valid[P, N], candidates[P, N] (ad ids),
        relevance[P, N] and lift[P, N, T] (the world's truth: true CTR = relevance × lift[treatment] × the query's page
        examination at [treatment, position]), context[P] (topic·intents + intent), device[P]."""
        return self.probes.arrays()

    def pv_arrays(self, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """PV predictions, labels, true CTRs, importance weights, query numbers and training minutes, in training order
        (the named ones, all by default)."""
        return self.pv.arrays(names)

    def metrics(self) -> pd.DataFrame:
        """One row per tick: traffic, auction and PV-training metrics."""
        frame = pd.DataFrame(self.rows)
        for column in ("trained_examples", "trained_weight", "pv_loss_sum", "oracle_loss_sum"):
            if column not in frame:
                frame[column] = 0.0
            frame[column] = frame[column].fillna(0.0)
        frame["trained_examples"] = frame["trained_examples"].astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            trained = frame["trained_weight"].where(frame["trained_weight"] > 0)
            frame["pv_logloss"] = frame["pv_loss_sum"] / trained
            frame["oracle_logloss"] = frame["oracle_loss_sum"] / trained
        frame.insert(0, "sim_time", frame["sim_minute"] / 60.0)  # hours
        return frame

    def summary(self) -> dict[str, Any]:
        """The run's headline numbers (all plain JSON types)."""
        frame = self.metrics()
        pv = self.pv_numbers()
        timing_total = sum(self.timers.get(k, 0.0) for k in TIMING_KEYS)
        summary = {
            "seed": self.scenario.run.seed,
            "stopped": self.stopped,
            "oracle_model": self.scenario.model.oracle,
            "sim_hours": self.simulated_hours,
            "queries": int(frame["queries"].sum()),
            "impressions": int(frame["impressions"].sum()),
            "clicks": int(frame["clicks"].sum()),
            "ctr": float(frame["clicks"].sum() / max(frame["impressions"].sum(), 1)),
            "ads_per_query": float(frame["impressions"].sum() / max(frame["queries"].sum(), 1)),
            "bottom_impression_share": self._bottom_share(),
            "revenue": float(frame["revenue"].sum()),
            "expected_revenue": float(frame["expected_revenue"].sum()),
            "welfare": float(frame["welfare"].sum()),
            "trained_examples": len(self.pv),
            **pv,
            "deploys": int(frame["deploy_version"].max()),
            "wall_seconds": self.wall_seconds,
            "queries_per_second": self.queries / self.wall_seconds if self.wall_seconds > 0 else 0.0,
            "time_share": {k: (self.timers.get(k, 0.0) / timing_total if timing_total else 0.0) for k in TIMING_KEYS},
        }
        summary["final_window_gap"] = summary["final_window_pv_logloss"] / summary["final_window_oracle_logloss"] - 1.0
        return summary

    def pv_numbers(self, rows_in_memory: int = ROWS_IN_MEMORY) -> dict[str, float]:
        """The summary's PV numbers: log losses and normalized entropies, AUCs (of the model and of the truth, over
        the run and its final window) and calibration, reading at most `rows_in_memory` examples at a time (several
        days of the large preset train on tens of millions); the numbers of the whole arrays when they fit."""
        final_from = (1 - FINAL_WINDOW_SHARE) * 60.0 * self.simulated_hours
        windows = {"": None, "final_window_": final_from}

        def passes(score: str, from_minute: float | None) -> Passes:
            names = (score, "label", "weight", "minute")

            def read():
                for chunk in self.pv.chunks(names, rows_in_memory):
                    keep = slice(None) if from_minute is None else chunk["minute"] >= from_minute
                    yield chunk[score][keep], chunk["label"][keep], chunk["weight"][keep]
            return read

        sums: defaultdict[str, float] = defaultdict(float)
        for chunk in self.pv.chunks(("prediction", "label", "truth", "weight", "minute"), rows_in_memory):
            for window, from_minute in windows.items():
                keep = slice(None) if from_minute is None else chunk["minute"] >= from_minute
                label, weight = chunk["label"][keep], chunk["weight"][keep]
                for score, name in (("prediction", "pv"), ("truth", "oracle")):
                    loss, weights = log_loss_sums(chunk[score][keep], label, weight)
                    sums[window + name] += loss
                sums[window + "weight"] += weights
            weight = np.asarray(chunk["weight"], np.float64)
            sums["clicks"] += float(np.sum(weight * chunk["label"]))
            sums["predicted"] += float(np.sum(weight * chunk["prediction"]))
        mean_label = _ratio(sums["clicks"], sums["weight"])  # the base entropy: the loss of always predicting it
        base_entropy = _ratio(sum(log_loss_sums(np.full(len(label), mean_label), label, weight)[0]
                                  for _, label, weight in passes("prediction", None)()), sums["weight"])
        numbers: dict[str, float] = {}
        for window, from_minute in windows.items():
            for score, name in (("prediction", "pv"), ("truth", "oracle")):
                numbers[f"{window}{name}_logloss"] = _ratio(sums[window + name], sums[window + "weight"])
                numbers[f"{window}{name}_auc"] = auc_in_parts(passes(score, from_minute), rows_in_memory)
        for name in ("pv", "oracle"):
            numbers[f"{name}_normalized_entropy"] = _ratio(numbers[f"{name}_logloss"], base_entropy)
        bias = calibration_by_decile_in_parts(passes("prediction", None), rows_in_memory)["bias"]
        numbers["calibration_max_abs_decile"] = float(np.nanmax(np.abs(bias))) if len(self.pv) else float("nan")
        numbers["calibration_overall"] = sums["predicted"] / max(sums["clicks"], 1.0) - 1.0
        return numbers

    def _bottom_share(self) -> float:
        """Share of impressions in the bottom positions of their device's page (below `world.top_slots`), read in
        windows as the PV numbers are."""
        top = np.asarray(self.scenario.world.top_positions())
        bottom = sum(int(np.count_nonzero(chunk["position"] >= top[chunk["device"].astype(np.int64)]))
                     for chunk in self.log.chunks(("position", "device"), ROWS_IN_MEMORY))
        return bottom / len(self.log) if len(self.log) else 0.0

    def write(self, out_dir: str | Path, impressions: bool = False) -> Path:
        """Write config.toml, metrics.parquet and summary.json into `out_dir` (the figure: `report.figures`).

        With `impressions`, also impressions.parquet: every shown ad with its click, true CTR, pCTR and
        price (about 40 MB for a simulated day of the teaching world).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config_module.dumps(self.scenario))
        self.metrics().to_parquet(out / "metrics.parquet", index=False)
        (out / "summary.json").write_text(json.dumps(self.summary(), indent=2, sort_keys=True) + "\n")
        if impressions:  # part by part: a long run's log is never joined in memory
            tables = (pa.table(part) for part in self.log.parts())
            first = next(tables, None)
            first = pa.table(self.log.arrays()) if first is None else first
            with pq.ParquetWriter(out / "impressions.parquet", first.schema, compression="zstd") as writer:
                writer.write_table(first)
                for table in tables:
                    writer.write_table(table)
