"""The whole claims report: run every cell, evaluate the claims, write the markdown, JSON and figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from simulator.experiments.arms import ARMS, SCENARIO
from simulator.experiments.cells import Cell, run_cells
from simulator.experiments.claims import FIGURES, QUICK_ARMS, evaluate, sanity_checks
from simulator.report.claims_figures import (
    attribution_figure,
    batch_scaling_figure,
    claims_figure,
    feedback_figure,
    irreproducibility_figure,
    pd_frontier_figure,
    techniques_figure,
)
from simulator.report.claims_markdown import claims_markdown
from simulator.report.tables import models_report, study_rows


# ---- the whole report ------------------------------------------------------------------------------------------
def code_version() -> str | None:
    """The git commit of the code that wrote the report (with "+changes" when the tree differs), if known."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")



def report(out: str | Path, seeds: list[int], hours: float, arms: list[str] | None = None, workers: int = 2,
           cache_dir: str | Path | None = None, scenario_path: str | Path = SCENARIO, command: str = "adfloor report",
           progress: Callable[[str], None] | None = None, batch_scaling: bool = True) -> list[dict]:
    """Run the arms (all by default), the auction comparison and (unless `batch_scaling` is false) the
    batch-scaling study on every seed; write the report files to `out`."""
    names = list(ARMS) if arms is None else arms
    unknown = sorted(set(names) - set(ARMS))
    if unknown:
        raise ValueError(f"report: unknown arms {unknown}; known: {sorted(ARMS)}")
    if "baseline" not in names:
        names = ["baseline", *names]
    # the claims' arms on every seed first (an interrupted report can be written from them), heavy cells first
    # within a seed so the pool ends with short ones, then the remaining technique arms
    cells = [Cell("auction", seed, 0.0) for seed in seeds] + [Cell("batch_scaling", seed, hours) for seed in seeds if batch_scaling] + sorted(
        (Cell(name, seed, hours) for seed in seeds for name in names),
        key=lambda c: (c.arm not in QUICK_ARMS, c.seed, not ARMS[c.arm].replica, c.arm != "unfactorized"))
    started = time.perf_counter()
    results = run_cells(cells, workers, Path(cache_dir) if cache_dir else None, Path(scenario_path), progress)
    rows = [r for r in results if r["arm"] != "batch_scaling"] + study_rows(results)
    entries = evaluate(rows, seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter() - started
    arm_results = [r for r in rows if r["arm"] != "auction"]
    auctions = [r for r in results if r["arm"] == "auction"]
    scenario_name = Path(scenario_path).name
    checks = sanity_checks(auctions)
    (out / "claims.json").write_text(json.dumps({"command": command, "code": code_version(), "scenario": scenario_name,
                                                 "seeds": seeds, "hours": hours, "wall_seconds": wall, "claims": entries,
                                                 "sanity_checks": checks, "auction_comparison": auctions},
                                                indent=1, default=float) + "\n")
    (out / "claims.md").write_text(claims_markdown(entries, results, seeds, hours, command, scenario_name))
    (out / "models.json").write_text(json.dumps({"seeds": seeds, "hours": hours, "command": command,
                                                 "results": arm_results,
                                                 "batch_scaling": [r for r in results if r["arm"] == "batch_scaling"]},
                                                indent=1, default=float) + "\n")
    (out / "models.md").write_text(models_report(arm_results, seeds, hours, command, scenario_name))
    figures = (claims_figure(entries), irreproducibility_figure(results, seeds, hours),
               attribution_figure(results, seeds), feedback_figure(results, seeds), techniques_figure(arm_results, seeds),
               batch_scaling_figure(results, seeds), pd_frontier_figure(arm_results, seeds))
    for name, figure in zip(FIGURES, figures):
        figure.savefig(out / f"{name}.png", dpi=100)
    if progress:
        progress(f"{sum(e['reproduced'] for e in entries)} of {len(entries)} claims reproduced; wrote {out}/claims.md "
                 f"({wall:.0f} s)")
    return entries
