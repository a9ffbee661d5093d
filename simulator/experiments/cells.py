"""Cells (an arm on a seed for some hours, or a study on a seed), run in spawned processes and cached as JSON."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from models.trainer import Examples
from simulator.compile_cache import enable_compilation_cache
from simulator.experiments.arms import ARMS, SCENARIO, Arm
from simulator.experiments.studies import (
    BATCH_SCALING,
    BATCH_SCALING_EPOCHS,
    auction_revenue,
    batch_scaling,
)
from simulator.loop.simulation import Simulation
from simulator.measure.irreproducibility import irreproducibility
from simulator.measure.runs import clipped_share, component_spread, run_metrics


def run_arm(arm: Arm, seed: int, hours: float, scenario_path: str | Path = SCENARIO) -> dict:
    """Run one arm on one seed (and, for replica arms, its replica and open-loop control); return its numbers."""
    scenario, replica_scenario = arm.scenarios(seed, hours, scenario_path)
    started = time.perf_counter()
    measures_trainer = scenario.model.ensemble_size > 1 or scenario.train.cowclip  # needs the logs afterwards
    simulation = Simulation(scenario, sync_stages=True, keep_training_logs=arm.replica or measures_trainer)
    output = simulation.run()
    result = {"arm": arm.name, "seed": seed, **run_metrics(output, simulation.world.examination)}
    if measures_trainer and output.training_logs:
        logged = Examples.concat([entry[1] for entry in output.training_logs])
        if scenario.model.ensemble_size > 1:
            result["component_spread"] = component_spread(simulation.trainer, logged)
        if scenario.train.cowclip:
            result["clipped_share"] = clipped_share(simulation.trainer, logged, scenario.train)
    if arm.replica:
        replica = Simulation(replica_scenario).run()
        open_loop = Simulation(replica_scenario, training_logs=output.training_logs).run()
        result.update(irreproducibility(output, replica, open_loop))
    result["wall_seconds"] = time.perf_counter() - started
    return result


# ---- many cells, in parallel, cached ------------------------------------------------------------------------
# Part of every cell's cache key: bump it when a measurement's definition or the loop's results change, so a
# cache never serves numbers computed under old definitions (2: issue #14 — padding steps, the monotone
# auction rule, PD on fixed example sets, Table 3's ads/query churn, the final window in simulated time; 3: the
# "second half" windows in simulated time, PD over time weighted by examples).
MEASUREMENTS_VERSION = 3


@dataclass(frozen=True)
class Cell:
    """One unit of work: an arm on a seed for some hours, the auction comparison ("auction") on a seed, or the
    batch-scaling study ("batch_scaling") on a seed's logs of some hours."""

    arm: str
    seed: int
    hours: float

    def key(self, scenario_path: Path) -> str:
        arm = ARMS.get(self.arm)
        overrides = () if arm is None else (*arm.overrides, *(() if arm.nuisance == "init" else (arm.nuisance,)))
        if self.arm == "batch_scaling":
            overrides = (*(f"{name}: {' '.join(o)}" for name, o in BATCH_SCALING.items()), f"epochs {BATCH_SCALING_EPOCHS}")
        digest = hashlib.sha256(json.dumps([MEASUREMENTS_VERSION, overrides, self.hours,
                                            Path(scenario_path).read_text()]).encode())
        return f"{self.arm}-seed{self.seed}-{digest.hexdigest()[:10]}"


def _run_cell(cell: Cell, scenario_path: Path) -> dict:
    enable_compilation_cache()  # a spawned worker: reuse compiled programs across cells and runs
    if cell.arm == "auction":
        return auction_revenue(cell.seed, scenario_path=scenario_path)
    if cell.arm == "batch_scaling":
        return batch_scaling(cell.seed, cell.hours, scenario_path=scenario_path)
    return run_arm(ARMS[cell.arm], cell.seed, cell.hours, scenario_path)


def _cell_line(result: dict) -> str:
    """The headline numbers of a finished cell, for the progress line."""
    if result["arm"] == "auction":
        return f"VCG/GSP revenue − 1 = {result['vcg_over_gsp']:+.3f}"
    if result["arm"] == "batch_scaling":
        return "test AUC " + "  ".join(f"{name} {r['test_auc']:.4f}" for name, r in result["settings"].items())
    return (f"gap {result['pv_logloss_gap'] * 100:+.2f}%  AUC {result['pv_auc']:.4f}"
            + (f"  PD {result['pd']:.3f}" if "pd" in result else ""))


def run_cells(cells: list[Cell], workers: int = 2, cache_dir: Path | None = None, scenario_path: Path = SCENARIO,
              progress: Callable[[str], None] | None = None) -> list[dict]:
    """Run every cell (spawned processes), reusing the cached result of a cell already run with the same
    overrides, hours and scenario text; print a line per finished cell with the elapsed time and an ETA."""
    results, todo = [], []
    for cell in cells:
        cached = cache_dir / f"{cell.key(scenario_path)}.json" if cache_dir else None
        if cached is not None and cached.exists():
            results.append(json.loads(cached.read_text()))
        else:
            todo.append(cell)
    if progress and results:
        progress(f"{len(results)} of {len(cells)} cells from the cache in {cache_dir}")
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # no forked JAX runtimes
    with ProcessPoolExecutor(max(1, min(workers, len(todo) or 1)), mp_context=context) as pool:
        futures = {pool.submit(_run_cell, cell, scenario_path): cell for cell in todo}
        for done, future in enumerate(as_completed(futures), 1):
            cell = futures[future]
            result = future.result()
            results.append(result)
            if cache_dir is not None:
                cache_dir.mkdir(parents=True, exist_ok=True)
                (cache_dir / f"{cell.key(scenario_path)}.json").write_text(json.dumps(result, default=float))
            if progress:
                elapsed = time.perf_counter() - started
                eta = elapsed / done * (len(todo) - done)
                progress(f"[{done}/{len(todo)}  {elapsed:5.0f} s, ETA {eta:5.0f} s] {cell.arm:17s} seed {cell.seed}: "
                         f"{_cell_line(result)}")
    return results
