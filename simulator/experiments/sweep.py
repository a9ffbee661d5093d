"""Scenario sweeps: a grid and/or random sample over config keys × seeds, in parallel processes or on Ray.

A sweep file (TOML):

    base = "smoke.toml"                  # scenario, relative to the sweep file
    seeds = [0, 1]                       # or a count: seeds = 3 (from the base seed on)
    [set]                                # overrides shared by every cell
    "run.duration_hours" = 0.5
    [grid]                               # every combination
    "model.transfer" = ["sigmoid", "exp"]
    [random]                             # plus `samples` random draws
    samples = 4
    "train.learning_rate" = {log_uniform = [0.01, 0.1]}   # or {uniform = [a, b]} or {choice = [...]}

Each cell writes cells/<id>/ (config.toml, metrics.parquet, summary.json, or error.json); a re-run skips
cells that finished (a cell's id covers its overrides, its seed, the base scenario's text and the [set] table). `ticks.parquet` (a row per cell per tick) and `cells.parquet` (a row per cell:
parameters, status, summary) collect them.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import tomli_w

from simulator import config as config_module
from simulator.config import ConfigError
from simulator.experiments.runner import Job, Outcome, Progress, run_jobs
from simulator.loop.simulation import Simulation
from simulator.measure.intervals import interval_half_widths

SAMPLERS = ("uniform", "log_uniform", "choice")


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its overrides (section.key → value) and seed, and `scope`, a digest of the base scenario's
    text and the shared overrides, so a finished cell is reused only while they are unchanged."""

    overrides: tuple[tuple[str, Any], ...]
    seed: int
    scope: str = ""

    @property
    def cell_id(self) -> str:
        text = json.dumps([list(self.overrides), self.seed, self.scope], sort_keys=True, default=str)
        return f"{zlib.crc32(text.encode()):08x}"


@dataclass(frozen=True)
class SweepPlan:
    base: Path
    shared: tuple[tuple[str, Any], ...]
    cells: tuple[Cell, ...]


def plan(path: str | Path) -> SweepPlan:
    """Read and validate a sweep file; every cell's scenario is checked before anything runs."""
    data = config_module.read_toml(path)
    allowed = {"base", "seeds", "set", "grid", "random"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"sweep: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
    if "base" not in data or not isinstance(data["base"], str):
        raise ConfigError("sweep.base: expected the scenario file name, e.g. base = \"smoke.toml\"")
    base = (Path(path).parent / data["base"]).resolve()
    shared = tuple(sorted(data.get("set", {}).items()))
    grid = data.get("grid", {})
    if any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError("sweep.grid: each key needs a non-empty list of values")
    combos = [tuple(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else [()]
    random = dict(data.get("random", {}))
    samples = random.pop("samples", 0)
    if random and (not isinstance(samples, int) or samples < 1):
        raise ConfigError("sweep.random.samples: expected an integer ≥ 1")
    rng = np.random.default_rng(zlib.crc32(str(base).encode()))
    draws = [tuple((key, _draw(key, spec, rng)) for key, spec in sorted(random.items())) for _ in range(samples)]
    settings = [c + d for c in combos for d in (draws or [()])]
    base_scenario = config_module.load(base, overrides=[config_module.override_text(k, v) for k, v in shared])
    seeds = data.get("seeds", [base_scenario.run.seed])
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        seeds = list(range(base_scenario.run.seed, base_scenario.run.seed + seeds))
    if not isinstance(seeds, list) or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError("sweep.seeds: expected a count ≥ 1 or a list of seeds ≥ 0")
    scope = f"{zlib.crc32(json.dumps([base.read_text(), list(shared)], default=str).encode()):08x}"
    cells = tuple(Cell(tuple(s), seed, scope) for s in settings for seed in seeds)
    for cell in cells:
        scenario_for(base, shared, cell)  # validate now: a typo fails before hours of work, not in a worker
    return SweepPlan(base, shared, cells)


def write_sweep(folder: str | Path, base: str, grid: dict[str, list], seeds: int, hours: float) -> SweepPlan:
    """A new sweep in `folder`: its sweep.toml (the shipped scenario `base`, a grid of keys × `seeds` seeds, `hours`
    of simulated time per cell), planned and so validated; nothing is left behind when it does not plan."""
    folder = Path(folder)
    if folder.exists():
        raise ConfigError(f"sweep folder {str(folder)!r}: exists already (resume it, or choose another name)")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.grid.{key}: expected a non-empty list of values")
    text = tomli_w.dumps({"base": str(config_module.find_scenario(base).resolve()), "seeds": seeds,
                          "set": {"run.duration_hours": hours}, "grid": grid})
    try:
        folder.mkdir(parents=True)
    except OSError as err:
        raise ConfigError(f"sweep folder {str(folder)!r}: cannot be made ({err.strerror})") from None
    (folder / "sweep.toml").write_text(text)
    try:
        return plan(folder / "sweep.toml")
    except ConfigError:
        shutil.rmtree(folder)
        raise


def _draw(key: str, spec: Any, rng: np.random.Generator) -> Any:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SAMPLERS:
        raise ConfigError(f"sweep.random.{key}: expected one of {{uniform = [a, b]}}, {{log_uniform = [a, b]}}, "
                          "{choice = [...]}")
    kind, values = next(iter(spec.items()))
    if kind == "choice":
        return values[int(rng.integers(len(values)))]
    low, high = values
    if kind == "log_uniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


def scenario_for(base: Path, shared: tuple, cell: Cell):
    overrides = [config_module.override_text(k, v) for k, v in (*shared, *cell.overrides)]
    return config_module.load(base, overrides=overrides, seed=cell.seed)


def compute_cell(scenario: dict) -> dict:
    """Run one cell's scenario (a plain dict, so any worker can rebuild it) and return what its folder holds."""
    if "__invalid__" in scenario:
        raise ConfigError(scenario["__invalid__"])
    started = time.perf_counter()
    output = Simulation(config_module.from_dict(scenario)).run()
    return {"seconds": time.perf_counter() - started, "config": config_module.dumps(output.scenario),
            "metrics": output.metrics(), "summary": output.summary()}


def store_cell(out: Path, outcome: Outcome) -> None:
    """Write a cell's folder: config.toml, metrics.parquet, summary.json — or error.json."""
    folder = out / "cells" / outcome.job.key
    folder.mkdir(parents=True, exist_ok=True)
    if outcome.failed:
        (folder / "error.json").write_text(json.dumps({"error": outcome.error, "traceback": outcome.traceback},
                                                      indent=2) + "\n")
        return
    (folder / "config.toml").write_text(outcome.value["config"])
    outcome.value["metrics"].to_parquet(folder / "metrics.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps(outcome.value["summary"], indent=2, sort_keys=True) + "\n")
    (folder / "error.json").unlink(missing_ok=True)


def _cell_scenario(sweep: SweepPlan, cell: Cell) -> dict:
    """A cell's scenario as a dict; an invalid one becomes an error result in its worker, like any failure."""
    try:
        return config_module.to_dict(scenario_for(sweep.base, sweep.shared, cell))
    except ConfigError as err:
        return {"__invalid__": str(err)}


def _headline(value: dict) -> str:
    summary = value["summary"]
    return (f"PV log loss {summary.get('pv_logloss', float('nan')):.4f}  revenue {summary.get('revenue', 0.0):,.0f}  "
            f"({value['seconds']:.0f} s)")


def _label(cell: Cell) -> str:
    return f"cell {cell.cell_id} seed {cell.seed} " + " ".join(f"{k}={v}" for k, v in cell.overrides)


def run_sweep(sweep: SweepPlan, out_dir: str | Path, workers: int = 2, progress: Callable[[Progress], None] | None = None,
              backend: str = "local", address: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the cells not finished yet (`local` processes or `ray` tasks, see `runner`); collect ticks.parquet and
    cells.parquet. Workers get each cell's scenario as a dict and send results back; only this process writes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [Job(c.cell_id, _label(c), compute_cell, (_cell_scenario(sweep, c),)) for c in sweep.cells]
    run_jobs(jobs, finished=lambda job: (out / "cells" / job.key / "summary.json").is_file(),
             store=lambda outcome: store_cell(out, outcome), headline=_headline, workers=workers, backend=backend,
             address=address, progress=progress)
    return collect(sweep, out)


def unfinished(sweep: SweepPlan, out_dir: str | Path) -> int:
    """How many of the sweep's cells have no result in `out_dir` yet (what a resumed run would run)."""
    return sum(not (Path(out_dir) / "cells" / cell.cell_id / "summary.json").is_file() for cell in sweep.cells)


def collect(sweep: SweepPlan, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gather every cell folder into ticks.parquet and cells.parquet (both loadable with pandas)."""
    ticks, cells = [], []
    for cell in sweep.cells:
        folder = out / "cells" / cell.cell_id
        row = {"cell": cell.cell_id, "seed": cell.seed, **dict(cell.overrides)}
        if (folder / "summary.json").is_file():
            summary = json.loads((folder / "summary.json").read_text())
            summary.pop("time_share", None)
            row.update(status="done", error=None, **{k: v for k, v in summary.items() if k != "seed"})
            ticks.append(pd.read_parquet(folder / "metrics.parquet").assign(cell=cell.cell_id, seed=cell.seed,
                                                                            **dict(cell.overrides)))
        elif (folder / "error.json").is_file():
            row.update(status="failed", error=json.loads((folder / "error.json").read_text())["error"])
        else:
            row.update(status="not run", error=None)
        cells.append(row)
    cell_frame = pd.DataFrame(cells)
    tick_frame = pd.concat(ticks, ignore_index=True) if ticks else pd.DataFrame()
    cell_frame.to_parquet(out / "cells.parquet", index=False)
    tick_frame.to_parquet(out / "ticks.parquet", index=False)
    return tick_frame, cell_frame


def load_results(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A finished sweep's (ticks, cells) tables from its output folder."""
    out = Path(out_dir)
    if not (out / "cells.parquet").is_file():
        raise ConfigError(f"sweep results: no cells.parquet in {str(out)!r}")
    return pd.read_parquet(out / "ticks.parquet"), pd.read_parquet(out / "cells.parquet")


def parameters(cells: pd.DataFrame) -> list[str]:
    """The swept config keys (section.key columns) of a cells table."""
    return [c for c in cells.columns if "." in c and c.split(".")[0] in config_module.SECTIONS]


def metric_by_parameter(cells: pd.DataFrame, parameter: str | list[str], metric: str) -> pd.DataFrame:
    """Mean, standard deviation, count and 95 % t-interval half-width (`ci95`, nan for one seed) of `metric` over
    finished cells (all seeds) per value of `parameter` (or per combination of several)."""
    keys = [parameter] if isinstance(parameter, str) else list(parameter)
    done = cells[cells["status"] == "done"]
    grouped = done.groupby(keys)[metric]
    table = grouped.agg(["mean", "std", "count"])
    table["ci95"] = grouped.agg(lambda values: float(interval_half_widths(values.to_numpy()[:, None])[0]))
    return table.reset_index().sort_values(keys).reset_index(drop=True)


def multiplicative(values) -> bool:
    """Whether a parameter's values are better read on a log axis: all positive, spanning at least a factor of 10."""
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    return bool(numbers.notna().all() and (numbers > 0).all() and numbers.max() >= 10 * numbers.min())
