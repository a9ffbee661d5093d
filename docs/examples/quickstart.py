"""adfloor from Python: run a scenario with progress, read its metrics, compare two systems on paired traffic.

    python docs/examples/quickstart.py [--hours H]
"""

import argparse
from pathlib import Path

import simulator
from simulator.config import replace
from simulator.experiments.paired import compare

ROOT = Path(__file__).resolve().parents[2]

parser = argparse.ArgumentParser()
parser.add_argument("--hours", type=float, default=2.0, help="simulated hours per run")
args = parser.parse_args()

# 1. Load a scenario, override keys as on the command line, run it with a progress callback.
scenario = simulator.load(ROOT / "scenarios" / "smoke.toml", overrides=[f"run.duration_hours={args.hours}"], seed=1)
output = simulator.run(scenario, progress=lambda p: print(f"\r{100 * p.fraction:5.1f}% simulated", end=""))
print()

# 2. Per-tick metrics are a pandas DataFrame; the summary is a dict of headline numbers.
metrics = output.metrics()
hourly = metrics.groupby(metrics["sim_time"].astype(int))[["queries", "clicks", "revenue"]].sum()
print(hourly)
summary = output.summary()
print(f"PV log loss {summary['pv_logloss']:.4f} vs oracle {summary['oracle_logloss']:.4f}; "
      f"revenue {summary['revenue']:.1f}")

# 3. Paired replays: the same traffic and user noise, two systems (here: τ = sigmoid vs exp).
comparison = compare(scenario, replace(scenario, model__transfer="exp"), seeds=[1, 2], names=("sigmoid", "exp"))
print(comparison.table())
