"""End-to-end loop benchmark: queries/s and where the time goes, learned model vs the oracle CTR.

    python benchmarks/loop.py [SCENARIO.toml] [--set key=value ...]

Runs the scenario on identical traffic with the learned model and with `model.oracle=true` (the
ideal system), each twice in one process: "cold" starts with empty in-process JIT caches, as one
`adfloor run` does (compiled programs still come from the on-disk cache after the first ever run),
"warm" reuses the compiled functions, as runs after the first in one process do. Prints throughput,
the share of wall time per stage (from a third, synchronous run: the normal loop overlaps the
auction with drawing the next tick's queries), and the learned model's revenue and welfare regret against the oracle.
Targets on 2 cores: ≥ 20,000 queries/s learned, ≥ 185,000 queries/s oracle.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402

import simulator  # noqa: E402
from simulator.loop import Simulation  # noqa: E402
from simulator.compile_cache import enable_compilation_cache  # noqa: E402

TARGETS = {"learned": 20_000, "oracle": 185_000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios" / "default.toml"))
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    enable_compilation_cache()
    results = {}
    for name, extra in (("learned", []), ("oracle", ["model.oracle=true"])):
        scenario = simulator.load(args.scenario, overrides=[*args.set, *extra])
        for start in ("cold", "warm"):
            if start == "cold":
                jax.clear_caches()
            summary = simulator.run(scenario).summary()
            results[name if start == "warm" else f"{name}_cold"] = summary
            status = "meets" if summary["queries_per_second"] >= TARGETS[name] else "BELOW"
            print(f"{name:8s} {start}  {summary['queries']:>10,d} queries in {summary['wall_seconds']:6.1f} s = "
                  f"{summary['queries_per_second']:>9,.0f} queries/s ({status} target {TARGETS[name]:,})")
        # The share of wall time per stage needs each stage waited for (no overlap): one more, synchronous run.
        profiled = Simulation(scenario, sync_stages=True).run().summary()
        results[f"{name}_stage_share"] = profiled["time_share"]
        shares = "  ".join(f"{k} {100 * v:4.1f}%" for k, v in profiled["time_share"].items())
        print(f"{name:8s} share of wall time by stage (synchronous run, {profiled['queries_per_second']:,.0f} q/s): {shares}")
    learned, oracle = results["learned"], results["oracle"]
    for key in ("revenue", "welfare"):
        regret = 1 - learned[key] / oracle[key]
        print(f"{key} regret of the learned model vs the oracle: {100 * regret:+.2f}% "
              f"({learned[key]:,.0f} vs {oracle[key]:,.0f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
