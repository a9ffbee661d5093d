"""Each claim in several saved claims reports side by side (the teaching world, the realistic world from cold models,
the realistic world from mature ones, ...): one table and one figure, read from each report's claims.json. A claim
whose definition differs between the reports (its measure, arms or rule) is marked, not silently put in one row."""

from __future__ import annotations

import json
import os
from pathlib import Path

from simulator.config import ConfigError
from simulator.report.claims_figures import pyplot, write_figure
from simulator.report.tables import fmt, table_cell


def read_reports(sources: dict[str, str | Path]) -> dict[str, dict]:
    """Each labelled report folder's claims.json, with `folder` added; a missing or unreadable one is a ConfigError."""
    if len(sources) < 2:
        raise ConfigError("side-by-side: give at least two reports as LABEL=FOLDER")
    reports = {}
    for label, folder in sources.items():
        path = Path(folder) / "claims.json"
        try:
            report = json.loads(path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"side-by-side: {label}={folder}: no claims.json there (a folder `adfloor report` "
                              "wrote)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"side-by-side: {path}: not a claims report: {err}") from None
        missing = [key for key in ("claims", "seeds", "hours") if not isinstance(report, dict) or key not in report]
        if missing:
            raise ConfigError(f"side-by-side: {path}: not a claims report (no {missing[0]!r})")
        reports[label] = {**report, "folder": Path(folder)}
    return reports


def _claims(reports: dict[str, dict]) -> dict[str, dict]:
    """Every claim of any report by id, in the order they first appear (each report's own entry comes later)."""
    claims = {}
    for report in reports.values():
        for entry in report["claims"]:
            claims.setdefault(entry["id"], entry)
    return claims


def _by_report(reports: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Each report's claims by id."""
    return {label: {e["id"]: e for e in report["claims"]} for label, report in reports.items()}


def _testable(entry: dict) -> bool:
    return entry.get("testable", True)


def _cell(entry: dict | None, differs: bool) -> str:
    if entry is None:
        return "—"
    low, high = entry["ci95"]
    verdict = "not testable" if not _testable(entry) else "**yes**" if entry["reproduced"] else "no"
    return f"{fmt(entry['mean'])} [{fmt(low)}, {fmt(high)}] {verdict}" + (" (†)" if differs else "")


def _definitions_differ(by_report: dict[str, dict[str, dict]], claim_id: str) -> set[str]:
    """The labels of the reports whose definition of the claim differs from the first report's that has it."""
    entries = {label: claims[claim_id] for label, claims in by_report.items() if claim_id in claims}
    first = next(iter(entries.values()))
    return {label for label, e in entries.items() if e.get("definition") != first.get("definition")}


def _short(code: str) -> str:
    """A commit as `git log --oneline` writes it, keeping "+changes" (an uncommitted tree)."""
    commit, plus, changes = code.partition("+")
    return commit[:7] + plus + changes


def _describe(label: str, report: dict, out: Path) -> str:
    link = Path(os.path.relpath(report["folder"] / "claims.md", out.parent)).as_posix()
    warm = report.get("warm_start_hours") or 0
    start = f"after {warm:g} simulated hours of warm start" if warm else "from cold models"
    failed = len(report.get("failed_cells") or {})
    return (f"- **{label}**: [{link}]({link}), {len(report['seeds'])} seeds × {report['hours']:g} simulated hours "
            f"{start}, scenario file `{report.get('scenario', '?')}` when it ran, code `{_short(report.get('code', '?'))}`; "
            f"{sum(e['reproduced'] for e in report['claims'])} of {len(report['claims'])} claims reproduced"
            + (f"; {failed} cell(s) failed, their claims left out" if failed else "") + ".")


EXPECT = {"increase": "> 0", "decrease": "< 0", "non_inferior": "> −margin"}


def side_by_side_markdown(reports: dict[str, dict], out: Path, figure_name: str) -> str:
    """The table: a row per claim, a column per report (mean [95 % interval] and the verdict; — where that report
    has no such claim)."""
    labels = list(reports)
    by_report = _by_report(reports)
    rows, marked = [], False
    for claim_id, entry in _claims(reports).items():
        differs = _definitions_differ(by_report, claim_id)
        marked |= bool(differs)
        expect = EXPECT.get(entry.get("expect"), entry.get("expect", "?")).replace("margin", f"{entry.get('margin', 0):g}")
        cells = " | ".join(_cell(by_report[label].get(claim_id), label in differs) for label in labels)
        rows.append(f"| `{claim_id}` | {table_cell(entry['effect'])} | {expect} | {cells} |")
    return "\n".join([
        "# Each claim in each report", "",
        "Written by `adfloor side-by-side` from these reports' claims.json (each report's own page has every claim's "
        "per-seed values, side measures and the reasons it may not reproduce):", "",
        *(_describe(label, report, out) for label, report in reports.items()), "",
        "Each cell: the claim's measured effect, mean over seeds [95 % t-interval], and whether it reproduced (the "
        "interval on the claimed side: the column \"claimed\"). —: the report has no such claim (not in its pass, or "
        "a cell of its arms failed)." + (" (†): that report defines the claim differently from the first report "
                                          "that has it (its measure, arms or rule); compare with care." if marked else ""),
        "", f"![each claim in each report]({figure_name})", "",
        "| claim | measured effect | claimed | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels),
        *rows]) + "\n"


def side_by_side_figure(reports: dict[str, dict]):
    """A panel per claim (their units differ): each report's mean and 95 % interval, green where it reproduced."""
    plt = pyplot()
    claims, labels, by_report = _claims(reports), list(reports), _by_report(reports)
    columns = 4
    rows = -(-len(claims) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 0.45 * len(labels) * rows + 1.4 * rows),
                                squeeze=False)
    for axis, (claim_id, first) in zip(axes.flat, claims.items()):
        for row, label in enumerate(labels):
            entry = by_report[label].get(claim_id)
            if entry is None:
                continue
            if not _testable(entry):
                axis.text(0, row, " not testable", color="grey", va="center", fontsize=8)
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
    figure.suptitle("Each claim in each report: mean effect and 95 % interval over seeds (green: reproduced, red: not, "
                    "grey: not testable; dotted: a non-inferiority margin; units in the table)")
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
    write_figure(side_by_side_figure(reports), figure_path)
    out.write_text(side_by_side_markdown(reports, out, figure_path.name))
    return out
