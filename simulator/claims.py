"""The claims report: which claims of the source papers the testbed reproduces, and what it measures that
production cannot (system irreproducibility over time, credit attribution, the feedback-loop failure).

`report()` runs every arm of `simulator.experiments` on ≥ 5 seeds (paired replays), then writes
claims.md + claims.json (one entry per claim: the claim, its source in shared/papers, the measured
effect with a 95 % t-interval over seeds, reproduced yes/no, and when not, the reason we believe),
models.md + models.json (the technique tables) and a figure per experiment.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.compare import interval, interval_half_widths
from simulator.experiments import (
    ARMS,
    BIAS_SLICE_FAMILIES,
    BATCH_SCALING,
    SCENARIO,
    SMELU_FRONTIER,
    TIME_BINS,
    Cell,
    fmt,
    fmt_interval,
    models_report,
    run_cells,
    study_rows,
)

Measure = Callable[[dict[str, dict]], float]  # one seed's results by arm → the effect on that seed


def _log_ratio(arm: str, base: str, metric: str) -> Measure:
    """log(arm / base): ratios of positive quantities (PD, churn, bias) are compared on a log scale, where a
    halving and a doubling weigh the same; exp(effect) is the ratio."""
    return lambda by: _log_of_ratio(by[arm][metric], by[base][metric])


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator without raising: nan for 0 / 0 (e.g. a churn of 0 in both arms), ±inf for x / 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(numerator) / np.float64(denominator))


def _log_of_ratio(numerator: float, denominator: float) -> float:
    """log(numerator / denominator); nan where the ratio is undefined (0 / 0), so the claim is not testable there."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.log(_ratio(numerator, denominator)))


def _percent_change(value: float, base: float) -> float:
    """100 × (value / base − 1); nan where base is 0."""
    return 100 * (_ratio(value, base) - 1)


def _difference(arm: str, base: str, metric: str) -> Measure:
    return lambda by: by[arm][metric] - by[base][metric]


def _mean_log_ratio(arm: str, base: str, metrics: tuple[str, ...]) -> Measure:
    return lambda by: float(np.mean([_log_of_ratio(by[arm][m], by[base][m]) for m in metrics]))


@dataclass(frozen=True)
class Claim:
    """A pre-registered test: its arms, effect, verdict rule (and, for non-inferiority, its control) are fixed
    here before any run; `measure` gives the effect per seed, the 95 % t-interval of its mean decides.

    expect "decrease": reproduced when the interval lies below 0; "increase": above 0; "non_inferior": its
    lower end is ≥ −margin, the same test fails for `control` (the setting without the technique), and
    technique − control (per seed) lies above 0 — a non-inferiority the control also shows cannot credit
    the technique. With `acts`, the switch must first be shown to act (that number's interval above 0),
    else there is no verdict. `side` are further per-seed numbers reported beside the effect.
    """

    id: str
    claim: str
    source: str
    effect: str
    arms: tuple[str, ...]
    measure: Measure
    expect: str
    margin: float = 0.0
    side: tuple[tuple[str, Measure], ...] = ()
    why_not: str = ""
    control: Measure | None = None
    control_label: str = ""
    acts: Measure | None = None  # the switch acts: a per-seed number whose interval must lie above 0 first
    acts_label: str = ""

    def __post_init__(self):
        if self.expect not in ("decrease", "increase", "non_inferior"):
            raise ValueError(f"claim {self.id}: expect {self.expect!r} is not allowed")
        if self.expect == "non_inferior" and self.control is None:
            raise ValueError(f"claim {self.id}: a non-inferiority claim needs a control that must fail the same test")

    def verdict(self, low: float, high: float) -> bool:
        if self.expect == "decrease":
            return bool(high < 0)
        if self.expect == "increase":
            return bool(low > 0)
        return bool(low >= -self.margin)

    def definition(self) -> dict:
        """What was registered before the run (saved beside every verdict)."""
        return {"arms": list(self.arms), "effect": self.effect, "expect": self.expect, "margin": self.margin,
                "control": self.control_label or None, "acts": self.acts_label or None,
                "side": [name for name, _ in self.side],
                "interval": "95 % t-interval of the mean over seeds (n − 1 degrees of freedom)"}


LOGLOSS_COST = "Δ PV log-loss gap (points of the oracle's log loss)"
CONJECTURE = "Conjecture (no experiment here shows it): "

SMELU_FRONTIER_WHY = (CONJECTURE + "SmeLU trades accuracy for reproducibility here as a lower learning rate does; "
                      "compare the two lines of the PD vs log-loss frontier (smelu_frontier.png). SmeLU's transition "
                      "region halves the gradient near 0, which under AdaGrad acts much like a smaller step, and the "
                      "paper's gain may need a deeper, normalised MLP (the deep-tower arms test that).")


def _pd_claim(id: str, claim: str, source: str, arm: str, base: str, arm_label: str, base_label: str,
              why_not: str = "") -> Claim:
    """A claim that `arm` lowers the closed-loop PD of `base`; the open-loop PD and the accuracy cost beside it."""
    return Claim(id, claim, source, f"log(PD({arm_label}) / PD({base_label})), closed loop", (base, arm),
                 _log_ratio(arm, base, "pd"), "decrease",
                 side=(("same, open loop", _log_ratio(arm, base, "pd_open_loop")),
                       (LOGLOSS_COST, _difference(arm, base, "pv_logloss_gap"))), why_not=why_not)


# The slice families the bias arm constrains: its headline counts every one of them (none left out afterwards).
BIAS_FAMILIES = BIAS_SLICE_FAMILIES
CHAOTIC_PD = (CONJECTURE + "the closed-loop PD of one pair is chaotic — the first auctions decide what each replica "
              "ever learns about — so five seeds may not resolve an effect of this size; see the per-seed values.")

CLAIMS = [
    _pd_claim("smelu_lowers_pd", "SmeLU lowers the prediction difference between retrained models (vs ReLU)",
              "smelu_reproducibility.md; factory_floor.md §5", "smelu", "baseline", "SmeLU", "ReLU",
              why_not=CONJECTURE + "with Flax's default embedding initialisation much of the PD may come from the "
                      "embeddings of rarely shown ids, which each replica keeps at its own random values whatever "
                      "the activation above them. The next claim tests that by shrinking the initialisation."),
    _pd_claim("smelu_lowers_pd_small_init", "SmeLU lowers PD — with a small embedding initialisation (std 0.01) in both",
              "smelu_reproducibility.md; factory_floor.md §5", "smelu_small_init", "small_init", "SmeLU", "ReLU",
              why_not=CHAOTIC_PD),
    _pd_claim("smelu_lowers_pd_same_init", "SmeLU lowers PD between identically initialised models that see the "
              "same data in different orders (the paper's toy-model setting)",
              "smelu_reproducibility.md §4, §6 (Fig. 4)", "smelu_order", "baseline_order", "SmeLU β = 0.5", "ReLU",
              why_not=SMELU_FRONTIER_WHY),
    _pd_claim("smelu_lowers_pd_at_equal_logloss", "SmeLU lowers PD at equal log loss (SmeLU at learning rate 0.1 "
              "reaches ReLU's log loss at 0.05), identical initialisation, training order as the nuisance",
              "smelu_reproducibility.md §6 (Fig. 4)", "smelu_order_lr0.1", "baseline_order", "SmeLU β = 0.5, lr 0.1",
              "ReLU, lr 0.05", why_not=SMELU_FRONTIER_WHY),
    _pd_claim("ensemble_lowers_pd", "A 3-component self-ensemble lowers PD against a single model of equal cost",
              "factory_floor.md §5 (equal-cost networks)", "ensemble3", "single_equal_cost", "ensemble of 3",
              "single, same parameters and FLOPs",
              why_not=CONJECTURE + "averaging three components removes their independent noise, but a single model "
                      "with three times the embedding width may average as much inside its own dot products."),
    Claim("anti_distillation_lowers_pd", "Anti-distillation lowers an ensemble's PD further", "factory_floor.md §5",
          "log(PD(ensemble + anti-distillation) / PD(ensemble)), closed loop; the weight was chosen on other seeds as "
          "one at which the components' spread measurably changes (ANTI_DISTILLATION_WEIGHT)",
          ("ensemble3", "ensemble3_anti"), _log_ratio("ensemble3_anti", "ensemble3", "pd"), "decrease",
          acts=_log_ratio("ensemble3_anti", "ensemble3", "component_spread"),
          acts_label="log ratio of the components' spread (std / mean of their pCTRs), with / without",
          side=(("same, open loop", _log_ratio("ensemble3_anti", "ensemble3", "pd_open_loop")),
                (LOGLOSS_COST, _difference("ensemble3_anti", "ensemble3", "pv_logloss_gap"))),
          why_not=CONJECTURE + "spreading the components apart (see the spread line) does not by itself make "
                  "retrains agree: each replica's components spread in their own directions."),
    Claim("bias_constraints_cut_slice_bias", "Bias constraints cut calibration bias on the constrained slices",
          "factory_floor.md §7, Table 3",
          "mean over every constrained family (" + ", ".join(BIAS_FAMILIES) + ") of log(max |bias| with / without)",
          ("baseline", "bias"),
          _mean_log_ratio("bias", "baseline", tuple(f"bias_{family}_maxabs" for family in BIAS_FAMILIES)), "decrease",
          side=(*((f"{family} slices: log ratio of max |bias|", _log_ratio("bias", "baseline", f"bias_{family}_maxabs"))
                  for family in BIAS_FAMILIES),
                (LOGLOSS_COST, _difference("bias", "baseline", "pv_logloss_gap"))),
          why_not=CONJECTURE + "a family whose slices hold few examples (formats hardly shown) gets noisy duals; "
                  "see each family's own line."),
    Claim("bias_constraints_cut_churn", "Bias constraints cut ads/query churn between retrains",
          "factory_floor.md §7, Table 3",
          "log(ads/query churn with / without bias constraints); ads/query churn = relative difference in the "
          "number of ads the two retrains show per query (Table 3's measure)",
          ("baseline", "bias"), _log_ratio("bias", "baseline", "ads_query_churn"), "decrease",
          side=(("log ad-set churn ratio (share of queries whose ad set differs; not the paper's measure)",
                 _log_ratio("bias", "baseline", "ad_set_churn")),
                ("log PD ratio", _log_ratio("bias", "baseline", "pd"))),
          why_not="Where every query fills all its slots neither retrain can show a different number of ads: the "
                  "churn is 0 in both arms and the ratio is undefined. Table 3's measure needs a world with a "
                  "variable ad load (binding reserves, a height budget)."),
    Claim("factorization_helps_rare_combinations",
          "τ(Q·U) generalises to (ad, treatment, position) combinations rarely or never shown",
          "factory_floor.md §6",
          "error |log(pCTR/true)| on never-shown (query context, ad, treatment, position) cells: unfactorized − "
          "factorized", ("baseline", "unfactorized"), _difference("unfactorized", "baseline", "error_never_shown"),
          "increase",
          side=(("same on rarely shown (1–9 times)", _difference("unfactorized", "baseline", "error_rarely_shown")),
                ("treatment-effect error: unfactorized − factorized",
                 _difference("unfactorized", "baseline", "treatment_effect_error")),
                ("scoring µs per candidate: unfactorized / factorized",
                 lambda by: by["unfactorized"]["scoring_us_per_candidate"] / by["baseline"]["scoring_us_per_candidate"]))),
    Claim("rank_loss_lifts_per_query_auc", "A RankNet rank loss lifts per-query AUC", "factory_floor.md §4.1.1",
          "per-query AUC: rank loss − log loss only", ("baseline", "rank"),
          _difference("rank", "baseline", "per_query_auc"), "increase",
          side=((LOGLOSS_COST, _difference("rank", "baseline", "pv_logloss_gap")),),
          why_not=CONJECTURE + "each query's candidates differ mostly in ad quality and slot, which the log loss "
                  "already ranks well; the paper's production model may rank within queries less well than it "
                  "calibrates across them."),
    Claim("cowclip_keeps_auc_at_large_batch",
          "CowClip with its scaling rule keeps AUC from batch 512 to 16K, in the paper's protocol (Adam, 6 epochs over "
          "a fixed dataset, a held-out test set)",
          "cowclip.md §3–4", "test AUC at 16K with CowClip − at 512, Adam, after 6 epochs over one run's logs "
          "(non-inferiority margin 0.001; the control, 16K without CowClip, must fail it)",
          ("offline_adam512", "offline_adam16k_cowclip", "offline_adam16k"),
          _difference("offline_adam16k_cowclip", "offline_adam512", "test_auc"), "non_inferior", margin=0.001,
          control=_difference("offline_adam16k", "offline_adam512", "test_auc"),
          control_label="Adam at 16K without CowClip or its rule − at 512",
          acts=lambda by: by["offline_adam16k_cowclip"]["clipped_share"],
          acts_label="share of touched embedding rows whose gradient the clip cuts (last batch, 16K with CowClip)",
          side=(("the testbed's own AdaGrad variant of the scaling rule (not the paper's): 16K with CowClip − 512",
                 _difference("offline_batch16k_cowclip", "offline_batch512", "test_auc")),
                ("the testbed's AdaGrad variant: the rule alone, no clipping − 512",
                 _difference("offline_batch16k_rule", "offline_batch512", "test_auc")),
                ("AdaGrad: neither − 512", _difference("offline_batch16k", "offline_batch512", "test_auc"))),
          why_not=CONJECTURE + "batch 16K leaves 32× fewer steps than 512; where the control holds its AUC too, the "
                  "steps are enough without CowClip and the test cannot credit it."),
    Claim("cowclip_keeps_auc_online",
          "CowClip with its scaling rule keeps AUC from batch 512 to 16K — online, single pass, in the closed loop",
          "cowclip.md §4 (which trains offline; this is the testbed's setting)",
          "AUC shortfall to the oracle over the last quarter of simulated time (oracle AUC − PV AUC on the same "
          "examples, comparable across closed loops), at 512 − at 16K with CowClip (non-inferiority margin 0.001; the "
          "control, 16K without CowClip, must fail it)",
          ("baseline", "batch16k_cowclip", "batch16k"),
          _difference("baseline", "batch16k_cowclip", "auc_shortfall_final"), "non_inferior", margin=0.001,
          control=_difference("baseline", "batch16k", "auc_shortfall_final"), control_label="16K without CowClip or rule",
          acts=lambda by: by["batch16k_cowclip"]["clipped_share"],
          acts_label="share of touched embedding rows whose gradient the clip cuts (last batch of the run)",
          side=(("last-quarter PV AUC, CowClip − 512 (each arm's own examples)",
                 _difference("batch16k_cowclip", "baseline", "pv_auc_final")),
                ("whole-run PV AUC (the learning curve included), CowClip − 512",
                 _difference("batch16k_cowclip", "baseline", "pv_auc")),
                (LOGLOSS_COST, _difference("batch16k_cowclip", "baseline", "pv_logloss_gap"))),
          why_not=CONJECTURE + "online, single pass, batch 16K leaves 32× fewer updates and each deployed snapshot "
                  "is older; no scaling rule can replace updates the stream does not have."),
    *(Claim(f"feedback_loop_amplifies_irreproducibility{suffix}",
            "Deployment amplifies irreproducibility: closed-loop PD exceeds the open-loop PD" + note,
            "factory_floor.md §5", f"log(PD closed loop / PD open loop), {arm}", (arm,),
            (lambda by, arm=arm: _log_of_ratio(by[arm]["pd"], by[arm]["pd_open_loop"])), "increase",
            side=(("ad-set churn closed − open",
                   lambda by, arm=arm: by[arm]["ad_set_churn"] - by[arm]["ad_set_churn_open_loop"]),),
            why_not=why_not)
      for suffix, note, arm, why_not in (
          ("", "", "baseline",
           CONJECTURE + "the replicas also disagree about ids neither has been trained on, with or without the loop; "
           "that shared noise can hide the loop's share. The next claim removes most of it."),
          ("_small_init", " — with a small embedding initialisation", "small_init", CHAOTIC_PD))),
]

# Theorems the implementations must satisfy on the world's own pages: checks, not claims (a failure is a bug).
SANITY_CHECKS = [
    ("vcg_revenue_at_most_gsp", "VCG revenue ≤ GSP revenue at the same truthful bids, page by page (separable CTRs)",
     lambda row: row["pages_vcg_above_gsp"] == 0),
    ("gsp_equilibrium_earns_vcg_revenue", "GSP at its lowest envy-free equilibrium bids earns VCG's revenue at "
     "truthful bids, page by page (Edelman, Ostrovsky & Schwarz 2007)",
     lambda row: row["pages_gsp_equilibrium_off_vcg"] == 0),
]


# The arms of each measurement section (beyond the claims).
IRREPRODUCIBILITY_ARMS = [a.name for a in ARMS.values() if a.replica]
ATTRIBUTION_ARMS = ["baseline", "unfactorized", "no_position", "tau_exp", "bias", "explore"]
FEEDBACK_ARMS = ["baseline", "bias", "explore"]
FIGURES = ("claims", "irreproducibility", "attribution", "feedback_loop", "techniques", "batch_scaling",
           "smelu_frontier")
# `adfloor report --quick`: the arms of the claims and of the attribution and feedback-loop sections; the
# technique tables' other arms (deep towers, frontiers, batch sizes) only in the full report
QUICK_ARMS = sorted(({arm for claim in CLAIMS for arm in claim.arms} | set(ATTRIBUTION_ARMS) | set(FEEDBACK_ARMS))
                    & set(ARMS))  # the studies' cells (auction, batch scaling) run anyway


def _interval_entry(values: list[float]) -> dict:
    mean, half = interval(values)
    return {"mean": mean, "ci95": [mean - half, mean + half], "per_seed": values}


def evaluate(results: list[dict], seeds: list[int]) -> list[dict]:
    """One entry per claim whose arms ran on every seed: the registered definition, per-seed effects, mean,
    95 % interval and verdict (with, for non-inferiority, the control's own test)."""
    by_seed = {seed: {r["arm"]: r for r in results if r["seed"] == seed} for seed in seeds}
    entries = []
    for claim in CLAIMS:
        if not all(arm in by_seed[s] for s in seeds for arm in claim.arms):
            continue
        values = [float(claim.measure(by_seed[s])) for s in seeds]
        effect = _interval_entry(values)
        low, high = effect["ci95"]
        testable = bool(np.all(np.isfinite(values)))  # the measure is defined on every seed
        reproduced = claim.verdict(low, high) if testable and np.isfinite(high - low) else False
        why_not = claim.why_not
        control, acts = None, None
        if claim.control is not None:
            control_values = [float(claim.control(by_seed[s])) for s in seeds]
            control = _interval_entry(control_values)
            control["passes"] = claim.verdict(*control["ci95"])
            control["label"] = claim.control_label
            gain = _interval_entry([v - c for v, c in zip(values, control_values)])  # technique − control, paired
            control["gain"] = gain
            testable = testable and bool(np.all(np.isfinite(control_values)))
            if reproduced and (control["passes"] or not gain["ci95"][0] > 0):
                reproduced = False
                why_not = (f"The control ({claim.control_label}) passes the same test, so passing it cannot credit "
                           "the technique." if control["passes"] else
                           "Technique − control does not lie above 0: the technique is not shown to beat its control.")
        if claim.acts is not None:
            acts = _interval_entry([float(claim.acts(by_seed[s])) for s in seeds])
            acts["label"] = claim.acts_label
            if not acts["ci95"][0] > 0:
                testable, reproduced = False, False
                why_not = f"The switch is not shown to act ({claim.acts_label}: its interval does not lie above 0)."
        reproduced = reproduced and testable
        side = {}
        for name, measure in claim.side:
            side_values = [float(measure(by_seed[s])) for s in seeds]
            side_mean, side_half = interval(side_values)
            side[name] = {"mean": side_mean, "ci95": side_half, "per_seed": side_values}
        entries.append({"id": claim.id, "claim": claim.claim, "source": claim.source, "effect": claim.effect,
                        "expect": claim.expect, "margin": claim.margin, "definition": claim.definition(),
                        "per_seed": values, "mean": effect["mean"], "ci95": [low, high], "reproduced": reproduced,
                        "testable": testable, "control": control, "acts": acts, "side": side,
                        "why_not": "" if reproduced else why_not})
    return entries


def sanity_checks(auctions: list[dict]) -> list[dict]:
    """Each theorem check on every seed's auction comparison: passed everywhere or not (a failure is a bug);
    `passed` is None where the comparison did not run."""
    return [{"id": check_id, "statement": statement,
             "passed": all(check(row) for row in auctions) if auctions else None,
             "seeds": [row["seed"] for row in auctions]} for check_id, statement, check in SANITY_CHECKS]


# ---- figures ---------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def claims_figure(entries: list[dict]):
    plt = _plt()
    figure, axis = plt.subplots(figsize=(9, 0.5 * len(entries) + 1.2))
    for row, entry in enumerate(entries):
        low, high = entry["ci95"]
        color = "C2" if entry["reproduced"] else "C3"
        axis.errorbar(entry["mean"], row, xerr=[[entry["mean"] - low], [high - entry["mean"]]], fmt="o", color=color,
                      capsize=4)
        axis.scatter(entry["per_seed"], [row] * len(entry["per_seed"]), s=10, color=color, alpha=0.4)
    axis.axvline(0, color="grey", linestyle="--")
    axis.set_yticks(range(len(entries)), [e["id"] for e in entries])
    axis.invert_yaxis()
    axis.set(xlabel="measured effect (see claims.md for each one's unit); green = reproduced",
             title="Claims: mean effect, 95 % interval over seeds, and each seed")
    figure.tight_layout()
    return figure


def _series_band(axis, values: np.ndarray, hours: np.ndarray, label: str, color: str) -> None:
    mean = np.nanmean(values, axis=0)
    if values.shape[0] > 1:
        half = interval_half_widths(values)
        axis.fill_between(hours, mean - half, mean + half, color=color, alpha=0.2)
    axis.plot(hours, mean, marker=".", color=color, label=label)


def irreproducibility_figure(results: list[dict], seeds: list[int], hours: float):
    plt = _plt()
    baseline = [r for r in results if r["arm"] == "baseline" and r["seed"] in seeds and "over_time" in r]
    centers = (np.arange(TIME_BINS) + 0.5) * hours / TIME_BINS
    figure, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    for axis, (metric, title) in zip(axes, (("pd", "Prediction difference"), ("ad_set_churn", "Ad-set churn"),
                                            ("revenue_gap", "|Revenue gap| / revenue"),
                                            ("welfare_gap", "|Welfare gap| / welfare"))):
        for suffix, label, color in (("", "closed loop (own logs)", "C3"), ("_open_loop", "open loop (shared logs)", "C0")):
            values = np.array([r[f"over_time{suffix}"][metric] for r in baseline], np.float64)
            _series_band(axis, values, centers, label, color)
        axis.set(xlabel="simulated hours", title=title)
        axis.legend()
    figure.suptitle(f"System irreproducibility over time: two baseline replicas differing only in the init seed "
                    f"(mean and 95 % band over {len(baseline)} seeds)")
    figure.tight_layout()
    return figure


def attribution_figure(results: list[dict], seeds: list[int]):
    plt = _plt()
    arms = [a for a in ATTRIBUTION_ARMS if any(r["arm"] == a for r in results)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 4.5))
    baseline_row = next(r for r in results if r["arm"] == "baseline")
    true_position, true_treatment = baseline_row["true_position_effect"], baseline_row["true_treatment_effect"]
    width = 0.8 / (len(arms) + 1)
    for axis, key, truth, labels in ((left, "learned_position_effect", true_position,
                                      [f"slot {p + 2}" for p in range(len(true_position))]),
                                     (right, "learned_treatment_effect", true_treatment,
                                      [baseline_row["treatment_names"][f] for f in baseline_row["treatment_effect_formats"]])):
        x = np.arange(len(truth))
        axis.bar(x, truth, width, color="black", label="true")
        for i, arm in enumerate(arms, 1):
            values = np.array([r[key] for r in results if r["arm"] == arm and r["seed"] in seeds])
            axis.bar(x + i * width, values.mean(axis=0), width, yerr=np.nan_to_num(interval_half_widths(values)),
                     label=arm, color=f"C{i - 1}")
        axis.set_xticks(x + width * len(arms) / 2, labels)
        axis.legend(fontsize=8)
    reference = baseline_row["treatment_names"][baseline_row["treatment_effect_reference"]]
    left.set(ylabel="CTR(slot) / CTR(top), in the format served",
             title="Learned vs true position effect (mean, 95 % t-interval over seeds)")
    right.set(ylabel=f"CTR(format) / CTR({reference}: served most), top slot", title="Learned vs true treatment effect")
    figure.tight_layout()
    return figure


def feedback_figure(results: list[dict], seeds: list[int]):
    plt = _plt()
    arms = [a for a in FEEDBACK_ARMS if any(r["arm"] == a for r in results)]
    metrics = ("underestimated_early_share", "stuck_underestimated", "stuck_overestimated")
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.2))
    width = 0.8 / len(arms)

    def mean_and_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and 95 % t half-width over seeds, ignoring seeds without such ads (nan): no bar where none had any."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(values, axis=0), np.nan_to_num(interval_half_widths(values))

    for i, arm in enumerate(arms):
        rows = [r for r in results if r["arm"] == arm and r["seed"] in seeds]
        mean, spread = mean_and_spread(np.array([[r[m] for m in metrics] for r in rows], np.float64))
        left.bar(np.arange(len(metrics)) + i * width, mean, width, yerr=spread, label=arm)
        mean, spread = mean_and_spread(np.array([[r["show_rate_underestimated"], r["show_rate_others"]] for r in rows],
                                                np.float64))
        right.bar(np.arange(2) + i * width, mean, width, yerr=spread, label=arm)
    left.set_xticks(np.arange(len(metrics)) + width * (len(arms) - 1) / 2,
                    ["underestimated early", "still under, late | under early", "still over, late | over early"])
    left.set(ylabel="share of tracked ads", title="Does an early underestimate persist? (mean, 95 % t-interval)")
    right.set_xticks(np.arange(2) + width * (len(arms) - 1) / 2, ["early-underestimated ads", "other ads"])
    right.set(ylabel="impressions per candidate appearance", title="How often they are shown (hours 6–18)")
    left.legend()
    figure.tight_layout()
    return figure


def techniques_figure(results: list[dict], seeds: list[int]):
    """Every arm's accuracy (log-loss gap, AUC) and, for replica arms, closed- and open-loop PD."""
    plt = _plt()
    arms = [a for a in ARMS if sum(r["arm"] == a and r["seed"] in seeds for r in results) == len(seeds)]
    figure, axes = plt.subplots(1, 3, figsize=(19, 0.32 * len(arms) + 1.8))

    def spread(arm: str, metric: str) -> tuple[float, float]:
        return interval([r.get(metric, float("nan")) for r in results if r["arm"] == arm and r["seed"] in seeds])

    for axis, metric, title in ((axes[0], "pv_logloss_gap", "PV log loss over the oracle's (last quarter)"),
                                (axes[1], "pv_auc", "PV AUC")):
        values = [spread(arm, metric) for arm in arms]
        means = [m for m, _ in values]
        axis.barh(range(len(arms)), means, xerr=[np.nan_to_num(h) for _, h in values], color="C0")
        axis.set(title=title)
        if metric == "pv_auc":  # differences of a few thousandths: do not start the bars at 0
            axis.set_xlim(min(means) - 0.01, max(means) + 0.01)
        axis.set_yticks(range(len(arms)), arms)
        axis.invert_yaxis()
    replicas = [a for a in arms if ARMS[a].replica]
    for offset, (metric, label) in enumerate((("pd", "closed loop"), ("pd_open_loop", "open loop"))):
        values = [spread(arm, metric) for arm in replicas]
        axes[2].barh(np.arange(len(replicas)) + 0.4 * offset, [m for m, _ in values], 0.4,
                     xerr=[np.nan_to_num(h) for _, h in values], label=label, color=f"C{3 - 3 * offset}")
    axes[2].set_yticks(np.arange(len(replicas)) + 0.2, replicas)
    axes[2].invert_yaxis()
    axes[2].set(title="Prediction difference between nuisance-seed replicas")
    axes[2].legend()
    figure.suptitle(f"Model techniques: mean and 95 % interval over {len(seeds)} seeds (paired replays)")
    figure.tight_layout()
    return figure


def batch_scaling_figure(results: list[dict], seeds: list[int]):
    """Test AUC after each epoch of the batch-scaling study, per setting: mean over seeds."""
    plt = _plt()
    studies = [r for r in results if r["arm"] == "batch_scaling" and r["seed"] in seeds]
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    for axis, optimizer in zip(axes, ("batch", "adam")):
        for index, name in enumerate(n for n in BATCH_SCALING if n.startswith(optimizer)):
            curves = np.array([r["settings"][name]["curve"]["test_auc"] for r in studies if name in r["settings"]])
            if curves.size:
                _series_band(axis, curves, np.arange(1, curves.shape[1] + 1), name, f"C{index}")
        axis.set(xlabel="epochs over the training logs", ylabel="test AUC (held-out last tenth)",
                 title="AdaGrad (the testbed's default)" if optimizer == "batch" else "Adam (the CowClip paper's)")
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.suptitle(f"Batch 512 vs 16K in CowClip's protocol: mean and 95 % interval over {len(studies)} seeds")
    figure.tight_layout()
    return figure


def pd_frontier_figure(results: list[dict], seeds: list[int], frontier: dict[str, list[str]] = SMELU_FRONTIER,
                       title: str = "SmeLU vs ReLU: PD against accuracy, same initialisation, training order as the "
                                    "nuisance (lower-left is better)"):
    """PD (closed and open loop) against the log-loss gap, one line per group of `frontier` (arms that ran)."""
    plt = _plt()
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    for index, (label, arms) in enumerate(frontier.items()):
        ran = [a for a in arms if sum(r["arm"] == a and r["seed"] in seeds for r in results) == len(seeds)]
        for axis, metric in zip(axes, ("pd", "pd_open_loop")):
            points = [[interval([r[m] for r in results if r["arm"] == a and r["seed"] in seeds])
                       for m in ("pv_logloss_gap", metric)] for a in ran]
            if points:
                (x, x_half), (y, y_half) = np.array(points).transpose(1, 2, 0)
                axis.errorbar(x, y, xerr=np.nan_to_num(x_half), yerr=np.nan_to_num(y_half), marker="o", capsize=3,
                              color=f"C{index}", label=label)
                for a, xi, yi in zip(ran, x, y):
                    axis.annotate(a, (xi, yi), fontsize=7, xytext=(4, 4), textcoords="offset points")
    for axis, panel in zip(axes, ("closed loop (own logs)", "open loop (shared logs: model irreproducibility)")):
        axis.set(xlabel="PV log loss over the oracle's (last quarter)", ylabel="prediction difference", title=panel)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # one legend under both panels, clear of the points
        figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06 * (1 + (len(labels) - 1) // 4) if handles else 0, 1, 1))
    return figure


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
    cells = [fmt_interval(*interval([_percent_change(by[("bias", s)][key], by[("baseline", s)][key]) for s in seeds]))
             + " %" for _, key in columns]
    return ["### Bias constraints in the form of Factory Floor's Table 3", "",
            "% change with bias constraints over the same system without them (negative is better; the paper: "
            "−15 %, −75 %, −43 % slice bias, +0.03 % loss, −85 % ads/query churn). Slice bias = max |Σ pCTR / Σ true "
            "CTR − 1| over the slices of each family.", "",
            "| " + " | ".join(name for name, _ in columns) + " |", "|---" * len(columns) + "|",
            "| " + " | ".join(cells) + " |", ""]


def _verdict_word(entry: dict, yes: str, no: str, untestable: str) -> str:
    return untestable if not entry.get("testable", True) else yes if entry["reproduced"] else no


def claims_markdown(entries: list[dict], results: list[dict], seeds: list[int], hours: float, command: str,
                    scenario_name: str = "default.toml") -> str:
    reproduced = sum(e["reproduced"] for e in entries)
    lines = ["# Claims of the papers, tested in the testbed", "",
             f"Produced by `{command}`: {len(seeds)} seeds ({', '.join(map(str, seeds))}), {hours:g} simulated hours "
             f"of `scenarios/{scenario_name}` per run; every arm of a seed sees the same queries and click noise "
             "(paired replays), so each effect is a paired difference or ratio per seed. Interval: 95 % t-interval "
             "of the mean over seeds. A claim is reproduced when the interval lies on the claimed side of 0 (or, for "
             "non-inferiority, above −margin).", "",
             f"**{reproduced} of {len(entries)} claims reproduced.** Figure: [claims.png](claims.png).", "",
             "| claim | source | measured effect | mean [95 % interval] | reproduced |", "|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e['claim']} (`{e['id']}`) | {e['source']} | {e['effect']} | {fmt(e['mean'])} "
                     f"[{fmt(e['ci95'][0])}, {fmt(e['ci95'][1])}] | {_verdict_word(e, '**yes**', '**no**', '**not testable here**')} |")
    checks = sanity_checks([r for r in results if r["arm"] == "auction"])
    lines += ["", "Sanity checks (theorems on the world's own pages, not claims; a failure is a bug): "
              + "; ".join(f"`{c['id']}` " + {True: "passed", False: "**FAILED**", None: "not run"}[c["passed"]]
                          for c in checks) + ".",
              *(f"- `{c['id']}`: {c['statement']}" for c in checks)]
    lines += ["", "![claims](claims.png)", "", "## Each claim", ""]
    for e in entries:
        lines += [f"### `{e['id']}` — {_verdict_word(e, 'reproduced', 'not reproduced', 'not testable here')}", "",
                  f"{e['claim']} ({e['source']}). Effect: {e['effect']}: {fmt(e['mean'])} "
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
        lines.append("")
    lines += ["## System irreproducibility", "",
              "Two systems identical but for the nuisance seed (`model.init_seed` 0 vs 1), on the same traffic. "
              "Closed loop: each trains on the logs its own auctions produced. Open loop (control): the replica "
              "trains on the primary's logs. Whole-run numbers (mean ± 95 % half-width over seeds):", ""]
    lines += _arm_table(results, seeds, IRREPRODUCIBILITY_ARMS,
                        ["pd", "pd_open_loop", "ad_set_churn", "ad_set_churn_open_loop", "winner_churn",
                         "revenue_gap", "welfare_gap", "pv_logloss_gap"])
    baseline = [r for r in results if r["arm"] == "baseline" and r["seed"] in seeds]
    if baseline and "pd" in baseline[0]:
        ratio = interval([_ratio(r["pd"], r["pd_open_loop"]) for r in baseline])
        lines += [f"Closed-/open-loop PD ratio of the baseline: {fmt_interval(*ratio)}. Over time:", "",
                  "![irreproducibility over time](irreproducibility.png)", ""]
    lines += _table3(results, seeds)
    lines += ["## Credit attribution", "",
              "Does the model blame the ad or the slot? Learned vs true CTR(slot)/CTR(top) in the format the auction "
              "would serve each probed ad, CTR(format)/CTR(format served most) at the top, from the probes of the "
              "second half; errors on (query context, ad, format, position) cells by how often they were shown; the "
              "rank correlation of learned vs true ad quality; and "
              "misspecified models: `unfactorized` (one tower, position and format as inputs), `no_position` (the "
              "position feature removed), `tau_exp` (τ = exp, which matches the world's product-form click model; "
              "the baseline's sigmoid does not).", ""]
    lines += _arm_table(results, seeds, ATTRIBUTION_ARMS,
                        ["position_effect_error", "treatment_effect_error", "quality_rank_correlation",
                         "error_never_shown", "error_often_shown", "pv_logloss_gap"])
    lines += ["Learned position effects (mean over seeds; true: "
              + ", ".join(f"{x:.2f}" for x in baseline[0]["true_position_effect"]) + "):", ""] if baseline else []
    for arm in ATTRIBUTION_ARMS:
        rows = [r for r in results if r["arm"] == arm and r["seed"] in seeds]
        if rows:
            lines.append(f"- {arm}: " + ", ".join(f"{x:.2f}" for x in np.mean([r["learned_position_effect"]
                                                                                  for r in rows], axis=0)))
    lines += ["", "![credit attribution](attribution.png)", "", "## The feedback-loop failure", "",
              "An ad whose pCTR is below its true CTR by more than a factor 1.5 early in the run (5–25 %) is shown "
              "less, so it may collect few clicks; is it still underestimated in the last quarter? Overestimated ads "
              "are the comparison: the hypothesis is that they are shown and their clicks correct them — the show "
              "rates and the stuck shares below test it. Exploration (`auction.exploration_rate` = "
              "0.1: a tenth of the auctions rank on pCTR × a lognormal factor) and bias constraints as remedies.", ""]
    lines += _arm_table(results, seeds, FEEDBACK_ARMS,
                        ["tracked_ads", "underestimated_early_share", "stuck_underestimated", "stuck_overestimated",
                         "show_rate_underestimated", "show_rate_others", "welfare", "revenue"])
    by = {(r["arm"], r["seed"]): r for r in results}
    for arm in FEEDBACK_ARMS[1:]:
        if all((arm, s) in by and ("baseline", s) in by for s in seeds):
            costs = [f"{metric} {fmt_interval(*interval([_percent_change(by[(arm, s)][metric], by[('baseline', s)][metric]) for s in seeds]))} %"
                     for metric in ("welfare", "revenue")]
            lines.append(f"- `{arm}` against the baseline (paired, same traffic): " + ", ".join(costs))
    lines += ["", "![feedback loop](feedback_loop.png)", "", "## What the numbers mean", ""]
    from simulator.experiments import METRIC_DOC

    lines += [f"- `{k}`: {v}" for k, v in METRIC_DOC.items()] + [""]
    return "\n".join(lines)


def load_report(folder: str | Path) -> dict:
    """A written report's claims.json (with the folder's figures listed), for the app and scripts."""
    from simulator.config import ConfigError

    path = Path(folder) / "claims.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no claims report here (run `adfloor report --quick`)")
    data = json.loads(path.read_text())
    data["figures"] = [str(Path(folder) / f"{name}.png") for name in FIGURES if (Path(folder) / f"{name}.png").is_file()]
    return data


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
