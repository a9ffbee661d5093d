"""The run summary figure: learning curve against the oracle, revenue and welfare, calibration by decile."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from simulator.results import RunOutput, calibration_table, learning_curve  # noqa: E402


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
