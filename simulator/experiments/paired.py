"""Paired replays: two systems run on each seed's identical traffic and user noise, compared."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from simulator import config as config_module
from simulator.config import Scenario
from simulator.loop.simulation import Simulation
from simulator.measure.intervals import interval
from simulator.measure.paired import paired_ticks, paired_totals


# The whole-run numbers each system has (compared as B − A), and those measured between the two.
PER_SYSTEM = ("revenue", "welfare", "clicks", "pv_logloss", "calibration_overall", "pv_auc")
# Fewer seeds than this give 95 % t-intervals too wide to resolve the differences runs of a few hours show.
FEW_SEEDS = 5
BETWEEN = ("ads_query_churn", "ad_set_churn", "winner_churn", "prediction_difference", "prediction_difference_impressions")


@dataclass
class Comparison:
    """Paired replays of systems `names` over seeds: per tick, per seed, and summarised."""

    names: tuple[str, str]
    scenarios: tuple[Scenario, Scenario]
    seeds: list[int]
    ticks: pd.DataFrame  # paired_ticks rows with a seed column
    per_seed: pd.DataFrame  # paired_totals rows with a seed column

    def summary(self) -> pd.DataFrame:
        """Each whole-run quantity: mean over seeds and its 95 % interval half-width."""
        rows = []
        for column in self.per_seed.columns.drop("seed"):
            mean, half_width = interval(self.per_seed[column].to_numpy())
            rows.append({"quantity": column, "mean": mean, "ci95": half_width})
        return pd.DataFrame(rows)

    def frame(self) -> pd.DataFrame:
        """Per metric: A's and B's means, then B − A (or, for churn and PD, the measure between the two) with its
        95 % t-interval over seeds; `kind` says which. `excludes 0`: whether B − A's interval excludes 0 (None for
        measures between the two, which are ≥ 0 anyway, and for one seed, which has no interval)."""
        s = self.summary().set_index("quantity")
        a, b = self.names
        rows = []
        for metric in PER_SYSTEM:
            mean, half = s.loc[f"{metric}_diff", "mean"], s.loc[f"{metric}_diff", "ci95"]
            rows.append({"metric": metric, a: s.loc[f"{metric}_{a}", "mean"], b: s.loc[f"{metric}_{b}", "mean"],
                         "value": mean, "95 % low": mean - half, "95 % high": mean + half, "kind": f"{b} − {a}",
                         "excludes 0": None if half != half else bool(abs(mean) > half)})
        for metric in BETWEEN:
            mean, half = s.loc[metric, "mean"], s.loc[metric, "ci95"]
            rows.append({"metric": metric, a: float("nan"), b: float("nan"), "value": mean, "95 % low": mean - half,
                         "95 % high": mean + half, "kind": f"between {a} and {b}", "excludes 0": None})
        return pd.DataFrame(rows)

    def table(self) -> str:
        """A short terminal table: per metric, A, B, B − A with its 95 % interval; then churn and PD."""
        a, b = self.names
        lines = [f"{'metric':22s} {a:>14s} {b:>14s} {b + ' − ' + a:>16s} {'± 95 %':>12s}"]
        for row in self.frame().to_dict("records"):
            half = (row["95 % high"] - row["95 % low"]) / 2
            if row["metric"] in PER_SYSTEM:
                lines.append(f"{row['metric']:22s} {row[a]:14.5g} {row[b]:14.5g} {row['value']:16.5g} {half:12.3g}")
            else:
                lines.append(f"{row['metric']:22s} {row['value']:14.5g} {'':14s} {'':16s} {half:12.3g}")
        lines.append(f"({len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''}: {', '.join(map(str, self.seeds))})")
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> Path:
        """comparison_ticks.parquet, comparison_seeds.parquet, summary.json and both configs (the figure:
        `report.figures`)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, scenario in zip(self.names, self.scenarios):
            (out / f"config_{name}.toml").write_text(config_module.dumps(scenario))
        self.ticks.to_parquet(out / "comparison_ticks.parquet", index=False)
        self.per_seed.to_parquet(out / "comparison_seeds.parquet", index=False)
        summary = {row.quantity: {"mean": row.mean, "ci95": row.ci95} for row in self.summary().itertuples()}
        (out / "summary.json").write_text(json.dumps({"names": list(self.names), "seeds": self.seeds,
                                                      "quantities": summary}, indent=2) + "\n")
        return out


def compare(a: Scenario, b: Scenario, seeds: list[int], names: tuple[str, str] = ("A", "B"),
            progress: Callable[[str], None] | None = None, open_loop: bool = False,
            stop: Callable[[], bool] | None = None) -> Comparison:
    """Run both systems on each seed's traffic (paired) and compare them.

    Closed loop (default): each system trains on the logs its own auctions produced. `open_loop`: the
    control in which B trains on A's logs, so both learn from the same data and only the feedback through
    the auction is removed. `stop()` true ends the comparison after the seeds finished so far (at least one).
    """
    if names[0] == names[1]:
        raise ValueError("compare: the two systems need different names")
    if not seeds:
        raise ValueError("compare: seeds: expected at least one seed")
    if open_loop and (a.model.oracle or b.model.oracle):
        raise ValueError("compare: the open-loop control needs two learned models (model.oracle = false)")
    ticks, per_seed = [], []
    for seed in seeds:
        if per_seed and stop is not None and stop():
            break
        outputs = []
        for name, scenario in zip(names, (a, b)):
            if progress is not None:
                progress(f"seed {seed}: running {name}" + (" on the other's logs" if open_loop and outputs else ""))
            shared = outputs[0].training_logs if open_loop and outputs else None
            outputs.append(Simulation(config_module.replace(scenario, run__seed=seed), training_logs=shared,
                                      keep_training_logs=open_loop and not outputs).run())
        ticks.append(paired_ticks(*outputs, names).assign(seed=seed))
        per_seed.append({"seed": seed, **paired_totals(*outputs, names)})
    finished = [row["seed"] for row in per_seed]
    return Comparison(names, (a, b), finished, pd.concat(ticks, ignore_index=True), pd.DataFrame(per_seed))
