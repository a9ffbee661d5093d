"""Paired experiments of the model techniques (issue #5) alone: every arm against the baseline, on the same traffic.

    python -m benchmarks.experiments.models                  # all arms, seeds 0 1 2, 24 simulated hours
    python -m benchmarks.experiments.models --quick          # 1 seed, 2 hours: checks the pipeline
    python -m benchmarks.experiments.models --only smelu bias

The arms, tables and frontier figures are the claims study's (`studies/claims.toml`); `adfloor report` runs
the same arms on 5 seeds and adds the claims. This script writes OUT/models.md (tables, mean ± 95 % interval over seeds, paired
differences to the baseline), OUT/models.json (every number per seed) and, when SmeLU-frontier or deep-tower
arms ran, OUT/pd_frontier.png (their PD against log loss; the deep-tower groups if any of them ran).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from simulator.experiments.cells import Cell, run_cells
from simulator.experiments.study import load_study, study_file
from simulator.report.claims_figures import pd_frontier_figure
from simulator.report.claims_report import scenario_label
from simulator.report.tables import models_report

ROOT = Path(__file__).resolve().parents[2]
STUDY = load_study(study_file("claims"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hours", type=float, help="simulated hours per run (default 24; 2 with --quick)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=sorted(STUDY.arms),
                        help="these arms (and the baseline, unless --merge takes it from earlier results)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 simulated hours (unless --hours)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--cache", type=Path, help="keep finished cells (and failed cells' tracebacks) here and reuse "
                                                   "them, e.g. runs/report-cache; without it they go with the run")
    parser.add_argument("--merge", action="store_true",
                        help="add to (or replace in) the results already in OUT/models.json, and report them all")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
    args.hours = args.hours if args.hours is not None else (2.0 if args.quick else 24.0)
    names = ["baseline"] + [name for name in (args.only or STUDY.arms) if name != "baseline"]
    if args.merge and args.only:  # the baseline comes from the earlier results
        names = list(args.only)
    cells = [Cell(name, seed, args.hours) for seed in args.seeds for name in names]
    if args.cache:
        results, failures = run_cells(cells, STUDY, args.cache, args.workers, progress=print)
    else:  # the finished cells only for this run: not left behind
        with tempfile.TemporaryDirectory(prefix="adfloor-cells-") as cache:
            results, failures = run_cells(cells, STUDY, Path(cache), args.workers, progress=print)
    if failures:
        raise SystemExit("cells failed: " + "; ".join(f"{key}: {error}" for key, error in failures.items()))
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
    (args.out / "models.md").write_text(models_report(STUDY, results, args.seeds, args.hours, command.strip(),
                                                          scenario_label(STUDY)))
    print(f"wrote {args.out / 'models.md'}")
    ran = {r["arm"] for r in results}
    deep = ran & {arm for label, arms in STUDY.frontiers["deep"].lines.items() if "deep" in label for arm in arms}
    frontier = STUDY.frontiers["deep" if deep else "smelu"]
    if ran & {arm for arms in frontier.lines.values() for arm in arms}:
        pd_frontier_figure(results, args.seeds, frontier).savefig(args.out / "pd_frontier.png", dpi=110)
        print(f"wrote {args.out / 'pd_frontier.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
