"""Numbers and tables of one finished run: learning curve, calibration by decile, auction snapshots, and every number the reports read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.metrics import calibration_by_decile, per_query_auc
from models.optim import cowclip_clipped_share
from models.trainer import Examples
from simulator.loop.results import RunOutput
from simulator.measure.attribution import _attribution, feedback_loop


def learning_curve(output: RunOutput, bins: int = 24) -> pd.DataFrame:
    """PV and oracle log loss over simulated time, in `bins` equal windows (hours on the x axis)."""
    frame = output.metrics()
    edges = np.linspace(0, frame["sim_minute"].max() + 1e-9, bins + 1)
    window = np.digitize(frame["sim_minute"], edges[1:-1])
    grouped = frame.groupby(window)[["pv_loss_sum", "oracle_loss_sum", "trained_weight", "revenue", "welfare", "clicks"]].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({
            "sim_time": (edges[grouped.index] + edges[grouped.index + 1]) / 120.0,
            "pv_logloss": grouped["pv_loss_sum"] / grouped["trained_weight"].where(grouped["trained_weight"] > 0),
            "oracle_logloss": grouped["oracle_loss_sum"] / grouped["trained_weight"].where(grouped["trained_weight"] > 0),
            "revenue": grouped["revenue"],
            "welfare": grouped["welfare"],
            "clicks": grouped["clicks"],
        }).reset_index(drop=True)


def calibration_table(output: RunOutput) -> pd.DataFrame:
    """PV calibration by pCTR decile: mean prediction, mean click rate, mean true CTR, bias."""
    pv = output.pv_arrays()
    return pd.DataFrame(calibration_by_decile(pv["prediction"], pv["label"], pv["truth"], pv["weight"]))


def auction_snapshot(output: RunOutput, minute: float, queries: int = 5) -> pd.DataFrame:
    """The shown slates of the first `queries` queries of the tick at (or just before) `minute`: per shown ad its
    position (1 = top), treatment, ad id, pCTR, true CTR, price per click and click."""
    log = output.log.frame()
    if log.empty:
        return log
    ticks = np.unique(log["minute"].to_numpy())
    tick = ticks[max(int(np.searchsorted(ticks, minute, side="right")) - 1, 0)]
    rows = log[log["minute"] == tick]
    chosen = rows[rows["query"].isin(np.unique(rows["query"].to_numpy())[:queries])]
    names = list(output.scenario.world.treatments)
    return pd.DataFrame({
        "query": chosen["query"].to_numpy(), "position": chosen["position"].to_numpy() + 1,
        "treatment": [names[t] for t in chosen["treatment"].to_numpy()], "ad": chosen["ad_id"].to_numpy(),
        "pCTR": chosen["pctr"].to_numpy(), "true CTR": chosen["true_ctr"].to_numpy(),
        "price per click": chosen["price_per_click"].to_numpy(), "clicked": chosen["click"].to_numpy().astype(bool),
    }).sort_values(["query", "position"]).reset_index(drop=True)


# ---- the numbers of one run ------------------------------------------------------------------------------
def _slice_bias(values: np.ndarray, prediction: np.ndarray, truth: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    predicted = np.bincount(values, weight * prediction, minlength=size)
    true = np.bincount(values, weight * truth, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return predicted / true - 1.0


def run_metrics(output, page_examination: np.ndarray) -> dict:
    """Every number the reports use, from one run's output. `page_examination` is the world's [D, T, K]
    examination at each device's page positions; credit attribution and the feedback-loop study read the first
    device's pages (the probes and impressions of its queries), where position effects mean one thing."""
    s = output.summary()
    pv = output.pv_arrays()
    frame = output.log.frame()
    half = 30.0 * output.scenario.run.duration_hours  # "second half": of simulated time, not of the examples
    late = pv["minute"] >= half
    prediction, truth, weight = pv["prediction"][late], pv["truth"][late], pv["weight"][late]
    deciles = np.searchsorted(np.quantile(prediction, np.linspace(0, 1, 11)[1:-1]), prediction)
    metrics = {
        "pv_logloss": s["pv_logloss"], "pv_logloss_gap": s["final_window_gap"], "pv_auc": s["pv_auc"],
        "pv_auc_final": s["final_window_pv_auc"],
        "auc_shortfall_final": s["final_window_oracle_auc"] - s["final_window_pv_auc"],
        "per_query_auc": per_query_auc(pv["prediction"], pv["label"], pv["query"], pv["weight"]),
        "calibration_vs_truth": float(np.sum(weight * prediction) / np.sum(weight * truth) - 1),
        "bias_pctr_decile_maxabs": float(np.nanmax(np.abs(_slice_bias(deciles, prediction, truth, weight, 10)))),
        "trained_examples": s["trained_examples"], "training_seconds": output.timers.get("training", 0.0),
        "revenue": s["revenue"], "welfare": s["welfare"], "stopped": s["stopped"],
        "scoring_us_per_candidate": 1e6 * output.timers.get("scoring", 0.0)
        / max(output.queries * output.scenario.world.candidates_per_query, 1),
    }
    # per-position / per-treatment bias on shown ads (serving-time pCTR against the true CTR), second half
    shown = frame[frame["minute"] >= half]
    metrics["shown_calibration_vs_truth"] = float(shown["pctr"].sum() / shown["true_ctr"].sum() - 1)
    for column, size in (("position", output.scenario.world.num_positions), ("treatment", page_examination.shape[1])):
        bias = _slice_bias(shown[column].to_numpy().astype(np.int64), shown["pctr"].to_numpy(),
                           shown["true_ctr"].to_numpy(), np.ones(len(shown)), size)
        metrics[f"bias_{column}"] = bias.tolist()
        metrics[f"bias_{column}_maxabs"] = float(np.nanmax(np.abs(bias)))
    metrics["treatment_names"] = list(output.scenario.world.treatments)
    probes, examination = first_device(output.probe_arrays(), page_examination, output.scenario.world.page_lengths()[0])
    frame = frame[frame["device"] == 0]
    metrics.update(_attribution(probes, examination, frame, half, output.scenario.world))
    metrics.update(feedback_loop(probes, examination, frame, output.scenario))
    return metrics


def first_device(probes: dict, page_examination: np.ndarray, positions: int) -> tuple[dict, np.ndarray]:
    """The probes of the first device's queries, cut to its page's `positions`, and its examination [T, K₀]."""
    mine = probes["device"] == 0
    probes = {name: column[mine] for name, column in probes.items()}
    probes["pctr"] = probes["pctr"][..., :positions]
    return probes, page_examination[0, :, :positions]


SPREAD_EXAMPLES = 20_000  # the last logged examples the components' spread is measured on


def component_spread(trainer, logged: Examples) -> float:
    """Mean over the run's last logged examples of the ensemble components' coefficient of variation,
    std over components / mean of their pCTRs: how far apart the final components predict."""
    examples = logged.slice(max(logged.size - SPREAD_EXAMPLES, 0), logged.size)
    components = trainer.component_predict(examples).astype(np.float64)
    return float(np.mean(components.std(axis=1) / np.maximum(components.mean(axis=1), 1e-12)))


def clipped_share(trainer) -> float:
    """Share of the Q-embedding row-steps of all of a trainer's training that CowClip cut: whether, and how much,
    the clip binds (nan without CowClip)."""
    return cowclip_clipped_share(trainer.opt_state)
