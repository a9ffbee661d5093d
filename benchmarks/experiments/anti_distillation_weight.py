"""Where does anti-distillation act? The ensemble's components' spread against the term's weight, by default on seeds
the claims never use for a verdict (100, 101), so the weight of the `ensemble3_anti` arm is chosen before its test
(run on the claims' seeds, as below, it diagnoses a cell and chooses nothing).

    python -m benchmarks.experiments.anti_distillation_weight            # weights 0 1 2 3 5, 2 h, seeds 100 101
    python -m benchmarks.experiments.anti_distillation_weight --hours 1 --weights 0 10
    python -m benchmarks.experiments.anti_distillation_weight --scenario default --seeds 0 1 2 3 4 --weights 0 1 3 \
        --hours 1 --no-divergence-guard --out docs/results/realistic/anti_distillation   # why a claims cell diverged

Writes OUT/anti_distillation_weight.json and .png (spread and PV log-loss gap per weight, each seed). Each row also
has each component's mean pCTR and share of pCTRs above ½ over the last logged examples, and the PV log loss over
the oracle's per 6 simulated minutes, so a run where one component runs away shows as such.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models import Examples
from simulator import config
from simulator.config import scenario_file
from simulator.loop.simulation import Simulation
from simulator.measure.runs import SPREAD_EXAMPLES, component_spread

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 5.0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--scenario", default="teaching", help="a shipped scenario name or a .toml file")
    parser.add_argument("--no-divergence-guard", action="store_true",
                        help="train.divergence_factor=0: run on where the guard would stop a run")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results"))
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        for weight in args.weights:
            guard = ["train.divergence_factor=0"] if args.no_divergence_guard else []
            scenario = config.load(scenario_file(args.scenario), ["model.ensemble_size=3", f"train.anti_distillation_weight={weight}",
                                                                  f"run.duration_hours={args.hours}", *guard], seed=seed)
            simulation = Simulation(scenario, keep_training_logs=True)
            output = simulation.run()
            logged = Examples.concat([entry[1] for entry in output.training_logs])
            last = logged.slice(max(logged.size - SPREAD_EXAMPLES, 0), logged.size)
            components = simulation.trainer.component_predict(last)
            row = {"seed": seed, "weight": weight, "component_spread": component_spread(simulation.trainer, logged),
                   "pv_logloss_gap": output.summary()["final_window_gap"],
                   "component_mean_pctr": components.mean(axis=0).tolist(),
                   "component_share_above_half": (components > 0.5).mean(axis=0).tolist(),
                   "pv_over_oracle_per_6_minutes": _pv_over_oracle(simulation.rows, 6.0),
                   "stopped": output.stopped}  # a run can stop on non-finite predictions even without the guard
            rows.append(row)
            print(f"seed {seed}  weight {weight:g}: spread {row['component_spread']:.4f}  "
                  f"log-loss gap {100 * row['pv_logloss_gap']:+.2f} %", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.experiments.anti_distillation_weight " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "anti_distillation_weight.json").write_text(json.dumps({"command": command.strip(), "hours": args.hours,
                                                                   "rows": rows}, indent=1) + "\n")
    _figure(rows).savefig(out / "anti_distillation_weight.png", dpi=100)
    return 0


def _pv_over_oracle(rows: list[dict], minutes: float) -> list[float | None]:
    """PV log loss over the oracle's on the same examples, per `minutes` of simulated time (None: nothing trained)."""
    sums: dict[int, list[float]] = {}
    for row in rows:
        bin_sums = sums.setdefault(int(row["sim_minute"] // minutes), [0.0, 0.0])
        bin_sums[0] += row.get("pv_loss_sum", 0.0)
        bin_sums[1] += row.get("oracle_loss_sum", 0.0)
    return [pv / oracle if oracle else None for _, (pv, oracle) in sorted(sums.items())]


def _figure(rows: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        x = [max(r["weight"], 0.1) for r in mine]  # weight 0 drawn at 0.1 on the log axis
        left.plot(x, [r["component_spread"] for r in mine], marker="o", label=f"seed {seed}")
        right.plot(x, [100 * r["pv_logloss_gap"] for r in mine], marker="o", label=f"seed {seed}")
    left.set(xscale="log", xlabel="anti-distillation weight (0 drawn at 0.1)", ylabel="components' std / mean of pCTR",
             title="Does the term move the components apart?")
    right.set(xscale="log", xlabel="anti-distillation weight", ylabel="PV log loss over the oracle's, %",
              title="Its accuracy cost (last quarter of the run)")
    left.legend()
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    raise SystemExit(main())
