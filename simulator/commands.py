"""What each `adfloor` command does, given its parsed arguments (`simulator.cli` holds the parser): a thin layer
over `simulator.run` and friends. Each command imports what only it needs (the plots, the study report, the
reference auction) when it runs."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from simulator.config import ConfigError, scenario_file

DEFAULT_SCENARIO = "scenarios/default.toml"


def _progress_printer(stream):
    def show(p) -> None:
        stream.write(
            f"\r  sim {p.sim_minute / 60:6.2f}/{p.duration_minutes / 60:.2f} h  {100 * p.fraction:5.1f}%  "
            f"{p.queries:>10,d} queries  {p.queries_per_second:>9,.0f} q/s  PV log loss {p.recent_pv_logloss:.4f}"
        )
        stream.flush()

    return show


def _print_progress(progress) -> None:
    """One line per finished cell of a sweep or a study (the runner's `Progress`)."""
    print(f"  {progress.text()}", file=sys.stderr)


def _resolve_scenario(path: str | None) -> str | None:
    """The scenario path as given, or the default scenario next to the package when none is given."""
    if path is not None:
        return path
    bundled = scenario_file("default")
    return str(bundled) if bundled.is_file() else None


def cmd_run(args: argparse.Namespace) -> int:
    import shutil

    import simulator
    from simulator import config as config_module
    from simulator.loop.checkpoint import CheckpointError
    from simulator.loop.simulation import Simulation
    from simulator.report.figures import save as save_figure
    from simulator.report.figures import summary_figure

    progress = None if args.quiet else _progress_printer(sys.stderr)
    if args.resume:
        if args.scenario or args.set or args.seed is not None or args.out:
            raise ConfigError("--resume DIR: takes no scenario, --seed, --set or --out (the run's own config is used)")
        out = Path(args.resume)
        try:
            simulation = Simulation.resume(out / "checkpoint", progress=progress)
        except CheckpointError as err:
            raise ConfigError(str(err)) from None
        scenario = simulation.scenario
        print(f"adfloor run: resuming {out} at simulated hour {simulation.processes.env.now / 60:.2f} of "
              f"{scenario.run.duration_hours:g}", file=sys.stderr)
    else:
        scenario = simulator.load(_resolve_scenario(args.scenario), overrides=args.set, seed=args.seed)
        out = Path(args.out) if args.out else Path("runs") / f"{Path(args.scenario or 'default').stem}-seed{scenario.run.seed}"
        print(f"adfloor run: {scenario.run.duration_hours:g} simulated hours, seed {scenario.run.seed} → {out}",
              file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config_module.dumps(scenario))
        simulation = Simulation(scenario, progress=progress)
    checkpoints = out / "checkpoint" if scenario.run.checkpoint_every_minutes else None
    output = simulation.run(checkpoint_dir=checkpoints)
    if not args.quiet:
        sys.stderr.write("\n")
    output.write(out, impressions=args.log_impressions)
    save_figure(summary_figure(output), out / "summary.png")
    if output.stopped:
        kept = f"; last good checkpoint: {checkpoints}/" if checkpoints is not None and checkpoints.exists() else ""
        print(f"adfloor: stopped: {output.stopped}; the metrics so far are in {out}/{kept}", file=sys.stderr)
        return 3
    if checkpoints is not None:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the run is complete: nothing to resume
    s = output.summary()
    print(
        f"queries {s['queries']:,}  impressions {s['impressions']:,}  clicks {s['clicks']:,}  "
        f"revenue {s['revenue']:,.1f}  welfare {s['welfare']:,.1f}\n"
        f"PV log loss {s['pv_logloss']:.4f}  oracle {s['oracle_logloss']:.4f}  "
        f"final window gap {100 * s['final_window_gap']:+.2f}%  PV AUC {s['pv_auc']:.4f}  "
        f"max |decile calibration| {s['calibration_max_abs_decile']:.3f}\n"
        f"{s['queries_per_second']:,.0f} queries/s over {s['wall_seconds']:.1f} s; wrote {out}/"
    )
    return 0


def cmd_world(args: argparse.Namespace) -> int:
    import json

    import simulator
    from simulator import config as config_module
    from simulator.measure.world_statistics import statistics, target_rows, world_run

    scenario = simulator.load(_resolve_scenario(args.scenario), overrides=args.set, seed=args.seed)
    hours = scenario.run.duration_hours if args.hours is None else args.hours
    if not hours > 0:
        raise ConfigError(f"--hours: must be > 0, got {hours:g}")
    name = Path(args.scenario or "default").stem
    out = Path(args.out) if args.out else Path("runs") / f"world-{name}-seed{scenario.run.seed}"
    print(f"adfloor world: {scenario.world.kind} world, {hours:g} simulated hours, seed {scenario.run.seed} → {out}",
          file=sys.stderr)
    output, ads = world_run(scenario, hours, progress=None if args.quiet else _progress_printer(sys.stderr))
    if not args.quiet:
        sys.stderr.write("\n")
    stats = statistics(output, ads)
    rows = target_rows(stats)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(config_module.dumps(scenario))
    (out / "world.json").write_text(json.dumps(dict(statistics=stats, targets=rows), indent=1) + "\n")
    print(f"{'statistic':26s} {'world':>9s}  {'band':>11s}  {'inside':6s}  target — source")
    for r in rows:
        inside = {None: "", True: "yes", False: "NO"}[r["inside"]]
        print(f"{r['statistic']:26s} {r['world']:9.4g}  {r['band']:>11s}  {inside:6s}  {r['target']} — {r['source']}")
    print(f"ads per query (0, 1, …): {' '.join(f'{x:.3f}' for x in stats['ads_per_query_shares'])}")
    print("CTR by device and position: " + "  ".join(f"{k} {v['ctr']:.4f}" for k, v in stats["ctr_by_device_position"].items()))
    print("formats: " + "  ".join(f"{k} {v:.3f}" for k, v in stats["format_shares"].items()))
    print("ids seen < 10 times per day (share of distinct): " + "  ".join(
        f"{k} {v['under_10']:.2f}" for k, v in stats["id_tails"].items()))
    print("ads: " + "  ".join(f"{k} {v:,.4g}" for k, v in ads.items()))
    print(f"wrote {out}/world.json")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    import simulator
    from simulator.loop.records import TrainingDiverged
    from simulator.loop.simulation import Simulation

    if not args.hours > 0:
        raise ConfigError(f"--hours: must be > 0, got {args.hours:g}")
    overrides = [*args.set, f"run.warm_start_hours={args.hours}"]
    scenario = simulator.load(_resolve_scenario(args.scenario), overrides=overrides, seed=args.seed)
    print(f"adfloor pretrain: {scenario.world.kind} world, {args.hours:g} simulated hours, seed {scenario.run.seed} → "
          f"{scenario.run.warm_start_cache}", file=sys.stderr)
    simulation = Simulation(scenario, progress=None if args.quiet else _progress_printer(sys.stderr))
    try:
        _, folder, cached = simulation.pretrained_state()
    except TrainingDiverged as err:
        print(f"\nadfloor pretrain: {err}", file=sys.stderr)
        return 1
    if not args.quiet and not cached:
        sys.stderr.write("\n")
    print(f"{'already cached' if cached else 'pre-trained and cached'}: {folder} (runs of this scenario and seed with "
          f"run.warm_start_hours={args.hours:g} and run.warm_start_cache={scenario.run.warm_start_cache} start from it)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import simulator
    from simulator.experiments.paired import compare
    from simulator.report.figures import comparison_figure
    from simulator.report.figures import save as save_figure

    if args.vary:
        if len(args.scenarios) > 1:
            raise ConfigError("compare: give one scenario with --vary, or two scenarios without it")
        key, _, values = args.vary.partition("=")
        choices = [v for v in values.split(",") if v]
        if not key or len(choices) != 2:
            raise ConfigError(f"--vary {args.vary!r}: expected section.key=value1,value2")
        base = args.scenarios[0] if args.scenarios else _resolve_scenario(None)
        systems = [simulator.load(base, overrides=[*args.set, f"{key}={v}"]) for v in choices]
        names = tuple(f"{key.split('.')[-1]}={v}" for v in choices)
    else:
        if len(args.scenarios) != 2:
            raise ConfigError("compare: give two scenarios A.toml B.toml, or one with --vary section.key=v1,v2")
        systems = [simulator.load(path, overrides=args.set) for path in args.scenarios]
        names = tuple(Path(p).stem for p in args.scenarios)
        if names[0] == names[1]:
            names = (f"A:{names[0]}", f"B:{names[1]}")
    seeds = list(range(systems[0].run.seed, systems[0].run.seed + args.seeds))
    out = Path(args.out) if args.out else Path("runs") / f"compare-{names[0]}-vs-{names[1]}".replace("/", "_")
    try:
        comparison = compare(*systems, seeds=seeds, names=names, open_loop=args.open_loop,
                             progress=None if args.quiet else lambda text: print(f"  {text}", file=sys.stderr))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    comparison.write(out)
    save_figure(comparison_figure(comparison), out / "comparison.png")
    print(comparison.table())
    print(f"wrote {out}/")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from simulator.experiments.sweep import plan, run_sweep

    sweep = plan(args.sweep)
    out = Path(args.out) if args.out else Path("runs") / f"sweep-{Path(args.sweep).stem}"
    where = f"Ray at {args.address}" if args.address else f"{args.workers} {args.backend} workers"
    print(f"adfloor sweep: {len(sweep.cells)} cells, {where} → {out}", file=sys.stderr)

    _, cells = run_sweep(sweep, out, workers=args.workers, progress=None if args.quiet else _print_progress,
                         backend=args.backend, address=args.address)
    failed = cells[cells["status"] == "failed"]
    for row in failed.itertuples():
        print(f"cell {row.cell} (seed {row.seed}) failed: {row.error}", file=sys.stderr)
    print(f"{(cells['status'] == 'done').sum()} of {len(cells)} cells done; wrote {out}/ticks.parquet and {out}/cells.parquet")
    return 1 if len(failed) else 0


def cmd_report(args: argparse.Namespace) -> int:
    """`adfloor report [STUDY]` and `adfloor experiment STUDY`: run a study's cells (cached) and write its report."""
    import shutil

    from simulator.experiments.study import load_study, study_file
    from simulator.report.claims_report import report

    study = load_study(args.study or study_file("claims"))
    if args.scenario:
        study = study.on_scenario(args.scenario)
    if args.mature:
        study = study.mature_pass()
    seeds, hours, arms = study.plan(args.quick, args.seeds, args.first_seed, args.hours)
    arms = args.arms or (study.claim_arms if args.mature else arms)
    suffix = "-quick" if args.quick else "-mature" if args.mature else ""
    if args.study is None:  # the claims report
        default_out = Path("runs/report-quick" if args.quick else "docs/results/mature" if args.mature else "docs/results")
    else:
        default_out = Path("runs") / (study.name + suffix)
    out = Path(args.out) if args.out else default_out
    cache = Path(args.cache)
    if args.fresh:
        shutil.rmtree(cache, ignore_errors=True)
    command = "adfloor " + " ".join(args.argv)
    where = f"Ray at {args.address}" if args.address else f"{args.workers} {args.backend} workers"
    print(f"adfloor {args.command}: study {study.name!r}, {len(seeds)} seeds × {len(arms) if arms else 'all'} arms, "
          f"{hours:g} simulated hours each" + (f" after {study.warm_start_hours:g} h of warm start" if study.warm_start_hours else "")
          + f", {where} → {out}/ (cells cached in {cache}/)", file=sys.stderr)
    try:
        entries, failures = report(study, out, seeds, hours, arms=list(arms) if arms else None, workers=args.workers,
                                   cache_dir=cache, backend=args.backend, address=args.address, command=command.strip(),
                                   progress=None if args.quiet else lambda text: print(f"  {text}", file=sys.stderr))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for entry in entries:
        low, high = entry["ci95"]
        verdict = "n/a" if not entry["testable"] else "yes" if entry["reproduced"] else "no"
        print(f"{verdict:3s}  {entry['id']:42s} {entry['mean']:+9.4f}  [{low:+.4f}, {high:+.4f}]")
    for key, error in failures.items():
        print(f"cell {key} failed: {error}", file=sys.stderr)
    print(f"wrote {out}/claims.md")
    return 1 if failures else 0


def cmd_side_by_side(args: argparse.Namespace) -> int:
    """`adfloor side-by-side LABEL=FOLDER ... --out FILE.md`: each claim of several saved reports side by side."""
    from simulator.report.side_by_side import write_side_by_side

    sources = {}
    for item in args.reports:
        label, equals, folder = item.partition("=")
        if not equals or not label or not folder:
            raise ConfigError(f"side-by-side: {item!r}: expected LABEL=FOLDER, e.g. teaching=docs/results")
        if label in sources:
            raise ConfigError(f"side-by-side: the label {label!r} is used twice")
        sources[label] = folder
    print(f"wrote {write_side_by_side(sources, args.out)}")
    return 0


def cmd_auction(args: argparse.Namespace) -> int:
    import json

    from auction.instance import InstanceError, from_json
    from auction.instance_solver import solve_instance
    from auction.reference import explain

    try:
        data = json.loads(Path(args.instance).read_text())
    except FileNotFoundError:
        raise ConfigError(f"instance file {args.instance!r}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"instance file {args.instance!r}: bad JSON: {err}") from None
    try:
        instance = from_json(data)
        outcome, solver = solve_instance(instance, args.mechanism, args.reserve_mode)
    except InstanceError as err:
        raise ConfigError(str(err)) from None
    print(json.dumps({"solver": solver, **outcome.as_json(instance)}, indent=2))
    if args.explain:
        print(explain(outcome, instance))
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    spec = importlib.util.find_spec("dashboards")
    if spec is None or spec.origin is None:
        raise ConfigError("adfloor app: the dashboards package is not installed")
    app = Path(spec.origin).parent / "app.py"
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
               "--server.port", str(args.port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    sys.stdout.flush()
    os.execv(sys.executable, command)  # become the server: signals to this process reach Streamlit itself
