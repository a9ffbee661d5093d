"""The technique tables (docs/results/models.md): arms × metrics with 95 % t-intervals."""

from __future__ import annotations

import numpy as np

from simulator.experiments.protocols import OFFLINE
from simulator.experiments.study import Study
from simulator.measure.definitions import METRIC_DOC
from simulator.measure.intervals import interval


# ---- the technique tables ----------------------------------------------------------------------------------
def fmt_interval(mean: float, half: float) -> str:
    """"mean ± 95 % half-width", each as `fmt` writes it."""
    return f"{fmt(mean)} ± {fmt(half)}"


def table_cell(text: str) -> str:
    """Text for a markdown table's cell: a "|" inside it (as in "|log(pCTR/true)|") would end the cell."""
    return text.replace("|", "\\|")


def fmt(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}" if magnitude < 10 else f"{value:.1f}"


def _overrides(study: Study, arm: str) -> tuple[str, ...]:
    if arm.startswith(OFFLINE):
        return study.batch_scaling.settings[arm.removeprefix(OFFLINE)]
    spec = study.arms[arm]
    return (*spec.overrides, *(("nuisance: train.shuffle_seed 1 vs 2",) if spec.nuisance == "order" else ()))


def warm_start_note(study: Study) -> str:
    """How a warm-started study's runs began ("" for runs from cold models)."""
    return (f", each after {study.warm_start_hours:g} simulated hours of warm start (the arm's model and world, "
            "and separately its replica from its own init, each pre-trained in its own closed loop on the same seed; "
            "only the window after it is measured, and the open-loop control starts from the replica's pre-trained "
            "state, so closed against open loop is the window's feedback)" if study.warm_start_hours else "")


def models_report(study: Study, results: list[dict], seeds: list[int], hours: float, command: str,
                  scenario: str) -> str:
    """docs/results/models.md: each table of the study, its arms against the first, mean ± 95 % interval and paired Δ."""
    by = {(r["arm"], r["seed"]): r for r in results}
    lines = ["# Model techniques: paired experiments", "",
             f"Produced by `{command}` ({len(seeds)} seed(s): {', '.join(map(str, seeds))}; "
             f"{hours:g} simulated hours of `{scenario}` per run{warm_start_note(study)}). Every arm of a seed sees the same "
             "traffic and user noise as the baseline of that seed. Cells: mean ± 95 % t-interval half-width over "
             "seeds; Δ = paired difference to the section's first arm (same seed), mean ± half-width.", ""]
    for table in study.tables:
        title, metrics = table.title, table.metrics
        arms = [a for a in table.arms if all((a, s) in by for s in seeds)]
        if len(arms) < 2:
            continue
        lines += [f"## {title}", "", "| arm | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for arm in arms:
            cells = []
            for metric in metrics:
                values = [by[(arm, s)].get(metric, float("nan")) for s in seeds]
                mean, half = interval(values)
                cell = fmt_interval(mean, half)
                if arm != arms[0]:
                    base = [by[(arms[0], s)].get(metric, float("nan")) for s in seeds]
                    d_mean, d_half = interval(np.subtract(values, base))
                    cell += f" (Δ {fmt_interval(d_mean, d_half)})"
                cells.append(cell)
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines += ["", "Overrides: " + "; ".join(f"`{a}`: " + (", ".join(f"`{o}`" for o in _overrides(study, a)) or "defaults")
                                                for a in arms), ""]
    lines += ["## What the numbers mean", ""] + [f"- `{k}`: {v}" for k, v in METRIC_DOC.items()] + [""]
    if any("bias_position" in r for r in results):
        lines += ["## Per-slice bias (serving-time pCTR / true CTR − 1, second half, seed "
                  f"{seeds[0]})", "", "| arm | positions | treatments |", "|---|---|---|"]
        for arm in ("baseline", "bias", "unfactorized", "rank"):
            if (arm, seeds[0]) in by:
                r = by[(arm, seeds[0])]
                lines.append(f"| {arm} | {', '.join(f'{x:+.3f}' for x in r['bias_position'])} | "
                             f"{', '.join(f'{x:+.3f}' for x in r['bias_treatment'])} |")
        lines.append("")
    if ("baseline", seeds[0]) in by:
        r = by[("baseline", seeds[0])]
        lines += [f"Learned position effect CTR(p)/CTR(top), baseline seed {seeds[0]}: "
                  f"{', '.join(f'{x:.3f}' for x in r['learned_position_effect'])} (true "
                  f"{', '.join(f'{x:.3f}' for x in r['true_position_effect'])}).", ""]
    return "\n".join(lines)
