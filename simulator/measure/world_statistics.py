"""The world's statistics beside its calibration targets (`adfloor world`): traffic only, scored by the oracle.

A world run is the loop with the true CTR as its model and every shown ad kept as a training example, so the
statistics describe what a learned model would see: CTR by device and position, ads per query and the top-ad mix,
format shares, the traffic's hourly shape, and the long tails of the sparse ids.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from simulator.config import Scenario
from simulator.loop.records import ColumnLog, PendingLog
from simulator.loop.results import RunOutput
from simulator.loop.simulation import Simulation
from simulator.world.click_models import best_cascade_slate
from simulator.world.kinds import WORLD_KINDS
from simulator.world.targets import TARGETS

RARE = 10  # an id seen fewer times than this in a window is rare (the minimum count of reczoo's Criteo_x4)
SLATE_POSITIONS = 4  # the cascade's best slates are enumerated over a page's top 4 positions at most


def world_run(scenario: Scenario, hours: float | None = None,
              progress: Callable | None = None) -> tuple[RunOutput, dict[str, float]]:
    """Run the scenario's world for `hours` (its duration when None) with the oracle as the model, keeping every
    shown ad as an example (no sampling); with the output, how the ads changed: churn and quality drift."""
    run = scenario.run if hours is None else replace(scenario.run, duration_hours=hours)
    data = replace(scenario.data, negative_keep_rate=1.0, low_position_keep_rate=1.0, low_pctr_keep_rate=1.0)
    scenario = replace(scenario, run=run, data=data, model=replace(scenario.model, oracle=True))
    shown = ShownIds(scenario.train.training_delay_minutes, scenario.run.records_memory_bytes)
    simulation = Simulation(scenario, progress=progress, keep_training_logs=shown)
    world = simulation.world
    quality, active = world.ad_quality.copy(), world.ad_active.copy()
    advertisers = getattr(world, "advertiser_active", np.ones(scenario.world.num_advertisers, bool)).copy()
    output = simulation.run()
    stayed = active & world.ad_active[:active.size]
    days = output.simulated_hours / 24.0
    change = world.ad_quality[:active.size][stayed] - quality[stayed]
    advertisers_now = getattr(world, "advertiser_active", advertisers)
    ads = dict(advertisers_at_start=int(advertisers.sum()), advertisers_left=int((advertisers & ~advertisers_now).sum()),
               advertisers_entered=int((~advertisers & advertisers_now).sum()),
               ads_live_at_start=int(active.sum()), ads_live_at_end=int(world.ad_active.sum()),
               new_ads_per_day=(world.num_ads - active.size) / days,
               left_per_day=(int(active.sum()) + world.num_ads - active.size - int(world.ad_active.sum())) / days,
               quality_drift_per_sqrt_day=float(change.std() / np.sqrt(days)) if change.size > 1 else float("nan"))
    if scenario.world.click_model == "cascade" and not scenario.world.trust:  # the best-slate search takes each ad's
        ads["separable_auction_loss"] = separable_auction_loss(output, world)  # attractiveness the same at every rank
    return output, ads


class ShownIds:
    """The world run's training logs as it keeps them: each shown ad's sparse ids, the day it was shown and its query
    number (what the id tails count), in a ColumnLog (on disk past `run.records_memory_mb`), not whole logs in memory."""

    def __init__(self, delay_minutes: float, memory_limit_bytes: int) -> None:
        self.delay_minutes = delay_minutes  # a log is available this long after its tick
        self.rows = ColumnLog(("raw", "day", "query"), memory_limit_bytes)

    def append(self, entry: PendingLog) -> None:
        examples = entry.examples
        day = np.full(examples.size, (entry.available_minute - self.delay_minutes) // 1440, np.int32)
        self.rows.append(raw=examples.raw, day=day, query=examples.query)


def separable_auction_loss(output: RunOutput, world, positions: int = SLATE_POSITIONS) -> float:
    """Under the cascade click model: 1 − the objective the auction's slates earned on the probed queries / the best
    slates' there, over each page's top `positions` positions (no ad below changes their cascade truth). The
    objective is the auction's own, Σ (bid − per-click reserve) × true CTR (cost semantics; the quality-weighted
    per-click reserve R / q with q the first treatment's CTR at the top). The auction ranks on separable
    per-position CTRs (the oracle's here), so this is what that assumption loses. `best_cascade_slate` searches a
    shortlist, so the best is a lower bound and so is the loss (it can come out slightly below 0)."""
    w, a = output.scenario.world, output.scenario.auction
    probes, log = output.probe_arrays(), pd.DataFrame(output.log.arrays(("query", "position", "ad_id", "true_ctr")))
    if not len(probes["query"]):
        return float("nan")
    shown = log[log["query"].isin(probes["query"]) & (log["position"] < positions)]
    by_query = {q: rows for q, rows in shown.groupby("query")}
    earned = best = 0.0
    for p, query in enumerate(probes["query"]):
        valid = probes["valid"][p]
        ads = probes["candidates"][p][valid]
        top = world.slot_of[probes["device"][p], 0]
        attractive = (probes["relevance"][p][valid][:, None] * probes["lift"][p][valid]
                      * world.examination[:, top][None, :])  # [n, T]
        reserve = world.advertiser_reserve[world.ad_advertiser[ads]]
        if a.reserve_kind == "quality_weighted":
            reserve = np.where(attractive[:, 0] > 0, reserve / np.maximum(attractive[:, 0], 1e-30), np.inf)
        value = world.ad_bid[ads] - reserve  # per click, net of the reserve
        if query in by_query:
            rows = by_query[query]
            net = dict(zip(ads.tolist(), value.tolist()))
            earned += float(sum(net[ad] * ctr for ad, ctr in zip(rows.ad_id.tolist(), rows.true_ctr.tolist())))
        eligible = value > 0
        if eligible.any():
            page = min(int(world.page_positions[probes["device"][p]]), positions)
            best += best_cascade_slate(value[eligible], attractive[eligible], page, w.cascade_continue,
                                       w.cascade_satisfaction)
    return 1.0 - earned / best if best > 0 else float("nan")


def id_tails(features: np.ndarray, day: np.ndarray, query: np.ndarray, fields: tuple[str, ...],
             page_fields: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per field (and pooled over fields), the share of distinct ids seen fewer than RARE times and once, within
    each day, averaged over the days (weighted by distinct ids).

    Ids are counted per event, as in logs of one ad per row (Criteo, Avazu): an ad's ids once per impression, a
    page's (`page_fields`: the query's and its context's) once per page view (`query` int[rows]: each row's),
    not once for each of the page's ads.
    """
    tails = {}
    counted = {name: [0, 0, 0] for name in (*fields, "pooled")}  # distinct, rare, once
    for d in np.unique(day):
        today = day == d
        rows, pages = features[today], query[today].astype(np.int64)
        for i, name in enumerate(fields):
            ids = rows[:, i]
            if name in page_fields:  # one (page view, id) pair per page
                ids = np.unique(pages << 32 | ids.astype(np.int64) & 0xFFFFFFFF) & 0xFFFFFFFF
            _, counts = np.unique(ids, return_counts=True)
            for key in (name, "pooled"):
                counted[key][0] += counts.size
                counted[key][1] += int((counts < RARE).sum())
                counted[key][2] += int((counts == 1).sum())
    for name, (distinct, rare, once) in counted.items():
        tails[name] = dict(distinct_per_day=distinct / max(len(np.unique(day)), 1), under_10=rare / max(distinct, 1),
                           once=once / max(distinct, 1))
    return tails


def statistics(output: RunOutput, ads: dict[str, float]) -> dict[str, Any]:
    """The world run's statistics (see the module docstring), with `world_run`'s account of the ads; keys named in
    `simulator.world.targets.TARGETS` are compared with their targets."""
    scenario = output.scenario
    w = scenario.world
    log = pd.DataFrame(output.log.arrays(("query", "position", "device", "click", "treatment")))
    queries = int(sum(row["queries"] for row in output.rows))
    top_positions = np.array(w.top_positions())
    top = log.position.to_numpy() < top_positions[log.device.to_numpy()]
    per_query = np.unique(log["query"], return_counts=True)[1]  # impressions of each query that showed ads
    top_per_query = np.unique(log["query"][top], return_counts=True)[1]
    ads_histogram = np.bincount(per_query, minlength=w.num_positions + 1).astype(float)
    ads_histogram[0] = queries - per_query.size
    top_mix = np.bincount(top_per_query, minlength=max(top_positions) + 1)[1:] / max(top_per_query.size, 1)
    ctr = log.groupby(["device", "position"]).click.agg(["mean", "size"])
    by_position = log.groupby("position").click.mean()
    minutes = np.array([row["sim_minute"] for row in output.rows]) + 60.0 * scenario.run.warm_start_hours  # absolute
    hours = minutes // 60 % 24
    per_hour = np.bincount(hours.astype(int), [row["queries"] for row in output.rows], minlength=24)
    ticks_per_hour = np.bincount(hours.astype(int), minlength=24)
    rate = np.where(ticks_per_hour > 0, per_hour / np.maximum(ticks_per_hour, 1), np.nan)
    day = (minutes // 1440).astype(int)
    per_day = np.bincount(day, [row["queries"] for row in output.rows]) if day.size else np.zeros(0)
    shown = output.training_logs.rows
    features = shown.column("raw") if len(shown) else np.zeros((0, 1), np.int32)
    kind = WORLD_KINDS[w.kind]
    tails = id_tails(features, shown.column("day"), shown.column("query"), kind.feature_fields, kind.page_fields)
    stats = {
        "queries": queries,
        "impressions": int(len(log)),
        "ctr": float(log.click.mean()) if len(log) else float("nan"),
        "ctr_position_2_over_1": float(by_position.get(1, np.nan) / by_position.get(0, np.nan)),
        "ads_per_query": float(len(log) / max(queries, 1)),
        "no_ads_share": float(ads_histogram[0] / max(queries, 1)),
        "ads_per_query_shares": (ads_histogram / max(queries, 1)).tolist(),
        "ids_under_10_pooled": tails["pooled"]["under_10"],
        "ids_once_pooled": tails["pooled"]["once"],
        "id_tails": tails,
        "ctr_by_device_position": {f"{w.devices[d]} {p + 1}": dict(ctr=float(r["mean"]), impressions=int(r["size"]))
                                   for (d, p), r in ctr.iterrows()},
        "format_shares": {name: float((log.treatment == t).mean()) for t, name in enumerate(w.treatments)},
        "device_shares_of_impressions": {name: float((log.device == d).mean()) for d, name in enumerate(w.devices)},
        "queries_per_tick_by_hour": [None if np.isnan(x) else float(x) for x in rate],
        "queries_by_day": per_day.tolist(),
        "diurnal_peak_over_trough": float(np.nanmax(rate) / np.nanmin(rate)) if np.nanmin(rate) > 0 else float("nan"),
        "window_hours": output.simulated_hours,
        "ads": ads,
    }
    stats.update({f"top_ads_{n}": float(share) for n, share in enumerate(top_mix, start=1)})
    return stats


def target_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: the statistic, what the world gives, the target, its band, whether it lands inside, the
    source."""
    rows = []
    for t in TARGETS:
        value = stats.get(t.statistic, float("nan"))
        inside = None if t.lo is None else bool(t.lo <= value <= t.hi)
        band = "—" if t.lo is None else f"{t.lo:g} – {t.hi:g}"
        rows.append(dict(statistic=t.statistic, world=value, target=t.value, band=band, inside=inside, source=t.source))
    return rows
