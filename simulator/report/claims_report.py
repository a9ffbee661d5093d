"""The whole claims report: run every cell, evaluate the claims, write the markdown, JSON and figures."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from simulator import config
from simulator.experiments.cells import Cell, run_cells
from simulator.experiments.protocols import offline_rows, sanity_checks
from simulator.experiments.study import Study
from simulator.report.claims_figures import (
    attribution_figure,
    batch_scaling_figure,
    claims_figure,
    feedback_figure,
    irreproducibility_figure,
    pd_frontier_figure,
    techniques_figure,
    write_figure,
)
from simulator.report.claims_markdown import claims_markdown
from simulator.report.tables import models_report


# ---- the whole report ------------------------------------------------------------------------------------------
def code_version() -> str | None:
    """The git commit of the code that wrote the report (with "+changes" when the tree differs), if known."""
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



def _cells(study: Study, seeds: list[int], hours: float, arms: list[str], batch_scaling: bool) -> list[Cell]:
    """The protocols' cells, then the claims' and sections' arms on every seed (an interrupted report can be written
    from them), heavy cells first within a seed so the pool ends with short ones, then the remaining arms."""
    quick = set(study.quick_arms)
    protocols = [Cell("auction", seed, 0.0) for seed in seeds if study.auction] + [
        Cell("batch_scaling", seed, hours) for seed in seeds if study.batch_scaling and batch_scaling]
    return protocols + sorted((Cell(name, seed, hours) for seed in seeds for name in arms),
                              key=lambda c: (c.arm not in quick, c.seed, not study.arms[c.arm].replica,
                                             c.arm != "unfactorized"))


def _figures(study: Study, entries: list[dict], results: list[dict], arm_results: list[dict], seeds: list[int],
             hours: float) -> dict:
    """Each figure the study's parts call for, by file name."""
    ran = {r["arm"] for r in arm_results}
    figures = {"claims": claims_figure(entries)} if entries else {}
    if "baseline" in ran and study.arms["baseline"].replica:
        figures["irreproducibility"] = irreproducibility_figure(results, seeds, hours)
    if ran & set(study.attribution_arms):
        figures["attribution"] = attribution_figure(results, seeds, list(study.attribution_arms))
    if ran & set(study.feedback_arms):
        figures["feedback_loop"] = feedback_figure(results, seeds, list(study.feedback_arms))
    figures["techniques"] = techniques_figure(study, arm_results, seeds)
    if any(r["arm"] == "batch_scaling" for r in results):
        figures["batch_scaling"] = batch_scaling_figure(study, results, seeds)
    for name, frontier in study.frontiers.items():
        if sum(bool(ran & set(arms)) for arms in frontier.lines.values()) >= 2:  # something to compare
            figures[f"{name}_frontier"] = pd_frontier_figure(arm_results, seeds, frontier)
    return figures


def scenario_label(study: Study) -> str:
    """The study's scenario as the reports name it: `scenarios/NAME.toml` for a shipped one, else its path."""
    shipped = Path(study.scenario).parent == config.SCENARIOS
    return f"scenarios/{Path(study.scenario).name}" if shipped else str(study.scenario)


def report(study: Study, out: str | Path, seeds: list[int], hours: float, arms: list[str] | None = None,
           workers: int = 2, cache_dir: str | Path = "runs/report-cache", backend: str = "local",
           address: str | None = None, command: str = "adfloor report", progress: Callable[[str], None] | None = None,
           batch_scaling: bool = True) -> tuple[list[dict], dict[str, str]]:
    """Run the study's arms (all by default, the baseline always) and protocols on every seed; write claims.md,
    claims.json, models.md, models.json and the figures to `out`. Returns the claims' entries and the errors of
    the cells that failed (their claims are left out; a re-run retries them)."""
    names = list(study.arms) if arms is None else arms
    unknown = sorted(set(names) - set(study.arms))
    if unknown:
        raise ValueError(f"report: unknown arms {unknown}; known: {sorted(study.arms)}")
    names = ["baseline", *(n for n in names if n != "baseline")]
    started = time.perf_counter()
    results, failures = run_cells(_cells(study, seeds, hours, names, batch_scaling), study, Path(cache_dir), workers,
                                  backend, address, progress)
    rows = [r for r in results if r["arm"] != "batch_scaling"] + offline_rows(results)
    entries = study.evaluate(rows, seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter() - started
    arm_results = [r for r in rows if r["arm"] != "auction"]
    auctions = [r for r in results if r["arm"] == "auction"]
    scenario_name, scenario = Path(study.scenario).name, scenario_label(study)
    figures = _figures(study, entries, results, arm_results, seeds, hours)
    (out / "claims.json").write_text(json.dumps({"command": command, "code": code_version(), "study": study.name,
                                                 "scenario": scenario_name, "seeds": seeds, "hours": hours,
                                                 "warm_start_hours": study.warm_start_hours, "wall_seconds": wall, "claims": entries,
                                                 "sanity_checks": sanity_checks(auctions) if study.auction else [],
                                                 "auction_comparison": auctions, "failed_cells": failures,
                                                 "figures": list(figures)}, indent=1, default=float) + "\n")
    (out / "claims.md").write_text(claims_markdown(study, entries, results, seeds, hours, command, scenario))
    (out / "models.json").write_text(json.dumps({"seeds": seeds, "hours": hours, "command": command,
                                                 "results": arm_results,
                                                 "batch_scaling": [r for r in results if r["arm"] == "batch_scaling"]},
                                                indent=1, default=float) + "\n")
    (out / "models.md").write_text(models_report(study, arm_results, seeds, hours, command, scenario))
    for name, figure in figures.items():
        write_figure(figure, out / f"{name}.png")
    if progress:
        progress(f"{sum(e['reproduced'] for e in entries)} of {len(entries)} claims reproduced; wrote {out}/claims.md "
                 f"({wall:.0f} s)" + (f"; {len(failures)} cells FAILED (see {cache_dir}/*.error.json)" if failures else ""))
    return entries, failures
