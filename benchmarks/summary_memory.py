"""Memory of the end-of-run PV numbers over a long run's examples: measured in windows (the default) against whole.

    python benchmarks/summary_memory.py [--examples N] [--json OUT.json]

A run's PV examples wait on disk once past `run.records_memory_mb`; the summary's log losses, AUCs and calibration
(`RunOutput.pv_numbers`) read them `models.metrics.ROWS_IN_MEMORY` rows at a time, so what they add to a run's
memory should not grow with its length. Each arm is a fresh process: it writes N synthetic PV examples (CTR-like
predictions, labels drawn from the truth, the minutes of two simulated days) into the log a million at a time, as a
run does, reads its RSS, measures, and reports its peak RSS (`ru_maxrss`) and the time taken. "whole" measures with
`rows_in_memory` = N, which reads every column whole as every run's summary did before; both arms must give the same
numbers (to the order of float sums).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIECE = 1_000_000


def resident_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def run_child(examples: int, rows_in_memory: int) -> None:
    """Build the synthetic run output in this process, measure its PV numbers, print the figures as JSON."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    import simulator
    from simulator.loop.records import PV_COLUMNS, ColumnLog, ImpressionLog
    from simulator.loop.results import RunOutput

    scenario = simulator.config.replace(simulator.load(ROOT / "scenarios" / "smoke.toml"), run__duration_hours=48.0)
    rng = np.random.default_rng(0)
    pv = ColumnLog(PV_COLUMNS, memory_limit_bytes=256 << 20)  # the default run.records_memory_mb
    for start in range(0, examples, PIECE):
        n = min(PIECE, examples - start)
        truth = np.clip(rng.lognormal(np.log(0.03), 1.0, n), 1e-5, 0.9)
        prediction = np.clip(truth * rng.lognormal(0.0, 0.3, n), 1e-6, 0.99)
        minute = 48 * 60.0 * (start + np.arange(n)) / examples
        pv.append(minute=minute.astype(np.float32), prediction=prediction.astype(np.float32),
                  label=(rng.random(n) < truth).astype(np.float32), truth=truth.astype(np.float32),
                  weight=np.ones(n, np.float32), query=np.arange(start, start + n, dtype=np.int64))
    output = RunOutput(scenario, [], pv, ImpressionLog(), {}, 1.0, 0, ColumnLog(("minute",)))
    before = resident_gb()
    began = time.perf_counter()
    numbers = output.pv_numbers(rows_in_memory)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(json.dumps({"examples": examples, "rows_in_memory": rows_in_memory, "rss_before_gb": round(before, 3),
                      "peak_rss_gb": round(peak, 3), "seconds": round(seconds, 1), "numbers": numbers}))
    output.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=40_000_000, help="PV examples (a large-preset day: ~19 M)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", nargs=2, type=int, metavar=("EXAMPLES", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(*args.child)
        return
    sys.path.insert(0, str(ROOT))
    from models.metrics import ROWS_IN_MEMORY

    results = {}
    for arm, rows in (("in windows", ROWS_IN_MEMORY), ("whole", args.examples)):
        child = subprocess.run([sys.executable, __file__, "--child", str(args.examples), str(rows)],
                               capture_output=True, text=True, check=True)
        results[arm] = json.loads(child.stdout.splitlines()[-1])
        r = results[arm]
        print(f"{arm:10s} {r['examples']:,} examples, {r['rows_in_memory']:,} rows at a time: RSS {r['rss_before_gb']:.2f}"
              f" GB before, peak {r['peak_rss_gb']:.2f} GB, {r['seconds']:.0f} s")
    a, b = results["in windows"]["numbers"], results["whole"]["numbers"]
    worst = max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-300) for k in a)
    results["largest_relative_difference"] = worst
    print(f"the same numbers: largest relative difference {worst:.1e}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
