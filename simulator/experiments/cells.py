"""A study's cells (an arm on a seed for some hours, or a protocol on a seed), run by the one runner and cached
as JSON."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.trainer import Examples
from simulator import config
from simulator.experiments.protocols import auction_revenue, batch_scaling
from simulator.experiments.runner import Job, Outcome, run_jobs
from simulator.experiments.study import Arm, Study
from simulator.loop.simulation import WARM_START_VERSION, Simulation
from simulator.measure.irreproducibility import irreproducibility
from simulator.measure.runs import clipped_share, component_spread, run_metrics


def run_arm(arm: Arm, seed: int, hours: float, scenario: str | Path | dict) -> dict:
    """Run one arm on one seed (and, for replica arms, its replica and open-loop control); return its numbers."""
    scenario, replica_scenario = arm.scenarios(seed, hours, scenario)
    started = time.perf_counter()
    measures_ensemble = scenario.model.ensemble_size > 1  # its spread needs the logs afterwards
    simulation = Simulation(scenario, sync_stages=True, keep_training_logs=arm.replica or measures_ensemble)
    output = _finished(simulation.run(), arm, seed)
    result = {"arm": arm.name, "seed": seed, **run_metrics(output, simulation.world.page_examination)}
    if measures_ensemble and output.training_logs:
        logged = Examples.concat([entry[1] for entry in output.training_logs])
        result["component_spread"] = component_spread(simulation.trainer, logged)
    if scenario.train.cowclip:
        result["clipped_share"] = clipped_share(simulation.trainer)
    if arm.replica:
        replica = _finished(Simulation(replica_scenario).run(), arm, seed, "replica")
        open_loop = _finished(Simulation(replica_scenario, training_logs=output.training_logs).run(), arm, seed,
                              "open-loop replica")
        result.update(irreproducibility(output, replica, open_loop))
        replica.close()
        open_loop.close()
    output.close()
    result["wall_seconds"] = time.perf_counter() - started
    return result


def _finished(output, arm: Arm, seed: int, which: str = "run"):
    """A run's output, or a failed cell saying why the run stopped early: its numbers are not the arm's."""
    if output.stopped:
        raise RuntimeError(f"arm {arm.name!r}, seed {seed}: the {which} stopped early: {output.stopped}")
    return output


# Part of every cell's cache key: bump it when a measurement's definition or the loop's results change, so a
# cache never serves numbers computed under old definitions (2: issue #14 — padding steps, the monotone
# auction rule, PD on fixed example sets, Table 3's ads/query churn, the final window in simulated time; 3: the
# "second half" windows in simulated time, PD over time weighted by examples; 4: studies as data — the key holds
# whether the arm runs a replica, and the treatment-effect result says treatment_effect_others; 5: CowClip's clipped
# share counted over every training step, not the last batch; 6: PD over probe cells counts every treatment of a
# cell: since eef2f9d it summed the T treatments over a count without them, T× too high).
MEASUREMENTS_VERSION = 6


@dataclass(frozen=True)
class Cell:
    """One unit of work: an arm on a seed for some hours, the auction comparison ("auction") on a seed, or the
    batch-scaling protocol ("batch_scaling") on a seed's logs of some hours."""

    arm: str
    seed: int
    hours: float

    def key(self, study: Study) -> str:
        """The cache id: the arm's whole definition (overrides, replica, nuisance), the hours and the scenario's text
        (and the measurements' version, and a warm-started arm's WARM_START_VERSION): two studies share a cell only
        where they would compute the same numbers."""
        arm = study.arms.get(self.arm)
        warm = (f"warm start version {WARM_START_VERSION}",) if study.warm_start_hours else ()  # the auction's: cold
        overrides = () if arm is None else (*arm.overrides, f"replica={arm.replica}", f"nuisance={arm.nuisance}", *warm)
        if self.arm == "batch_scaling":  # its logs come from a run of the scenario, warm-started if the scenario is
            overrides = (*(f"{name}: {' '.join(o)}" for name, o in study.batch_scaling.settings.items()),
                         f"epochs {study.batch_scaling.epochs}", *warm)
        digest = hashlib.sha256(json.dumps([MEASUREMENTS_VERSION, overrides, self.hours,
                                            Path(study.scenario).read_text()]).encode())
        return f"{self.arm}-seed{self.seed}-{digest.hexdigest()[:10]}"

    def job(self, study: Study) -> Job:
        """The cell as the runner's job; it carries the scenario's tables, not its path, so a worker on another
        machine needs no copy of the file."""
        label, tables = f"{self.arm:17s} seed {self.seed}", config.read_toml(study.scenario)
        if self.arm == "auction":
            return Job(self.key(study), label, auction_revenue, (self.seed, tables))
        if self.arm == "batch_scaling":
            scaling = study.batch_scaling
            return Job(self.key(study), label, batch_scaling, (self.seed, self.hours, scaling.epochs, scaling.settings,
                                                               tables))
        return Job(self.key(study), label, run_arm, (study.arms[self.arm], self.seed, self.hours, tables))


def _cell_line(result: dict) -> str:
    """The headline numbers of a finished cell, for the progress line."""
    if result["arm"] == "auction":
        return f"VCG/GSP revenue − 1 = {result['vcg_over_gsp']:+.3f}"
    if result["arm"] == "batch_scaling":
        return "test AUC " + "  ".join(f"{name} {r['test_auc']:.4f}" for name, r in result["settings"].items())
    return (f"gap {result['pv_logloss_gap'] * 100:+.2f}%  AUC {result['pv_auc']:.4f}"
            + (f"  PD {result['pd']:.3f}" if "pd" in result else ""))


def run_cells(cells: list[Cell], study: Study, cache_dir: Path, workers: int = 2, backend: str = "local",
              address: str | None = None, progress: Callable[[str], None] | None = None,
              ) -> tuple[list[dict], dict[str, str]]:
    """Run every cell not in `cache_dir` yet (KEY.json: its result; KEY.error.json: why it failed, until it
    succeeds); return the results of every finished cell and the error of each failed one, by cell key."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs = [cell.job(study) for cell in cells]
    failures = {}

    def store(outcome: Outcome) -> None:
        key = outcome.job.key
        if outcome.failed:
            failures[key] = outcome.error
            (cache_dir / f"{key}.error.json").write_text(json.dumps({"error": outcome.error,
                                                                     "traceback": outcome.traceback}, indent=2) + "\n")
        else:
            (cache_dir / f"{key}.json").write_text(json.dumps(outcome.value, default=float))
            (cache_dir / f"{key}.error.json").unlink(missing_ok=True)

    cached = sum((cache_dir / f"{job.key}.json").is_file() for job in jobs)
    if progress and cached:
        progress(f"{cached} of {len(jobs)} cells from the cache in {cache_dir}")
    run_jobs(jobs, finished=lambda job: (cache_dir / f"{job.key}.json").is_file(), store=store, headline=_cell_line,
             workers=workers, backend=backend, address=address,
             progress=None if progress is None else lambda p: progress(p.text()))
    results = [json.loads((cache_dir / f"{job.key}.json").read_text()) for job in jobs
               if (cache_dir / f"{job.key}.json").is_file()]
    return results, failures
