"""End-to-end speed of the worlds: the teaching world, the realistic one and the large preset, learned model.

    python benchmarks/world_speed.py [--hours H] [--large-hours H] [--repeats R] [--json OUT.json]

Each run is a fresh process, as `adfloor run` is (compiled programs from the on-disk cache after the first ever
run), on the same machine one after another: the teaching and realistic worlds in turn R times (A B A B, as the
machine's speed drifts), each world's fastest run counted, then the large preset once; queries/s is the run's own
(queries over its wall time, JIT compilation included), peak RSS the process's (`--child` alone also gives it before
the end-of-run summary, and RSS every ~20 s of the run; `--child S --checkpoint-every M` checkpoints every M
simulated minutes, as `adfloor run` does). Targets (issue #17, ratios to the teaching world in the same run):
the realistic world ≥ 0.5×, over one simulated day by default; the large preset ≥ 0.2× with peak RSS ≤ 8 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORLDS = {"teaching": "teaching.toml", "realistic": "default.toml", "large": "large.toml"}
TARGETS = {"realistic": 0.5, "large": 0.2}
MAX_RSS_GB = 8.0


def run_child(scenario: str, hours: float, checkpoint_every: float = 0.0) -> None:
    """Run one simulation in this process and print its queries/s and peak RSS as JSON (the parent reads it); with
    `checkpoint_every` (simulated minutes), checkpoint it that often, as `adfloor run` does, into a folder in $TMPDIR
    (where the records' files are: the checkpoints link them)."""
    sys.path.insert(0, str(ROOT))
    import tempfile

    import simulator
    from simulator.compile_cache import enable_compilation_cache
    from simulator.loop.simulation import Simulation

    enable_compilation_cache()
    samples, last = [], [0.0]

    def sample(progress) -> None:  # RSS now, every ~20 s of wall time: the run's memory over simulated time
        if progress.wall_seconds - last[0] >= 20.0:
            last[0] = progress.wall_seconds
            samples.append([round(progress.sim_minute / 60, 3), round(resident_gb(), 3)])

    overrides = [f"run.duration_hours={hours}", f"run.checkpoint_every_minutes={checkpoint_every}"]
    folder = tempfile.TemporaryDirectory(prefix="adfloor-checkpoint-") if checkpoint_every else contextlib.nullcontext()
    with folder as path:
        simulation = Simulation(simulator.load(scenario, overrides=overrides), progress=sample)
        output = simulation.run(checkpoint_dir=Path(path) / "checkpoint" if checkpoint_every else None)
    loop_peak = peak_rss_gb()  # before the end-of-run measures (the summary reads the PV examples in windows)
    summary = output.summary()
    print(json.dumps({"queries": summary["queries"], "wall_seconds": summary["wall_seconds"],
                      "queries_per_second": summary["queries_per_second"], "peak_rss_gb": peak_rss_gb(),
                      "peak_rss_gb_before_summary": loop_peak, "rss_gb_by_simulated_hour": samples}))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux; decimal GB


def resident_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def measure(name: str, hours: float) -> dict:
    command = [sys.executable, __file__, "--child", str(ROOT / "scenarios" / WORLDS[name]), "--hours", str(hours)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return {"hours": hours, **json.loads(result.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours of the teaching and realistic runs")
    parser.add_argument("--large-hours", type=float, default=2.0, help="simulated hours of the large preset's run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of the teaching and realistic worlds, in turn")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint-every", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.hours, args.checkpoint_every)
        return
    results = {}
    for name in [*(["teaching", "realistic"] * args.repeats), "large"]:
        r = measure(name, args.large_hours if name == "large" else args.hours)
        print(f"{name:9s} {r['hours']:5.1f} h  {r['queries']:>11,d} queries in {r['wall_seconds']:7.1f} s = "
              f"{r['queries_per_second']:>8,.0f} queries/s  peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
        if name not in results or r["queries_per_second"] > results[name]["queries_per_second"]:
            results[name] = r
    for name, target in TARGETS.items():
        ratio = results[name]["queries_per_second"] / results["teaching"]["queries_per_second"]
        results[name]["ratio_to_teaching"] = ratio
        print(f"{name}: {ratio:.2f}× the teaching world's queries/s ({'meets' if ratio >= target else 'MISSES'} ≥ {target})")
    rss = results["large"]["peak_rss_gb"]
    print(f"large: peak RSS {rss:.2f} GB ({'meets' if rss <= MAX_RSS_GB else 'MISSES'} ≤ {MAX_RSS_GB:g} GB)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
