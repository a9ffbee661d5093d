"""Protocols: cells that are not arms. VCG against GSP on the world's own pages (with the theorems it must
satisfy as sanity checks), and CowClip's batch-scaling protocol over one run's logs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from auction import gsp_batch, gsp_lowest_envy_free_bids, solve_batch
from models.metrics import auc, log_loss, per_query_auc
from models.trainer import Examples
from simulator import config
from simulator.loop.builders import build_trainer
from simulator.loop.simulation import Simulation
from simulator.measure.runs import clipped_share
from simulator.world.kinds import make_world


def auction_revenue(seed: int, scenario_path: str | Path | dict, ticks: int = 60) -> dict:
    """VCG against GSP on the world's own queries (the text treatment, true CTRs, no reserve): GSP at the same truthful
    bids, and GSP at its lowest envy-free equilibrium bids B*.

    The click model is separable here (CTR = relevance × position effect), where two theorems hold page by
    page (Edelman, Ostrovsky & Schwarz 2007): VCG revenue ≤ GSP revenue at the same bids, and GSP at B*
    earns exactly VCG's revenue. They are sanity checks of both implementations, not claims.
    """

    scenario = config.load(scenario_path, seed=seed)
    world = make_world(scenario, seed)
    effects = world.page_examination[0, 0, :world.page_positions[0]].astype(np.float64)  # the first device's page
    vcg_revenue, gsp_revenue, equilibrium_revenue = [], [], []
    for minute in range(ticks):
        batch = world.queries(float(minute), 1.0)
        quality = np.where(batch.valid, batch.relevance, 0.0)
        bid = np.where(batch.valid, batch.bid, 0.0)
        no_reserve = np.zeros_like(bid)
        ctr = (quality[:, :, None, None] * effects[None, None, None, :]).astype(np.float32)
        vcg_revenue.append(solve_batch(ctr, bid.astype(np.float32), no_reserve.astype(np.float32)).payment.sum(axis=1))
        gsp_revenue.append(gsp_batch(quality, bid, no_reserve, effects).payment.sum(axis=1))
        equilibrium = gsp_lowest_envy_free_bids(quality, bid, effects)
        equilibrium_revenue.append(gsp_batch(quality, equilibrium, no_reserve, effects).payment.sum(axis=1))
    vcg, gsp = np.concatenate(vcg_revenue).astype(np.float64), np.concatenate(gsp_revenue)
    equilibrium = np.concatenate(equilibrium_revenue)
    return {"arm": "auction", "seed": seed, "pages": int(vcg.size), "vcg_revenue": float(vcg.sum()),
            "gsp_revenue": float(gsp.sum()), "vcg_over_gsp": float(vcg.sum() / gsp.sum() - 1),
            "pages_vcg_above_gsp": int(np.sum(vcg > gsp * (1 + 1e-5) + 1e-7)),
            "gsp_equilibrium_revenue": float(equilibrium.sum()),
            "gsp_equilibrium_over_vcg": float(equilibrium.sum() / vcg.sum() - 1),
            "pages_gsp_equilibrium_off_vcg": int(np.sum(np.abs(equilibrium - vcg) > 1e-4 * np.maximum(vcg, 1e-3)))}


# Theorems the implementations must satisfy on the world's own pages: checks, not claims (a failure is a bug).
SANITY_CHECKS = [
    ("vcg_revenue_at_most_gsp", "VCG revenue ≤ GSP revenue at the same truthful bids, page by page (separable CTRs)",
     lambda row: row["pages_vcg_above_gsp"] == 0),
    ("gsp_equilibrium_earns_vcg_revenue", "GSP at its lowest envy-free equilibrium bids earns VCG's revenue at "
     "truthful bids, page by page (Edelman, Ostrovsky & Schwarz 2007)",
     lambda row: row["pages_gsp_equilibrium_off_vcg"] == 0),
]


def sanity_checks(auctions: list[dict]) -> list[dict]:
    """Each theorem check on every seed's auction comparison: passed everywhere or not (a failure is a bug);
    `passed` is None where the comparison did not run."""
    return [{"id": check_id, "statement": statement,
             "passed": all(check(row) for row in auctions) if auctions else None,
             "seeds": [row["seed"] for row in auctions]} for check_id, statement, check in SANITY_CHECKS]


# CowClip's own protocol (§4.1): every setting trains for several epochs on one logged dataset and is scored
# on the held-out last part; arms instead train online, single pass, in their own closed loops.
PROTOCOL_CELLS = ("auction", "batch_scaling")  # the cells of a study that are not arms
OFFLINE = "offline_"  # the batch-scaling protocol's settings, as rows of the tables and claims ("offline_<setting>")
TEST_SHARE = 0.1  # the last tenth of the logs (in time) is the test set


def offline_rows(results: list[dict]) -> list[dict]:
    """The batch-scaling protocol's settings as rows like an arm's ("offline_<setting>"), for tables and claims."""
    return [{"arm": OFFLINE + name, "seed": r["seed"], **{k: v for k, v in numbers.items() if k != "curve"}}
            for r in results if r["arm"] == "batch_scaling" for name, numbers in r["settings"].items()]


def batch_scaling(seed: int, hours: float, epochs: int, settings: dict[str, tuple[str, ...]],
                  scenario_path: str | Path | dict) -> dict:
    """Train each setting for `epochs` shuffled passes over the baseline's logs of `hours` (all but the last
    tenth) and score it on the last tenth after every epoch: test AUC, per-query AUC, log loss over the oracle's."""

    scenario = config.load(scenario_path, [f"run.duration_hours={hours}"], seed=seed)
    simulation = Simulation(scenario, keep_training_logs=True)
    simulation.run()
    ready = np.concatenate([np.full(examples.size, minute) for minute, examples, _ in simulation.training_logs])
    logs = Examples.concat([examples for _, examples, _ in simulation.training_logs])
    truth = np.concatenate([true_ctr for *_, true_ctr in simulation.training_logs])
    is_test = ready >= np.quantile(ready, 1.0 - TEST_SHARE)
    train, test, test_truth = logs.take(np.flatnonzero(~is_test)), logs.take(np.flatnonzero(is_test)), truth[is_test]
    oracle_loss = log_loss(test_truth, test.label, test.weight)
    result = {"arm": "batch_scaling", "seed": seed, "epochs": epochs, "train_examples": train.size,
              "test_examples": test.size, "settings": {}}
    for name, overrides in settings.items():
        trainer_scenario = config.load(scenario_path, [*overrides, f"run.duration_hours={hours}"], seed=seed)
        trainer = build_trainer(trainer_scenario, simulation.world)
        chunk = 64 * trainer.batch_size
        curve, seconds = {"test_auc": [], "test_per_query_auc": [], "test_logloss_gap": []}, 0.0
        for epoch in range(epochs):
            order = np.random.default_rng([seed, epoch]).permutation(train.size)
            started = time.perf_counter()
            for start in range(0, train.size, chunk):
                trainer.train(train.take(order[start:start + chunk]), flush=start + chunk >= train.size)
            seconds += time.perf_counter() - started
            prediction = trainer.predict(test)
            curve["test_auc"].append(auc(prediction, test.label, test.weight))
            curve["test_per_query_auc"].append(per_query_auc(prediction, test.label, test.query, test.weight))
            curve["test_logloss_gap"].append(log_loss(prediction, test.label, test.weight) / oracle_loss - 1.0)
        result["settings"][name] = {**{metric: values[-1] for metric, values in curve.items()}, "curve": curve,
                                    "steps": epochs * -(-train.size // trainer.batch_size),
                                    "training_seconds": seconds,
                                    "clipped_share": clipped_share(trainer)}
    return result
