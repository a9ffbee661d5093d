"""What makes a run's memory grow? The Python-side allocations that grow between two moments of a run, grouped by the
line of adfloor's code that made them, against the RSS growth over the same stretch.

    python benchmarks/memory_growth.py [--scenario large] [--from-minute 40] [--to-minute 100] [--untraced]
        [--json OUT.json]

A run keeps records for its end-of-run measures (impressions, PV examples, probes); issue #17's memory target
(the large preset ≤ 8 GB) needs to know how much of its growth each is. tracemalloc (started 10 simulated minutes
before the first snapshot) sees numpy's allocations; what JAX and XLA allocate natively it does not, so the RSS
growth beside it bounds what the trace leaves out, and the bytes of live JAX arrays say whether held device buffers
are in that rest. `--untraced` reads RSS over the same stretch without tracemalloc, whose own tables RSS counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402

import simulator  # noqa: E402
from simulator.compile_cache import enable_compilation_cache  # noqa: E402
from simulator.loop.simulation import Simulation  # noqa: E402


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def live_jax_bytes() -> int:
    return sum(array.nbytes for array in jax.live_arrays())


def adfloor_line(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame in adfloor's own code (not numpy's, simpy's or the standard library's)."""
    for frame in reversed(traceback):  # most recent call last
        path = Path(frame.filename)
        if ROOT in path.parents and ".venv" not in path.parts:
            return f"{path.relative_to(ROOT)}:{frame.lineno}"
    return "elsewhere"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="large", help="a shipped scenario name or a .toml file")
    parser.add_argument("--from-minute", type=float, default=40.0)
    parser.add_argument("--to-minute", type=float, default=100.0)
    parser.add_argument("--untraced", action="store_true", help="RSS and live JAX arrays only, without tracemalloc")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if not 10.0 <= args.from_minute < args.to_minute:
        parser.error("need 10 ≤ --from-minute < --to-minute")
    enable_compilation_cache()
    marks: dict = {}

    def snapshot() -> tracemalloc.Snapshot | None:
        return tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None

    def progress(p) -> None:
        if p.sim_minute >= args.from_minute - 10 and "started" not in marks:
            marks["started"] = True
            if not args.untraced:
                tracemalloc.start(25)
        elif p.sim_minute >= args.from_minute and "from" not in marks:
            rss = resident_bytes()  # before the snapshot, whose own objects are not the run's
            marks["from"] = (snapshot(), len(simulation.log), rss, live_jax_bytes(), p.sim_minute)
        elif p.sim_minute >= args.to_minute and "to" not in marks:
            rss = resident_bytes()
            marks["to"] = (snapshot(), len(simulation.log), rss, live_jax_bytes(), p.sim_minute)
            if tracemalloc.is_tracing():
                tracemalloc.stop()

    scenario = simulator.load(args.scenario, overrides=[f"run.duration_hours={(args.to_minute + 5) / 60}"])
    simulation = Simulation(scenario, progress=progress)
    simulation.run(finish=False)
    if "to" not in marks:
        raise SystemExit(f"no progress report fell between minutes {args.from_minute:g} and {args.to_minute:g}: "
                         "take them further apart")
    (first, shown_first, rss_first, jax_first, minute_first) = marks["from"]
    (last, shown_last, rss_last, jax_last, minute_last) = marks["to"]
    shown = shown_last - shown_first
    growth = Counter()
    for stat in last.compare_to(first, "traceback") if last is not None else []:
        growth[adfloor_line(stat.traceback)] += stat.size_diff
    traced = sum(growth.values())
    seen = "untraced" if args.untraced else f"tracemalloc saw {traced / 1e6:.0f} MB = {traced / shown:.0f} B an impression"
    print(f"{args.scenario}: simulated minutes {minute_first:.0f} → {minute_last:.0f}, {shown:,} impressions; RSS grew "
          f"{(rss_last - rss_first) / 1e6:.0f} MB = {(rss_last - rss_first) / shown:.0f} B an impression, {seen}, live JAX "
          f"arrays {jax_first / 1e6:.0f} → {jax_last / 1e6:.0f} MB" + ("" if args.untraced else "; the traced growth by line:"))
    for line, size in growth.most_common(15):
        print(f"  {size / shown:7.1f} B an impression  {line}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "scenario": args.scenario, "traced": not args.untraced, "minutes": [minute_first, minute_last],
            "impressions": shown,
            "rss_growth_bytes": rss_last - rss_first, "traced_growth_bytes": traced,
            "live_jax_array_bytes": [jax_first, jax_last],
            "traced_by_line": dict(growth.most_common())}, indent=1) + "\n")


if __name__ == "__main__":
    main()
