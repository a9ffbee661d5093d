"""The papers' claims as pre-registered tests: each claim's source, arms, per-seed measure and verdict rule,
`evaluate` (a 95 % t-interval over seeds, reproduced yes / no / not testable), and the sanity checks.

`report.claims_report.report()` runs the cells on ≥ 5 seeds (paired replays) and writes claims.md +
claims.json (one entry per claim: the claim, its source in shared/papers, the measured effect, the
verdict, and when not reproduced, the reason we believe), the technique tables and a figure per experiment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.experiments.arms import ARMS, BIAS_SLICE_FAMILIES
from simulator.measure.intervals import interval

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

