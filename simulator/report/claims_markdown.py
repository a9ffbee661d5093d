"""The claims report's markdown: verdicts, arm tables and Table 3, and reading a written report back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from simulator.config import ConfigError
from simulator.experiments.claims import percent_change, ratio
from simulator.experiments.protocols import sanity_checks
from simulator.experiments.study import Study
from simulator.measure.definitions import METRIC_DOC
from simulator.measure.intervals import interval
from simulator.report.claims_figures import figure_caption
from simulator.report.tables import fmt, fmt_interval, table_cell, warm_start_note


# ---- the markdown ----------------------------------------------------------------------------------------------
def _arm_table(results: list[dict], seeds: list[int], arms: list[str], metrics: list[str]) -> list[str]:
    lines = ["| arm | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for arm in arms:
        rows = [r for r in results if r["arm"] == arm and r["seed"] in seeds]
        if len(rows) != len(seeds):
            continue
        cells = [fmt_interval(*interval([r.get(m, float("nan")) for r in rows])) for m in metrics]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines + [""]


def _table3(results: list[dict], seeds: list[int]) -> list[str]:
    """Factory Floor's Table 3 for our bias-constraint arm: per-slice bias, loss and churn as % change."""
    by = {(r["arm"], r["seed"]): r for r in results}
    if not all(("bias", s) in by and ("baseline", s) in by for s in seeds):
        return []
    columns = [("position-slice bias", "bias_position_maxabs"), ("treatment-slice bias", "bias_treatment_maxabs"),
               ("pCTR-decile bias", "bias_pctr_decile_maxabs"), ("PV log loss", "pv_logloss"),
               ("ads/query churn", "ads_query_churn"), ("PD", "pd"), ("ad-set churn (not in the paper)", "ad_set_churn")]
    nan = float("nan")  # a number an arm lacks (no replica: no churn) is a "–" cell
    cells = [fmt_interval(*interval([percent_change(by[("bias", s)].get(key, nan), by[("baseline", s)].get(key, nan))
                                     for s in seeds]))
             + " %" for _, key in columns]
    return ["### Bias constraints in the form of Factory Floor's Table 3", "",
            "% change with bias constraints over the same system without them (negative is better; the paper: "
            "−15 %, −75 %, −43 % slice bias, +0.03 % loss, −85 % ads/query churn). Slice bias = max |Σ pCTR / Σ true "
            "CTR − 1| over the slices of each family.", "",
            "| " + " | ".join(name for name, _ in columns) + " |", "|---" * len(columns) + "|",
            "| " + " | ".join(cells) + " |", ""]


def _irreproducibility_section(results: list[dict], seeds: list[int], arms: list[str]) -> list[str]:
    """Closed- and open-loop irreproducibility of the replica arms, and its figure."""
    lines = ["## System irreproducibility", "",
             "Two systems identical but for the nuisance seed (`model.init_seed` 0 vs 1; for `order` arms the "
             "training order, `train.shuffle_seed` 1 vs 2), on the same traffic. "
             "Closed loop: each trains on the logs its own auctions produced. Open loop (control): the replica "
             "trains on the primary's logs. Whole-run numbers (mean ± 95 % half-width over seeds):", ""]
    lines += _arm_table(results, seeds, arms,
                        ["pd", "pd_open_loop", "ad_set_churn", "ad_set_churn_open_loop", "winner_churn",
                         "revenue_gap", "welfare_gap", "pv_logloss_gap"])
    baseline = [r for r in results if r["arm"] == "baseline" and r["seed"] in seeds]
    if baseline and "pd" in baseline[0]:
        pd_ratio = interval([ratio(r["pd"], r["pd_open_loop"]) for r in baseline])
        lines += [f"Closed-/open-loop PD ratio of the baseline: {fmt_interval(*pd_ratio)}. Over time:", "",
                  "![irreproducibility over time](irreproducibility.png)", ""]
    return lines


def _attribution_section(results: list[dict], seeds: list[int], arms: list[str]) -> list[str]:
    """Learned against true position and treatment effects, and errors by exposure."""
    lines = ["## Credit attribution", "",
             "Does the model blame the ad or the slot? Learned vs true CTR(slot)/CTR(top) in the treatment the auction "
             "would serve each probed ad, CTR(treatment)/CTR(treatment served most) at the top, from the probes of the "
             "second half; errors on (query context, ad, treatment, position) cells by how often they were shown; the "
             "rank correlation of learned vs true ad quality; and "
             "misspecified models: `unfactorized` (one tower, position and treatment as inputs), `no_position` (the "
             "position feature removed), `tau_exp` (τ = exp, which matches the world's product-form click model; "
             "the baseline's sigmoid does not).", ""]
    lines += _arm_table(results, seeds, arms,
                        ["position_effect_error", "treatment_effect_error", "quality_rank_correlation",
                         "error_never_shown", "error_often_shown", "pv_logloss_gap"])
    baseline = [r for r in results if r["arm"] == "baseline" and r["seed"] in seeds]
    lines += ["Learned position effects (mean over seeds; true: "
              + ", ".join(f"{x:.2f}" for x in baseline[0]["true_position_effect"]) + "):", ""] if baseline else []
    for arm in arms:
        rows = [r for r in results if r["arm"] == arm and r["seed"] in seeds]
        if rows:
            lines.append(f"- {arm}: " + ", ".join(f"{x:.2f}" for x in np.mean([r["learned_position_effect"]
                                                                                  for r in rows], axis=0)))
    return lines + ["", "![credit attribution](attribution.png)", ""]


def _feedback_section(results: list[dict], seeds: list[int], arms: list[str]) -> list[str]:
    """Does an early underestimate persist, and what do the remedies cost?"""
    lines = ["## The feedback-loop failure", "",
             "An ad whose pCTR is below its true CTR by more than a factor 1.5 early in the run (5–25 %) is shown "
             "less, so it may collect few clicks; is it still underestimated in the last quarter? Overestimated ads "
             "are the comparison: the hypothesis is that they are shown and their clicks correct them — the show "
             "rates and the stuck shares below test it. Exploration (`auction.exploration_rate` = "
             "0.1: a tenth of the auctions rank on pCTR × a lognormal factor) and bias constraints as remedies.", ""]
    lines += _arm_table(results, seeds, arms,
                        ["tracked_ads", "underestimated_early_share", "stuck_underestimated", "stuck_overestimated",
                         "show_rate_underestimated", "show_rate_others", "welfare", "revenue"])
    by = {(r["arm"], r["seed"]): r for r in results}
    for arm in (a for a in arms if a != "baseline"):
        if all((arm, s) in by and ("baseline", s) in by for s in seeds):
            costs = [f"{metric} {fmt_interval(*interval([percent_change(by[(arm, s)][metric], by[('baseline', s)][metric]) for s in seeds]))} %"
                     for metric in ("welfare", "revenue")]
            lines.append(f"- `{arm}` against the baseline (paired, same traffic): " + ", ".join(costs))
    return lines + ["", "![feedback loop](feedback_loop.png)", ""]


def _verdict_word(entry: dict, yes: str, no: str, untestable: str) -> str:
    return untestable if not entry.get("testable", True) else yes if entry["reproduced"] else no


def claims_markdown(study: Study, entries: list[dict], results: list[dict], seeds: list[int], hours: float,
                    command: str, scenario: str) -> str:
    """The study's report: its claims' verdicts, then the measurement sections whose arms it has."""
    reproduced = sum(e["reproduced"] for e in entries)
    lines = [f"# {study.description or study.name}", "",
             f"Produced by `{command}`: {len(seeds)} seeds ({', '.join(map(str, seeds))}), {hours:g} simulated hours "
             f"of `{scenario}` per run{warm_start_note(study)}; every arm of a seed sees the same queries and click noise "
             "(paired replays), so each effect is a paired difference or ratio per seed. Interval: 95 % t-interval "
             "of the mean over seeds. A claim is reproduced when the interval lies on the claimed side of 0 (or, for "
             "non-inferiority, above −margin).", "",
             f"**{reproduced} of {len(entries)} claims reproduced.** Figure: [claims.png](claims.png)." if entries
             else "This study has no claims (or none whose arms ran on every seed); its tables are in models.md.", ""]
    if entries:
        lines += ["| claim | source | measured effect | mean [95 % interval] | reproduced |", "|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {table_cell(e['claim'])} (`{e['id']}`) | {table_cell(e['source'])} | {table_cell(e['effect'])} | {fmt(e['mean'])} "
                     f"[{fmt(e['ci95'][0])}, {fmt(e['ci95'][1])}] | {_verdict_word(e, '**yes**', '**no**', '**not testable here**')} |")
    checks = sanity_checks([r for r in results if r["arm"] == "auction"]) if study.auction else []
    if checks:
        lines += ["", "Sanity checks (theorems on the world's own pages, not claims; a failure is a bug): "
                  + "; ".join(f"`{c['id']}` " + {True: "passed", False: "**FAILED**", None: "not run"}[c["passed"]]
                              for c in checks) + ".",
                  *(f"- `{c['id']}`: {c['statement']}" for c in checks)]
    lines += ["", "![claims](claims.png)", "", "## Each claim", ""] if entries else []
    for e in entries:
        lines += [f"### `{e['id']}` — {_verdict_word(e, 'reproduced', 'not reproduced', 'not testable here')}", "",
                  claim_prose(e), ""]
    if study.replica_arms:
        lines += _irreproducibility_section(results, seeds, study.replica_arms)
    lines += _table3(results, seeds)
    if study.attribution_arms:
        lines += _attribution_section(results, seeds, list(study.attribution_arms))
    if study.feedback_arms:
        lines += _feedback_section(results, seeds, list(study.feedback_arms))
    lines += ["## What the numbers mean", ""]
    lines += [f"- `{k}`: {v}" for k, v in METRIC_DOC.items()] + [""]
    return "\n".join(lines)


VERDICT_COLOURS = {"reproduced": "green", "not reproduced": "red", "not testable here": "gray"}


def verdict_of(e: dict) -> str:
    """A claim entry's verdict in words: reproduced, not reproduced, or not testable here."""
    return _verdict_word(e, "reproduced", "not reproduced", "not testable here")


def claims_table(entries: list[dict], coloured: bool = False) -> str:
    """The claims as a markdown table, verdict first (in Streamlit's colours with `coloured`): verdict, claim,
    measured effect, mean [95 % interval], source."""
    def verdict(e: dict) -> str:
        word = verdict_of(e)
        return f":{VERDICT_COLOURS[word]}[**{word}**]" if coloured else f"**{word}**"
    lines = ["| verdict | claim | measured effect | mean [95 % interval] | source |", "|---|---|---|---|---|"]
    lines += [f"| {verdict(e)} | {e['claim']} (`{e['id']}`) | {e['effect']} | {fmt(e['mean'])} "
              f"[{fmt(e['ci95'][0])}, {fmt(e['ci95'][1])}] | {e['source']} |" for e in entries]
    return "\n".join(lines)


def claim_prose(e: dict) -> str:
    """One claim's paragraph in markdown: the claim, its effect with the interval and per-seed values, whether the
    switch acts, the control, the side numbers and, where it did not reproduce, the written reason."""
    lines = [f"{e['claim']} ({e['source']}). Effect: {e['effect']}: {fmt(e['mean'])} "
             f"[{fmt(e['ci95'][0])}, {fmt(e['ci95'][1])}]; per seed {', '.join(fmt(v) for v in e['per_seed'])}.", ""]
    if e.get("acts"):
        a = e["acts"]
        lines.append(f"- the switch acts? {a['label']}: {fmt(a['mean'])} [{fmt(a['ci95'][0])}, {fmt(a['ci95'][1])}]")
    if e.get("control"):
        c = e["control"]
        lines.append(f"- control, which must fail the same test — {c['label']}: {fmt(c['mean'])} "
                     f"[{fmt(c['ci95'][0])}, {fmt(c['ci95'][1])}]: {'passes (so no credit)' if c['passes'] else 'fails'}")
        g = c["gain"]
        lines.append(f"- technique − control, which must lie above 0: {fmt(g['mean'])} "
                     f"[{fmt(g['ci95'][0])}, {fmt(g['ci95'][1])}]")
    for name, value in e["side"].items():
        lines.append(f"- {name}: {fmt_interval(value['mean'], value['ci95'])} (per seed "
                     f"{', '.join(fmt(v) for v in value['per_seed'])})")
    if e["why_not"]:
        lines += ["", ("Why it cannot be tested here: " if not e.get("testable", True)
                       else "Why it may not reproduce here: ") + e["why_not"]]
    return "\n".join(lines).rstrip()


def load_report(folder: str | Path) -> dict:
    """A written report's claims.json (with the folder's figures listed), for the app and scripts."""
    path = Path(folder) / "claims.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no claims report here (run `adfloor report --quick`)")
    data = json.loads(path.read_text())
    data["figures"] = [str(Path(folder) / f"{name}.png") for name in data.get("figures", [])
                       if (Path(folder) / f"{name}.png").is_file()]
    data["captions"] = {path: figure_caption(Path(path).stem) for path in data["figures"]}
    return data
