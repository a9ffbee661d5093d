"""The run summary figure: learning curve against the oracle, revenue and welfare, calibration by decile."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from simulator.loop.results import RunOutput  # noqa: E402
from simulator.measure.runs import calibration_table, learning_curve  # noqa: E402


def save(figure: plt.Figure, path: str | Path) -> Path:
    """Write `figure` to `path` and close it (a long session drawing many runs keeps no figures open)."""
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def summary_figure(output: RunOutput) -> plt.Figure:
    """A 1×4 figure; the caller saves or shows it."""
    curve = learning_curve(output)
    calibration = calibration_table(output)
    figure, (left, excess, middle, right) = plt.subplots(1, 4, figsize=(19, 4.2))
    left.plot(curve["sim_time"], curve["pv_logloss"], marker="o", label="model (progressive validation)")
    left.plot(curve["sim_time"], curve["oracle_logloss"], marker="o", label="oracle (true CTR)")
    left.set(xlabel="simulated hours", ylabel="log loss", title="Learning curve")
    left.legend()
    excess.plot(curve["sim_time"], curve["pv_logloss"] / curve["oracle_logloss"] - 1.0, marker="o", color="C3")
    excess.axhline(0.0, color="grey", linestyle="--")
    excess.set(xlabel="simulated hours", ylabel="PV / oracle log loss − 1", title="Excess log loss over the oracle")
    middle.plot(curve["sim_time"], curve["revenue"], label="revenue (clicks × price)")
    middle.plot(curve["sim_time"], curve["welfare"], label="welfare (value × true CTR)")
    middle.set(xlabel="simulated hours", ylabel="per window", title="Revenue and welfare")
    middle.legend()
    top = max(calibration["mean_pred"].max(), calibration["mean_label"].max(), 1e-6) * 1.1
    right.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect calibration")
    right.plot(calibration["mean_pred"], calibration["mean_label"], marker="o", label="observed click rate")
    right.plot(calibration["mean_pred"], calibration["mean_truth"], marker="x", label="true CTR")
    right.set(xlabel="mean pCTR in decile", ylabel="rate", title="Calibration by pCTR decile")
    right.legend()
    scenario = output.scenario
    figure.suptitle(f"adfloor run — seed {scenario.run.seed}, {scenario.run.duration_hours:g} simulated hours"
                    + (" (oracle model)" if scenario.model.oracle else ""))
    figure.tight_layout()
    return figure


def comparison_figure(comparison, windows: int = 24) -> plt.Figure:
    """Paired-replay differences over simulated time: mean over seeds with the seeds' range shaded."""
    a, b = comparison.names
    ticks = comparison.ticks.copy()
    edges = np.linspace(0, ticks["sim_time"].max() + 1e-9, windows + 1)
    ticks["window"] = np.digitize(ticks["sim_time"], edges[1:-1])
    per_seed = ticks.groupby(["seed", "window"]).agg(
        revenue_diff=("revenue_diff", "sum"), welfare_diff=("welfare_diff", "sum"),
        pv_a=(f"pv_logloss_{a}", "mean"), pv_b=(f"pv_logloss_{b}", "mean"),
        ad_set_churn=("ad_set_churn", "mean"), winner_churn=("winner_churn", "mean"),
        prediction_difference=("prediction_difference", "mean"))
    mean = per_seed.groupby("window").mean()
    low, high = per_seed.groupby("window").min(), per_seed.groupby("window").max()
    hours = (edges[mean.index] + edges[mean.index + 1]) / 2
    figure, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    for ax, column, title in ((axes[0], "revenue_diff", f"Revenue, {b} − {a}"), (axes[1], "welfare_diff", f"Welfare, {b} − {a}")):
        ax.plot(hours, mean[column], marker="o")
        ax.fill_between(hours, low[column], high[column], alpha=0.25, label="range over seeds")
        ax.axhline(0.0, color="grey", linestyle="--")
        ax.set(xlabel="simulated hours", ylabel="per window", title=title)
        ax.legend()
    axes[2].plot(hours, mean["pv_a"], marker="o", label=a)
    axes[2].plot(hours, mean["pv_b"], marker="o", label=b)
    axes[2].set(xlabel="simulated hours", ylabel="PV log loss", title="Progressive-validation log loss")
    axes[2].legend()
    for column, label in (("ad_set_churn", "ad-set churn"), ("winner_churn", "winner churn"),
                          ("prediction_difference", "prediction difference (PD)")):
        axes[3].plot(hours, mean[column], marker="o", label=label)
    axes[3].set(xlabel="simulated hours", ylabel="share / relative difference", title="Irreproducibility")
    axes[3].legend()
    figure.suptitle(f"Paired replays: {a} vs {b}, {len(comparison.seeds)} seed(s)")
    figure.tight_layout()
    return figure
