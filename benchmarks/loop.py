"""End-to-end loop benchmark: queries/s and where the time goes, learned model vs the oracle CTR.

    python benchmarks/loop.py [SCENARIO.toml] [--set key=value ...] [--json OUT.json]

Runs the scenario on identical traffic with the learned model and with `model.oracle=true` (the
ideal system). Each measurement runs in a fresh process, as `adfloor run` does (JIT compilation
included; compiled programs come from the on-disk cache after the first ever run). Throughput comes
from the normal loop, which overlaps the auction with drawing the next tick's queries; the share of
wall time per stage from one more run that waits for each stage. Also prints the learned model's
revenue and welfare regret against the oracle.
Targets on 2 cores: ≥ 20,000 queries/s learned, ≥ 185,000 queries/s oracle.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"learned": 20_000, "oracle": 185_000}
SYSTEMS = {"learned": [], "oracle": ["model.oracle=true"]}


def run_child(scenario: str, overrides: list[str], sync_stages: bool) -> None:
    """Run one simulation in this process and print its summary as JSON (the parent reads it)."""
    sys.path.insert(0, str(ROOT))
    import simulator
    from simulator.compile_cache import enable_compilation_cache
    from simulator.loop.simulation import Simulation

    enable_compilation_cache()
    output = Simulation(simulator.load(scenario, overrides=overrides), sync_stages=sync_stages).run()
    print(json.dumps(output.summary()))


def measure(scenario: str, overrides: list[str], sync_stages: bool) -> dict:
    command = [sys.executable, __file__, scenario, "--child", *(f"--set={o}" for o in overrides)]
    if sync_stages:
        command.append("--sync-stages")
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "teaching.toml"))
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sync-stages", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.scenario, args.set, args.sync_stages)
        return
    results = {}
    for name, extra in SYSTEMS.items():
        summary = measure(args.scenario, [*args.set, *extra], sync_stages=False)
        staged = measure(args.scenario, [*args.set, *extra], sync_stages=True)
        results[name] = {**summary, "stage_share": staged["time_share"]}
        status = "meets" if summary["queries_per_second"] >= TARGETS[name] else "BELOW"
        shares = "  ".join(f"{k} {100 * v:4.1f}%" for k, v in staged["time_share"].items())
        print(f"{name:8s} {summary['queries']:>10,d} queries in {summary['wall_seconds']:5.1f} s = "
              f"{summary['queries_per_second']:>9,.0f} queries/s ({status} target {TARGETS[name]:,})\n"
              f"         share of wall time by stage: {shares}")
    learned, oracle = results["learned"], results["oracle"]
    for key in ("revenue", "welfare"):
        regret = 1 - learned[key] / oracle[key]
        print(f"{key} regret of the learned model vs the oracle: {100 * regret:+.2f}% "
              f"({learned[key]:,.0f} vs {oracle[key]:,.0f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
