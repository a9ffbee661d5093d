"""Does the world give hidden layers something to find? (issue #17, item 2)

    python -m benchmarks.experiments.world_structure [--seeds 0 1 2] [--hours 6] [--worlds teaching realistic]
        [--queries-per-minute 300] [--warm-start-hours 0] [--out docs/results/world]

In each world (the teaching world, scenarios/teaching.toml; the realistic one, scenarios/default.toml) at the same
traffic (300 queries per minute by default), a linear Q tower (model.quality_hidden = []) and the default MLP ([64, 32]) learn
online on the same seeds. The measure is each run's final-window PV log-loss gap over the oracle on the same examples
(`final_window_gap`); the paired difference linear − MLP says what the hidden layers buy. In the teaching world the
truth is a logistic model of the features, so the difference should be near 0; in the realistic world the query·ad
latent term and the context effects are interactions a linear model (with its hashed crosses) can only memorise.
`--warm-start-hours H` asks the same of mature models: each arm is pre-trained H simulated hours (`run.warm_start_hours`,
cached) and measured on the window after. `--omit-crosses a*b ...` leaves those hashed crosses out of both arms
(`model.omit_crosses`): without the ad × query-id cross, a linear Q tower has no way to represent the query·ad
latent term, so an MLP that finds it should beat the linear one. Writes OUT/structure.md and OUT/structure.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import numpy as np

import simulator
from simulator.measure.intervals import interval

ROOT = Path(__file__).resolve().parents[2]
WORLDS = {"teaching": "scenarios/teaching.toml", "realistic": "scenarios/default.toml"}
ARMS = {"linear": ["model.quality_hidden=[]"], "mlp": ["model.quality_hidden=[64, 32]"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hours", type=float, default=6.0, help="simulated hours measured (after any warm start)")
    parser.add_argument("--worlds", nargs="+", choices=list(WORLDS), default=list(WORLDS))
    parser.add_argument("--queries-per-minute", type=float, default=300.0, help="the same traffic in every world")
    parser.add_argument("--warm-start-hours", type=float, default=0.0, help="pre-training before the measured window")
    parser.add_argument("--omit-crosses", nargs="+", default=[], metavar="A*B",
                        help="crosses left out of both arms (model.omit_crosses), e.g. ad_id*query_id")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "world"))
    args = parser.parse_args(argv)
    started, results = time.perf_counter(), []
    common = [f"traffic.queries_per_minute={args.queries_per_minute}", f"run.duration_hours={args.hours}",
              f"run.warm_start_hours={args.warm_start_hours}", f"model.omit_crosses={args.omit_crosses!r}"]
    for world in args.worlds:
        for seed in args.seeds:
            for arm, overrides in ARMS.items():
                scenario = simulator.load(ROOT / WORLDS[world], overrides=[*common, *overrides], seed=seed)
                summary = simulator.run(scenario).summary()
                results.append(dict(world=world, arm=arm, seed=seed, gap=summary["final_window_gap"],
                                    pv_logloss=summary["pv_logloss"], oracle_logloss=summary["oracle_logloss"],
                                    pv_auc=summary["pv_auc"], oracle_auc=summary["oracle_auc"]))
                print(f"{time.perf_counter() - started:6.0f} s  {world:9s} {arm:6s} seed {seed}: final-window gap "
                      f"{100 * summary['final_window_gap']:+.2f} %", flush=True)
    command = (f"python -m benchmarks.experiments.world_structure --seeds {' '.join(map(str, args.seeds))} --hours "
               f"{args.hours:g} --worlds {' '.join(args.worlds)} --queries-per-minute {args.queries_per_minute:g} "
               f"--warm-start-hours {args.warm_start_hours:g}"
               + (f" --omit-crosses {' '.join(map(shlex.quote, args.omit_crosses))}" if args.omit_crosses else ""))
    lines = ["# Does the world give hidden layers something to find?", "",
             f"`{command}` ({time.perf_counter() - started:,.0f} s). Final-window PV log-loss gap over the oracle "
             "on the same examples, mean ± 95 % t-interval over seeds; the difference is paired by seed.", "",
             "| world | linear Q tower | MLP [64, 32] | linear − MLP |", "|---|---|---|---|"]
    summary = {}
    for world in args.worlds:
        gap = {arm: np.array([r["gap"] for r in results if r["world"] == world and r["arm"] == arm]) for arm in ARMS}
        cells = [interval(100 * gap["linear"]), interval(100 * gap["mlp"]), interval(100 * (gap["linear"] - gap["mlp"]))]
        summary[world] = [dict(mean=m, half_width=h) for m, h in cells]
        lines.append(f"| {world} | " + " | ".join(f"{m:+.2f} ± {h:.2f} %" for m, h in cells) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "structure.md").write_text("\n".join(lines) + "\n")
    (out / "structure.json").write_text(json.dumps(dict(command=command,
                                                        results=results, summary=summary), indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
