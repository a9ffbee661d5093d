"""Paired replays: two systems on identical traffic and user noise, compared per tick and in total over seeds.

With the same `run.seed`, two scenarios draw the same queries, candidates and click uniforms (the world's
streams do not depend on the model or the auction), so every difference between them is the effect of
what differs — common random numbers. Ads/query churn is Factory Floor Table 3's: the relative difference
in the number of ads shown per query; ad-set churn is the share of queries whose set of shown ads differs
(our measure, never reported as the paper's); winner churn the share whose top ad differs; prediction
difference PD = mean 2|ŷa − ŷb| / (ŷa + ŷb) per example over a fixed set: every valid (candidate,
treatment, position) of the probed queries, or A's logged impressions on them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.loop.results import RunOutput

# Per-tick metrics compared between the two systems (sums over the tick).
TICK_METRICS = ("revenue", "welfare", "clicks", "impressions")


def shown_slates(output: RunOutput) -> np.ndarray:
    """int64[queries, K]: the ad shown at each position of each query (−1 = empty)."""
    log = output.log
    slates = np.full((output.queries, output.scenario.world.num_positions), -1, np.int64)
    slates[log.column("query").astype(np.int64), log.column("position").astype(np.int64)] = log.column("ad_id")
    return slates


def churn(a: RunOutput, b: RunOutput) -> tuple[np.ndarray, np.ndarray]:
    """Per query of the paired runs: (shown ad sets differ, top ads differ), both bool[queries]."""
    slates_a, slates_b = shown_slates(a), shown_slates(b)
    if slates_a.shape != slates_b.shape:
        raise ValueError("churn: the two runs did not see the same traffic (different query counts)")
    sets_differ = np.any(np.sort(slates_a, axis=1) != np.sort(slates_b, axis=1), axis=1)
    return sets_differ, slates_a[:, 0] != slates_b[:, 0]


def ads_per_query_difference(a: RunOutput, b: RunOutput) -> float:
    """Mean |ads shown by A − ads shown by B| per query, relative to A's mean ads per query (Factory Floor
    Table 3's "ads/query churn": how much the number of ads shown differs between two retrains)."""
    count_a, count_b = (np.sum(shown_slates(x) >= 0, axis=1) for x in (a, b))
    return float(np.abs(count_a - count_b).mean() / max(count_a.mean(), 1e-12))


# The example sets PD is averaged over. The first two are fixed before either arm runs (every valid probe
# cell) or by the primary alone (its logged impressions), as in SmeLU eq. 2 and Factory Floor §5;
# "shown_either" depends on both arms' auctions and is kept under its own name only.
PD_SETS = ("probe_cells", "primary_impressions", "shown_either")


def _shown_cells(output: RunOutput, probes: dict) -> np.ndarray:
    """bool[P, N, T, K]: the probed queries' (candidate, treatment, position) cells that `output` showed."""
    shown = np.zeros(probes["pctr"].shape, bool)
    log = output.log
    query = log.column("query").astype(np.int64)
    row = np.searchsorted(probes["query"], query)  # probed queries are in increasing order
    probed = (row < len(probes["query"])) & (probes["query"][np.minimum(row, len(probes["query"]) - 1)] == query)
    row = row[probed]
    candidate = np.argmax(probes["candidates"][row] == log.column("ad_id")[probed][:, None], axis=1)
    shown[row, candidate, log.column("treatment")[probed].astype(np.int64),
          log.column("position")[probed].astype(np.int64)] = True
    return shown


def prediction_difference(a: RunOutput, b: RunOutput, over: str = "probe_cells"
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per probed query with examples in the set: (query number, Σ 2|ŷa − ŷb| / (ŷa + ŷb), number of examples).

    PD is a mean per example: Σ of the sums / Σ of the counts (`mean_prediction_difference`). `over` picks
    the examples (PD_SETS): every valid (candidate, treatment, position) cell of the probed queries, the
    placements A showed there (A's logged impressions, scored by both models), or those either showed.
    """
    if over not in PD_SETS:
        raise ValueError(f"prediction difference: over={over!r} is not allowed; allowed: {', '.join(PD_SETS)}")
    pa, pb = a.probe_arrays(), b.probe_arrays()
    if not np.array_equal(pa["query"], pb["query"]):
        raise ValueError("prediction difference: the two runs probed different queries")
    if pa["query"].size == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    if over == "probe_cells":  # every valid candidate × treatment × position of the query's page
        page = np.array(a.scenario.world.page_lengths())[pa["device"].astype(np.int64)]
        on_page = np.arange(pa["pctr"].shape[3])[None, :] < page[:, None]
        cells = np.broadcast_to(pa["valid"][:, :, None, None] & on_page[:, None, None, :], pa["pctr"].shape)
    elif over == "primary_impressions":
        cells = _shown_cells(a, pa)
    else:
        cells = _shown_cells(a, pa) | _shown_cells(b, pa)
    ya, yb = pa["pctr"].astype(np.float64), pb["pctr"].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(cells & (ya + yb > 0), 2 * np.abs(ya - yb) / (ya + yb), 0.0)
    count = cells.sum(axis=(1, 2, 3))
    used = count > 0
    return pa["query"].astype(np.int64)[used], relative.sum(axis=(1, 2, 3))[used], count[used]


def mean_prediction_difference(a: RunOutput, b: RunOutput, over: str = "probe_cells") -> float:
    """PD averaged over the examples of the set `over` (nan when it is empty)."""
    _, total, count = prediction_difference(a, b, over)
    return float(total.sum() / count.sum()) if count.sum() else float("nan")


def _tick_of_query(output: RunOutput) -> np.ndarray:
    """For each query number, the index of its tick."""
    return np.repeat(np.arange(len(output.rows)), [row["queries"] for row in output.rows])


def paired_ticks(a: RunOutput, b: RunOutput, names: tuple[str, str]) -> pd.DataFrame:
    """One row per tick: both systems' metrics, their difference (b − a), churn and PD."""
    ma, mb = a.metrics(), b.metrics()
    frame = pd.DataFrame({"sim_time": ma["sim_time"], "queries": ma["queries"]})
    for metric in (*TICK_METRICS, "pv_logloss", "oracle_logloss"):
        frame[f"{metric}_{names[0]}"] = ma[metric]
        frame[f"{metric}_{names[1]}"] = mb[metric]
        frame[f"{metric}_diff"] = mb[metric] - ma[metric]
    tick = _tick_of_query(a)
    sets_differ, winner_differs = churn(a, b)
    count = np.maximum(np.bincount(tick, minlength=len(frame)), 1)
    frame["ad_set_churn"] = np.bincount(tick, sets_differ, minlength=len(frame)) / count
    frame["winner_churn"] = np.bincount(tick, winner_differs, minlength=len(frame)) / count
    for over, column in (("probe_cells", "prediction_difference"),
                         ("primary_impressions", "prediction_difference_impressions")):
        probed, total, examples = prediction_difference(a, b, over)
        probe_tick = tick[probed]
        count = np.bincount(probe_tick, examples, minlength=len(frame))
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[column] = np.bincount(probe_tick, total, minlength=len(frame)) / count
        frame[f"{column}_examples"] = count
    return frame


def paired_totals(a: RunOutput, b: RunOutput, names: tuple[str, str]) -> dict[str, float]:
    """Whole-run numbers of one seed: each system's totals, their difference, churn and PD."""
    sa, sb = a.summary(), b.summary()
    totals = {}
    for metric in ("revenue", "welfare", "clicks", "pv_logloss", "calibration_overall", "pv_auc"):
        totals[f"{metric}_{names[0]}"] = sa[metric]
        totals[f"{metric}_{names[1]}"] = sb[metric]
        totals[f"{metric}_diff"] = sb[metric] - sa[metric]
    sets_differ, winner_differs = churn(a, b)
    totals["ad_set_churn"] = float(sets_differ.mean())
    totals["ads_query_churn"] = ads_per_query_difference(a, b)
    totals["winner_churn"] = float(winner_differs.mean())
    totals["prediction_difference"] = mean_prediction_difference(a, b, "probe_cells")
    totals["prediction_difference_impressions"] = mean_prediction_difference(a, b, "primary_impressions")
    return totals

