"""The claims report's figures: one per experiment, 95 % t-bands over seeds."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from simulator.experiments.study import Frontier, Study
from simulator.measure.intervals import interval, interval_half_widths
from simulator.measure.irreproducibility import TIME_BINS


# What each figure shows, in a sentence: the app's captions (a frontier figure is named "<frontier>_frontier").
FIGURE_CAPTIONS = {
    "claims": "Every claim's measured effect: the mean over seeds with its 95 % t-interval and each seed's value; "
              "green where the claim reproduced, red where it did not.",
    "irreproducibility": "System irreproducibility over simulated time: PD, churn and revenue gap between two "
                         "baseline replicas that differ only in a nuisance seed (mean and 95 % band over seeds).",
    "attribution": "Credit attribution: the position and treatment effects each model learned, against the world's "
                   "true effects, in the placements the auction serves.",
    "feedback_loop": "Feedback loops: whether ads the model underestimated early stay underestimated (they are "
                     "shown less, so their estimates are corrected less), against the other ads.",
    "techniques": "Each model technique against the baseline: PV log-loss gap, AUC, PD and churn, mean and 95 % "
                  "interval over seeds (paired replays).",
    "batch_scaling": "CowClip's protocol: test AUC per epoch at batch 512 and 16K, with and without CowClip's "
                     "scaling rule and clip (mean and 95 % interval over seeds).",
}


def figure_caption(name: str) -> str:
    """A figure's caption by its file stem; a PD frontier's from its name."""
    if name.endswith("_frontier"):
        return (f"{name.removesuffix('_frontier')}: prediction difference against the PV log-loss gap over a range "
                "of settings, one line per variant: which trades accuracy for reproducibility, and at what rate.")
    return FIGURE_CAPTIONS.get(name, name.replace("_", " "))


# ---- figures ---------------------------------------------------------------------------------------------------
def pyplot():
    """matplotlib.pyplot on the Agg backend (figures are written to files, never shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_figure(figure, path: str | Path) -> Path:
    """Write `figure` to `path` and close it: a session writing many reports keeps no figure open."""
    figure.savefig(path, dpi=100)
    pyplot().close(figure)
    return Path(path)


def claims_figure(entries: list[dict]):
    plt = pyplot()
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
    plt = pyplot()
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


def attribution_figure(results: list[dict], seeds: list[int], arms: list[str]):
    plt = pyplot()
    arms = [a for a in arms if any(r["arm"] == a for r in results)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 4.5))
    baseline_row = next(r for r in results if r["arm"] == "baseline")
    true_position, true_treatment = baseline_row["true_position_effect"], baseline_row["true_treatment_effect"]
    width = 0.8 / (len(arms) + 1)
    for axis, key, truth, labels in ((left, "learned_position_effect", true_position,
                                      [f"slot {p + 2}" for p in range(len(true_position))]),
                                     (right, "learned_treatment_effect", true_treatment,
                                      [baseline_row["treatment_names"][f] for f in baseline_row["treatment_effect_others"]])):
        x = np.arange(len(truth))
        axis.bar(x, truth, width, color="black", label="true")
        for i, arm in enumerate(arms, 1):
            values = np.array([r[key] for r in results if r["arm"] == arm and r["seed"] in seeds])
            axis.bar(x + i * width, values.mean(axis=0), width, yerr=np.nan_to_num(interval_half_widths(values)),
                     label=arm, color=f"C{i - 1}")
        axis.set_xticks(x + width * len(arms) / 2, labels)
        axis.legend(fontsize=8)
    reference = baseline_row["treatment_names"][baseline_row["treatment_effect_reference"]]
    left.set(ylabel="CTR(slot) / CTR(top), in the treatment served",
             title="Learned vs true position effect (mean, 95 % t-interval over seeds)")
    right.set(ylabel=f"CTR(treatment) / CTR({reference}: served most), top slot", title="Learned vs true treatment effect")
    figure.tight_layout()
    return figure


def feedback_figure(results: list[dict], seeds: list[int], arms: list[str]):
    plt = pyplot()
    arms = [a for a in arms if any(r["arm"] == a for r in results)]
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


def techniques_figure(study: Study, results: list[dict], seeds: list[int]):
    """Every arm's accuracy (log-loss gap, AUC) and, for replica arms, closed- and open-loop PD."""
    plt = pyplot()
    arms = [a for a in study.arms if sum(r["arm"] == a and r["seed"] in seeds for r in results) == len(seeds)]
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
    replicas = [a for a in arms if study.arms[a].replica]
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


def _optimizer(overrides: tuple[str, ...]) -> str:
    return next((o.partition("=")[2] for o in overrides if o.startswith("train.optimizer=")), "the scenario's")


def batch_scaling_figure(study: Study, results: list[dict], seeds: list[int]):
    """Test AUC after each epoch of the batch-scaling protocol, per setting (a panel per optimizer): mean over seeds."""
    plt = pyplot()
    studies = [r for r in results if r["arm"] == "batch_scaling" and r["seed"] in seeds]
    settings = study.batch_scaling.settings
    optimizers = list(dict.fromkeys(_optimizer(overrides) for overrides in settings.values()))
    figure, axes = plt.subplots(1, len(optimizers), figsize=(6.5 * len(optimizers), 4.2), sharey=True, squeeze=False)
    for axis, optimizer in zip(axes[0], optimizers):
        for index, name in enumerate(n for n, overrides in settings.items() if _optimizer(overrides) == optimizer):
            curves = np.array([r["settings"][name]["curve"]["test_auc"] for r in studies if name in r["settings"]])
            if curves.size:
                _series_band(axis, curves, np.arange(1, curves.shape[1] + 1), name, f"C{index}")
        axis.set(xlabel="epochs over the training logs", ylabel="test AUC (held-out last tenth)",
                 title=f"optimizer: {optimizer}")
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.suptitle(f"Batch sizes in CowClip's protocol: mean and 95 % interval over {len(studies)} seeds")
    figure.tight_layout()
    return figure


def pd_frontier_figure(results: list[dict], seeds: list[int], frontier: Frontier):
    """PD (closed and open loop) against the log-loss gap, one line per group of `frontier` (arms that ran)."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    for index, (label, arms) in enumerate(frontier.lines.items()):
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
    figure.suptitle(frontier.title)
    figure.tight_layout(rect=(0, 0.06 * (1 + (len(labels) - 1) // 4) if handles else 0, 1, 1))
    return figure
