"""Paired experiments of the model techniques (issue #5): every arm against the baseline, on the same traffic.

    python -m benchmarks.experiments.models                  # all arms, seeds 0 1 2, 24 simulated hours
    python -m benchmarks.experiments.models --quick          # 1 seed, 2 hours: checks the pipeline
    python -m benchmarks.experiments.models --only smelu bias

Each (arm, seed) runs the default scenario with the arm's overrides and that seed, so all arms of a seed
see the same queries and user noise (paired replays). Arms marked `replica` also run a second system that
differs only in the nuisance seed (`model.init_seed = 1`): prediction difference and churn between the two
measure irreproducibility. Writes docs/results/models.md (tables, mean ± 95 % interval over seeds, paired
differences to the baseline) and docs/results/models.json (every number per seed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "default.toml"


@dataclass(frozen=True)
class Arm:
    name: str
    overrides: tuple[str, ...]
    replica: bool = False  # also run a nuisance-seed replica (PD, churn)


ARMS = {arm.name: arm for arm in [
    Arm("baseline", (), replica=True),
    Arm("smelu", ("model.activation=smelu",), replica=True),
    Arm("small_init", ("model.embedding_init_std=0.01",), replica=True),
    Arm("smelu_small_init", ("model.activation=smelu", "model.embedding_init_std=0.01"), replica=True),
    Arm("ensemble3", ("model.ensemble_size=3",), replica=True),
    Arm("ensemble3_anti", ("model.ensemble_size=3", "train.anti_distillation_weight=1.0"), replica=True),
    Arm("bias", ("train.bias_constraints=['position', 'treatment', 'pctr_decile']", "train.bias_learning_rate=0.1",
                 "train.loss_curriculum=linear"), replica=True),
    Arm("unfactorized", ("model.architecture=unfactorized",)),
    Arm("rank", ("train.rank_loss_weight=0.3", "train.loss_curriculum=linear")),
    Arm("distill", ("train.distillation_weight=0.5",)),
    Arm("dcn", ("model.dcn_layers=2", "model.dcn_rank=8")),
    Arm("wide", ("model.quality_hidden=[256, 128]",)),
    Arm("wide_bottleneck", ("model.quality_hidden=[256, 128]", "model.bottleneck_dim=16")),
    Arm("shampoo", ("train.optimizer=shampoo",)),
    Arm("adam", ("train.optimizer=adam", "train.learning_rate=0.003")),
    Arm("batch4k", ("train.batch_size=4096",)),
    Arm("batch4k_cowclip", ("train.batch_size=4096", "train.scaling_base_batch_size=512", "train.cowclip=true",
                            "train.cowclip_r=1e-5", "train.cowclip_zeta=0.0")),
    Arm("batch16k", ("train.batch_size=16384",)),
    Arm("batch16k_cowclip", ("train.batch_size=16384", "train.scaling_base_batch_size=512", "train.cowclip=true",
                             "train.cowclip_r=1e-5", "train.cowclip_zeta=0.0")),
    Arm("sampling", ("data.negative_keep_rate=0.3", "data.low_position_keep_rate=0.5")),
]}

# The report's sections: which arms, which numbers, what the issue asks them to show.
SECTIONS = [
    ("SmeLU, ensembles, anti-distillation: irreproducibility at equal accuracy",
     ["baseline", "smelu", "ensemble3", "ensemble3_anti", "small_init", "smelu_small_init"],
     ["pd", "pd_open_loop", "ads_query_churn", "winner_churn", "pv_logloss_gap", "pv_auc", "training_seconds"]),
    ("Bias constraints (Table 3 of Factory Floor): per-slice calibration bias against the true CTR",
     ["baseline", "bias"],
     ["bias_position_maxabs", "bias_treatment_maxabs", "bias_pctr_decile_maxabs", "pv_logloss_gap", "ads_query_churn"]),
    ("Factorized vs unfactorized: rarely shown combinations, credit attribution, scoring cost",
     ["baseline", "unfactorized"],
     ["error_never_shown", "error_rarely_shown", "error_often_shown", "position_effect_error", "treatment_effect_error",
      "pv_logloss_gap", "scoring_us_per_candidate"]),
    ("Rank loss: per-query AUC", ["baseline", "rank"],
     ["per_query_auc", "pv_auc", "pv_logloss_gap", "calibration_vs_truth"]),
    ("Distillation, DCNv2, bottlenecks, optimizers: accuracy and cost",
     ["baseline", "distill", "dcn", "wide", "wide_bottleneck", "shampoo", "adam"],
     ["pv_logloss_gap", "pv_auc", "per_query_auc", "training_seconds"]),
    ("Large batches: AUC from 512 to 16K, with and without CowClip + its scaling rule",
     ["baseline", "batch4k", "batch4k_cowclip", "batch16k", "batch16k_cowclip"],
     ["pv_auc", "per_query_auc", "pv_logloss_gap", "training_seconds"]),
    ("Data sampling: calibration kept, training cost cut", ["baseline", "sampling"],
     ["calibration_vs_truth", "shown_calibration_vs_truth", "pv_logloss_gap", "trained_examples", "training_seconds"]),
]

METRIC_DOC = {
    "pd": "prediction difference between nuisance-seed replicas, each in its own closed loop (placements either showed)",
    "pd_open_loop": "the same, when the replica trains on the primary's logs (no feedback loop: model irreproducibility)",
    "ads_query_churn": "share of queries whose shown ad set differs between the replicas",
    "winner_churn": "share of queries whose top ad differs between the replicas",
    "pv_logloss_gap": "PV log loss over the oracle's, last quarter of the run (relative)",
    "pv_auc": "PV AUC", "per_query_auc": "PV AUC within queries (pairs of the same query)",
    "training_seconds": "wall seconds in the trainer (teacher included)",
    "bias_position_maxabs": "max over positions of |Σ pCTR / Σ true CTR − 1| (PV, second half)",
    "bias_treatment_maxabs": "same over treatments", "bias_pctr_decile_maxabs": "same over pCTR deciles",
    "error_never_shown": "mean |log(pCTR / true CTR)| on probed (ad, treatment, position) never shown in the run",
    "error_rarely_shown": "same, shown 1–9 times", "error_often_shown": "same, shown ≥ 10 times",
    "position_effect_error": "mean |log(learned / true)| of CTR(p) / CTR(top), text treatment, probed ads",
    "treatment_effect_error": "mean |log(learned / true)| of CTR(t, top) / CTR(text, top)",
    "scoring_us_per_candidate": "scoring wall µs per candidate (all treatments × positions; synchronous stages)",
    "calibration_vs_truth": "Σ w·pCTR / Σ w·true CTR − 1 over PV examples, second half (importance-weighted)",
    "shown_calibration_vs_truth": "Σ pCTR / Σ true CTR − 1 over shown ads, second half (serving-time predictions)",
    "trained_examples": "examples the trainer consumed",
}


# ---- one run ------------------------------------------------------------------------------------------
def _slice_bias(values: np.ndarray, prediction: np.ndarray, truth: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    predicted = np.bincount(values, weight * prediction, minlength=size)
    true = np.bincount(values, weight * truth, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return predicted / true - 1.0


def run_metrics(output, examination: np.ndarray) -> dict:
    """Every number the report uses, from one run's output."""
    from models.metrics import per_query_auc

    s = output.summary()
    pv = output.pv_arrays()
    frame = output.log.frame()
    late = slice(len(pv["label"]) // 2, None)
    prediction, truth, weight = pv["prediction"][late], pv["truth"][late], pv["weight"][late]
    deciles = np.searchsorted(np.quantile(prediction, np.linspace(0, 1, 11)[1:-1]), prediction)
    metrics = {
        "pv_logloss": s["pv_logloss"], "pv_logloss_gap": s["final_window_gap"], "pv_auc": s["pv_auc"],
        "per_query_auc": per_query_auc(pv["prediction"], pv["label"], pv["query"], pv["weight"]),
        "calibration_vs_truth": float(np.sum(weight * prediction) / np.sum(weight * truth) - 1),
        "bias_pctr_decile_maxabs": float(np.nanmax(np.abs(_slice_bias(deciles, prediction, truth, weight, 10)))),
        "trained_examples": s["trained_examples"], "training_seconds": output.timers.get("training", 0.0),
        "revenue": s["revenue"], "welfare": s["welfare"], "stopped": s["stopped"],
        "scoring_us_per_candidate": 1e6 * output.timers.get("scoring", 0.0)
        / max(output.queries * output.scenario.world.candidates_per_query, 1),
    }
    # per-position / per-treatment bias on shown ads (serving-time pCTR against the true CTR), second half
    shown = frame[frame["query"] >= frame["query"].max() // 2]
    metrics["shown_calibration_vs_truth"] = float(shown["pctr"].sum() / shown["true_ctr"].sum() - 1)
    for column, size in (("position", output.scenario.world.num_positions), ("treatment", examination.shape[0])):
        bias = _slice_bias(shown[column].to_numpy().astype(np.int64), shown["pctr"].to_numpy(),
                           shown["true_ctr"].to_numpy(), np.ones(len(shown)), size)
        metrics[f"bias_{column}"] = bias.tolist()
        metrics[f"bias_{column}_maxabs"] = float(np.nanmax(np.abs(bias)))
    metrics.update(_attribution(output, examination, frame))
    return metrics


def _attribution(output, examination: np.ndarray, frame) -> dict:
    """Credit attribution and accuracy on rarely shown (ad, treatment, position) combinations, from the probes."""
    probes = output.probe_arrays()
    late = probes["minute"] >= probes["minute"].max() / 2
    pctr, valid = probes["pctr"][late].astype(np.float64), probes["valid"][late]
    truth = probes["relevance"][late][:, :, None, None] * examination[None, None]
    ads = probes["candidates"][late]
    t, k = examination.shape
    # how often each (ad, treatment, position) was shown over the whole run
    key = (frame["ad_id"].to_numpy().astype(np.int64) * t + frame["treatment"].to_numpy()) * k + frame["position"].to_numpy()
    keys, counts = np.unique(key, return_counts=True)
    cell_key = (ads[:, :, None, None].astype(np.int64) * t + np.arange(t)[:, None]) * k + np.arange(k)
    position_in = np.minimum(np.searchsorted(keys, cell_key), len(keys) - 1)
    shown_count = np.where(keys[position_in] == cell_key, counts[position_in], 0)
    error = np.abs(np.log(np.maximum(pctr, 1e-9) / np.maximum(truth, 1e-9)))
    cells = np.broadcast_to(valid[:, :, None, None], error.shape)
    result = {}
    for name, mask in (("never", shown_count == 0), ("rarely", (shown_count > 0) & (shown_count < 10)),
                       ("often", shown_count >= 10)):
        chosen = cells & mask
        result[f"error_{name}_shown"] = float(error[chosen].mean()) if chosen.any() else float("nan")
    log_pctr = np.log(np.maximum(pctr, 1e-9))
    learned_position = log_pctr[:, :, 0, 1:] - log_pctr[:, :, 0, :1]  # text treatment, vs the top
    true_position = np.log(examination[0, 1:] / examination[0, 0])
    result["position_effect_error"] = float(np.abs(learned_position - true_position)[valid].mean())
    result["learned_position_effect"] = np.exp(learned_position[valid].mean(axis=0)).tolist()
    result["true_position_effect"] = np.exp(true_position).tolist()
    learned_treatment = log_pctr[:, :, 1:, 0] - log_pctr[:, :, :1, 0]
    true_treatment = np.log(examination[1:, 0] / examination[0, 0])
    result["treatment_effect_error"] = float(np.abs(learned_treatment - true_treatment)[valid].mean())
    return result


def run_arm(arm: Arm, seed: int, hours: float) -> dict:
    """Run one arm on one seed (and its replica); return its metrics (and PD/churn against the replica)."""
    from simulator import config
    from simulator.compare import churn, prediction_difference
    from simulator.loop import Simulation

    overrides = [*arm.overrides, f"run.duration_hours={hours}"]
    scenario = config.load(SCENARIO, overrides, seed=seed)
    started = time.perf_counter()
    simulation = Simulation(scenario, sync_stages=True, keep_training_logs=arm.replica)
    output = simulation.run()
    result = {"arm": arm.name, "seed": seed, **run_metrics(output, simulation.world.examination),
              "wall_seconds": time.perf_counter() - started}
    if arm.replica:
        replica = Simulation(config.replace(scenario, model__init_seed=1)).run()
        sets_differ, winner_differs = churn(output, replica)
        # open loop: a replica trained on the primary's logs — model irreproducibility without the feedback loop
        open_loop = Simulation(config.replace(scenario, model__init_seed=1), training_logs=output.training_logs).run()
        result.update(pd=float(prediction_difference(output, replica)[1].mean()),
                      pd_open_loop=float(prediction_difference(output, open_loop)[1].mean()),
                      ads_query_churn=float(sets_differ.mean()), winner_churn=float(winner_differs.mean()),
                      replica_pv_logloss_gap=replica.summary()["final_window_gap"])
    return result


# ---- the report -----------------------------------------------------------------------------------------
def _interval(values: list[float]) -> tuple[float, float]:
    from simulator.compare import interval

    return interval(np.asarray(values, np.float64))


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}" if magnitude < 10 else f"{value:.1f}"


def report(results: list[dict], seeds: list[int], hours: float, command: str) -> str:
    by = {(r["arm"], r["seed"]): r for r in results}
    lines = ["# Model techniques: paired experiments", "",
             f"Produced by `{command}` ({len(seeds)} seed(s): {', '.join(map(str, seeds))}; "
             f"{hours:g} simulated hours of `scenarios/default.toml` per run). Every arm of a seed sees the same "
             "traffic and user noise as the baseline of that seed. Cells: mean ± 95 % t-interval half-width over "
             "seeds; Δ = paired difference to the baseline (same seed), mean ± half-width.", ""]
    for title, arms, metrics in SECTIONS:
        arms = [a for a in arms if all((a, s) in by for s in seeds)]
        if len(arms) < 2:
            continue
        lines += [f"## {title}", "", "| arm | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for arm in arms:
            cells = []
            for metric in metrics:
                values = [by[(arm, s)].get(metric, float("nan")) for s in seeds]
                mean, half = _interval(values)
                cell = f"{_fmt(mean)} ± {_fmt(half)}"
                if arm != "baseline":
                    base = [by[("baseline", s)].get(metric, float("nan")) for s in seeds]
                    d_mean, d_half = _interval(np.subtract(values, base))
                    cell += f" (Δ {_fmt(d_mean)} ± {_fmt(d_half)})"
                cells.append(cell)
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines += ["", "Overrides: " + "; ".join(f"`{a}`: " + (", ".join(f"`{o}`" for o in ARMS[a].overrides) or "defaults")
                                                for a in arms), ""]
    lines += ["## What the numbers mean", ""] + [f"- `{k}`: {v}" for k, v in METRIC_DOC.items()] + [""]
    if any("bias_position" in r for r in results):
        lines += ["## Per-slice bias (serving-time pCTR / true CTR − 1, second half, seed "
                  f"{seeds[0]})", "", "| arm | positions | treatments |", "|---|---|---|"]
        for arm in ("baseline", "bias", "unfactorized", "rank"):
            if (arm, seeds[0]) in by:
                r = by[(arm, seeds[0])]
                lines.append(f"| {arm} | {', '.join(f'{x:+.3f}' for x in r['bias_position'])} | "
                             f"{', '.join(f'{x:+.3f}' for x in r['bias_treatment'])} |")
        lines.append("")
    if ("baseline", seeds[0]) in by:
        r = by[("baseline", seeds[0])]
        lines += [f"Learned position effect CTR(p)/CTR(top), baseline seed {seeds[0]}: "
                  f"{', '.join(f'{x:.3f}' for x in r['learned_position_effect'])} (true "
                  f"{', '.join(f'{x:.3f}' for x in r['true_position_effect'])}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=sorted(ARMS),
                        help="these arms (and the baseline, unless --merge takes it from earlier results)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 simulated hours")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--merge", action="store_true",
                        help="add to (or replace in) the results already in OUT/models.json, and report them all")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.hours = args.seeds[:1], 2.0
    arms = [ARMS["baseline"]] + [ARMS[name] for name in (args.only or ARMS) if name != "baseline"]
    if args.merge and args.only:  # the baseline comes from the earlier results
        arms = [ARMS[name] for name in args.only]
    jobs = [(arm, seed) for seed in args.seeds for arm in arms]
    results, started = [], time.perf_counter()
    context = multiprocessing.get_context("spawn")  # no forked JAX runtimes
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = {pool.submit(run_arm, arm, seed, args.hours): (arm.name, seed) for arm, seed in jobs}
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()
            results.append(result)
            print(f"[{done}/{len(jobs)} {time.perf_counter() - started:6.0f}s] {result['arm']:18s} seed {result['seed']}: "
                  f"gap {result['pv_logloss_gap'] * 100:+.2f}%  auc {result['pv_auc']:.4f}"
                  + (f"  PD {result['pd']:.4f}" if "pd" in result else ""), flush=True)
    command = "python -m benchmarks.experiments.models " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge and (args.out / "models.json").exists():
        previous = json.loads((args.out / "models.json").read_text())
        if previous["seeds"] != args.seeds or previous["hours"] != args.hours:
            raise SystemExit("--merge: the earlier results used other seeds or hours")
        fresh = {(r["arm"], r["seed"]) for r in results}
        results = [r for r in previous["results"] if (r["arm"], r["seed"]) not in fresh] + results
        command = previous.get("command", "python -m benchmarks.experiments.models") + f"; then {command}"
    (args.out / "models.json").write_text(json.dumps({"seeds": args.seeds, "hours": args.hours, "command": command,
                                                      "results": results}, indent=1, default=float) + "\n")
    (args.out / "models.md").write_text(report(results, args.seeds, args.hours, command.strip()))
    print(f"wrote {args.out / 'models.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
