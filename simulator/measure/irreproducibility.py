"""System irreproducibility over time: a primary, its nuisance-seed replica and the open-loop control."""

from __future__ import annotations

import numpy as np

from simulator.measure.paired import (
    ads_per_query_difference,
    churn,
    mean_prediction_difference,
    paired_ticks,
)

TIME_BINS = 24  # irreproducibility over time: the run split into this many equal bins (hours of a day-long run)


def _bin_mean(values: np.ndarray, which: np.ndarray, bins: int, weight: np.ndarray | None = None) -> list[float]:
    """Per time bin, the (weighted) mean of the ticks' values; ticks without a value (nan PD) are left out."""
    present = np.isfinite(values)
    weight = np.ones_like(values) if weight is None else np.asarray(weight, np.float64)
    total = np.bincount(which[present], values[present] * weight[present], minlength=bins)
    return (total / np.maximum(np.bincount(which[present], weight[present], minlength=bins), 1e-12)).tolist()


def _bin_gap(a: np.ndarray, b: np.ndarray, which: np.ndarray, bins: int) -> list[float]:
    """Per time bin, |Σ b − Σ a| / Σ a."""
    total_a, total_b = np.bincount(which, a, minlength=bins), np.bincount(which, b, minlength=bins)
    return (np.abs(total_b - total_a) / np.maximum(total_a, 1e-12)).tolist()


def irreproducibility(primary, replica, open_loop, bins: int = TIME_BINS) -> dict:
    """Whole-run and over-time PD, churn and revenue/welfare gaps of a replica pair, closed loop and open loop
    (and the replica's log-loss gap)."""
    a = primary.summary()  # one summary per run: each computes AUC and calibration over every PV example
    result = {}
    duration = primary.scenario.run.duration_hours
    for suffix, other in (("", replica), ("_open_loop", open_loop)):
        sets_differ, winner_differs = churn(primary, other)
        b = other.summary()
        if other is replica:
            result["replica_pv_logloss_gap"] = b["final_window_gap"]
        result.update({f"pd{suffix}": mean_prediction_difference(primary, other, "probe_cells"),
                       f"pd_impressions{suffix}": mean_prediction_difference(primary, other, "primary_impressions"),
                       f"pd_shown_either{suffix}": mean_prediction_difference(primary, other, "shown_either"),
                       f"ad_set_churn{suffix}": float(sets_differ.mean()),
                       f"winner_churn{suffix}": float(winner_differs.mean()),
                       f"ads_query_churn{suffix}": ads_per_query_difference(primary, other),
                       f"revenue_gap{suffix}": abs(b["revenue"] - a["revenue"]) / a["revenue"],
                       f"welfare_gap{suffix}": abs(b["welfare"] - a["welfare"]) / a["welfare"]})
        ticks = paired_ticks(primary, other, ("a", "b"))
        which = np.clip((ticks["sim_time"].to_numpy() / duration * bins).astype(int), 0, bins - 1)
        result[f"over_time{suffix}"] = {
            "pd": _bin_mean(ticks["prediction_difference"].to_numpy(np.float64), which, bins,
                            ticks["prediction_difference_examples"].to_numpy()),  # per example, as the total
            **{metric: _bin_mean(ticks[metric].to_numpy(np.float64), which, bins, ticks["queries"].to_numpy())
               for metric in ("ad_set_churn", "winner_churn")},
            **{f"{metric}_gap": _bin_gap(ticks[f"{metric}_a"].to_numpy(), ticks[f"{metric}_b"].to_numpy(), which, bins)
               for metric in ("revenue", "welfare")}}
    return result
