"""Each claim in several saved claims reports side by side (the teaching world, the realistic world from cold models,
the realistic world from mature ones, ...): one table and one figure, read from each report's claims.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

from simulator.config import ConfigError
from simulator.report.claims_figures import _plt
from simulator.report.tables import fmt


def read_reports(sources: dict[str, str | Path]) -> dict[str, dict]:
    """Each labelled report folder's claims.json, with `folder` added; a missing or unreadable one is a ConfigError."""
    if len(sources) < 2:
        raise ConfigError("side-by-side: give at least two reports as LABEL=FOLDER")
    reports = {}
    for label, folder in sources.items():
        path = Path(folder) / "claims.json"
        try:
            reports[label] = {**json.loads(path.read_text()), "folder": Path(folder)}
        except FileNotFoundError:
            raise ConfigError(f"side-by-side: {label}={folder}: no claims.json there (a folder `adfloor report` "
                              "wrote)") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"side-by-side: {path}: not a claims report: {err}") from None
    return reports


def _claims(reports: dict[str, dict]) -> dict[str, dict]:
    """Every claim of any report by id, in the order they first appear (each report's own entry comes later)."""
    claims = {}
    for report in reports.values():
        for entry in report["claims"]:
            claims.setdefault(entry["id"], entry)
    return claims


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "—"
    low, high = entry["ci95"]
    verdict = ("not testable" if not entry.get("testable", True) else "**yes**" if entry["reproduced"] else "no")
    return f"{fmt(entry['mean'])} [{fmt(low)}, {fmt(high)}] {verdict}"


def _describe(label: str, report: dict, out: Path) -> str:
    link = Path(os.path.relpath(report["folder"] / "claims.md", out.parent)).as_posix()
    warm = report.get("warm_start_hours") or 0
    start = f"after {warm:g} simulated hours of warm start" if warm else "from cold models"
    failed = len(report.get("failed_cells") or {})
    return (f"- **{label}**: [{link}]({link}), {len(report['seeds'])} seeds × "
            f"{report['hours']:g} simulated hours {start}; {sum(e['reproduced'] for e in report['claims'])} of "
            f"{len(report['claims'])} claims reproduced" + (f"; {failed} cell(s) failed, their claims left out"
                                                             if failed else "") + ".")


def side_by_side_markdown(reports: dict[str, dict], out: Path, figure_name: str) -> str:
    """The table: a row per claim, a column per report (mean [95 % interval] and the verdict; — where that report
    has no such claim)."""
    labels = list(reports)
    by_report = {label: {e["id"]: e for e in report["claims"]} for label, report in reports.items()}
    lines = ["# Each claim in each world", "",
             "Written by `adfloor side-by-side` from these reports' claims.json (each report's own page has every "
             "claim's per-seed values, side measures and the reasons it may not reproduce):", "",
             *(_describe(label, report, out) for label, report in reports.items()), "",
             "Each cell: the claim's measured effect, mean over seeds [95 % t-interval], and whether it reproduced "
             "(the interval on the claimed side of 0, or above −margin for non-inferiority). —: the report has no "
             "such claim (not in its pass, or a cell of its arms failed).", "",
             f"![each claim in each world]({figure_name})", "",
             "| claim | measured effect | " + " | ".join(labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for claim_id, entry in _claims(reports).items():
        cells = " | ".join(_cell(by_report[label].get(claim_id)) for label in labels)
        lines.append(f"| `{claim_id}` | {entry['effect']} | {cells} |")
    return "\n".join(lines) + "\n"


def side_by_side_figure(reports: dict[str, dict]):
    """A panel per claim (their units differ): each report's mean and 95 % interval, green where it reproduced."""
    plt = _plt()
    claims, labels = _claims(reports), list(reports)
    columns = 4
    rows = -(-len(claims) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 0.45 * len(labels) * rows + 1.4 * rows),
                                squeeze=False)
    for axis, (claim_id, first) in zip(axes.flat, claims.items()):
        for row, label in enumerate(labels):
            entry = next((e for e in reports[label]["claims"] if e["id"] == claim_id), None)
            if entry is None:
                continue
            low, high = entry["ci95"]
            color = "C2" if entry["reproduced"] else "C3"
            axis.errorbar(entry["mean"], row, xerr=[[entry["mean"] - low], [high - entry["mean"]]], fmt="o",
                          color=color, capsize=3)
        axis.axvline(0, color="grey", linestyle="--", linewidth=0.8)
        if first.get("expect") == "non_inferior":
            axis.axvline(-first["margin"], color="grey", linestyle=":", linewidth=0.8)
        axis.set_yticks(range(len(labels)), labels, fontsize=8)
        axis.set_ylim(len(labels) - 0.5, -0.5)
        axis.set_title(claim_id, fontsize=9)
        axis.tick_params(axis="x", labelsize=8)
    for axis in list(axes.flat)[len(claims):]:
        axis.set_visible(False)
    figure.suptitle("Each claim in each world: mean effect and 95 % interval over seeds (green: reproduced; "
                    "see the table for each effect's unit)")
    figure.tight_layout()
    return figure


def write_side_by_side(sources: dict[str, str | Path], out: str | Path) -> Path:
    """Write the table to `out` (a .md file) and its figure beside it (same name, .png)."""
    out = Path(out)
    if out.suffix != ".md":
        raise ConfigError(f"side-by-side: --out: a markdown file (…/NAME.md), got {str(out)!r}")
    reports = read_reports(sources)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure_path = out.with_suffix(".png")
    side_by_side_figure(reports).savefig(figure_path, dpi=100)
    out.write_text(side_by_side_markdown(reports, out, figure_path.name))
    return out
