"""The `adfloor` command line: a thin layer over `simulator.run` and friends."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from auction.mechanisms import MECHANISMS
from auction.reserves import RESERVE_MODES
from simulator.compile_cache import enable_compilation_cache
from simulator.config import ConfigError, scenario_file
from simulator.experiments.runner import BACKENDS

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
        print(f"adfloor run: resuming {out} at simulated hour {simulation.env.now / 60:.2f} of "
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
    seeds, hours, arms = study.plan(args.quick, args.seeds, args.first_seed, args.hours)
    arms = args.arms or arms
    if args.study is None:  # the claims report
        default_out = Path("runs/report-quick" if args.quick else "docs/results")
    else:
        default_out = Path("runs") / (study.name + ("-quick" if args.quick else ""))
    out = Path(args.out) if args.out else default_out
    cache = Path(args.cache)
    if args.fresh:
        shutil.rmtree(cache, ignore_errors=True)
    command = "adfloor " + " ".join(args.argv)
    where = f"Ray at {args.address}" if args.address else f"{args.workers} {args.backend} workers"
    print(f"adfloor {args.command}: study {study.name!r}, {len(seeds)} seeds × {len(arms) if arms else 'all'} arms, "
          f"{hours:g} simulated hours each, {where} → {out}/ (cells cached in {cache}/)", file=sys.stderr)
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


def _runner_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that runs many cells (`sweep`, `report`, `experiment`): one runner."""
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="local: parallel processes here (default); ray: Ray tasks, local or at --address")
    parser.add_argument("--address", help="Ray cluster address (with --backend ray); default: start Ray locally")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")


def _study_arguments(parser: argparse.ArgumentParser, quick_help: str) -> None:
    """The flags `report` and `experiment` share."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--scenario", help="run every arm on this scenario (a shipped name or a .toml file) instead "
                                            "of the study's")
    parser.add_argument("--seeds", type=int, help="number of seeds from --first-seed (default: the study's)")
    parser.add_argument("--first-seed", type=int, help="the first of --seeds seeds (default 0; alone: the study's "
                                                        "number of seeds from here)")
    parser.add_argument("--hours", type=float, help="simulated hours per run (default: the study's)")
    parser.add_argument("--arms", nargs="+", help="only these arms (and the baseline)")
    _runner_arguments(parser)
    parser.add_argument("--cache", default="runs/report-cache",
                        help="finished cells are kept here and reused by re-runs (default runs/report-cache)")
    parser.add_argument("--fresh", action="store_true", help="empty the cache first")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=cmd_report)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adfloor", description="Search-ads auction and online CTR model testbed.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a scenario through the closed loop")
    run.add_argument("scenario", nargs="?", help=f"scenario TOML file or shipped name (smoke, default; default: {DEFAULT_SCENARIO})")
    run.add_argument("--seed", type=int, help="override run.seed")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key, e.g. train.batch_size=1024")
    run.add_argument("--out", help="output folder (default: runs/<scenario>-seed<N>)")
    run.add_argument("--quiet", action="store_true", help="no live progress line")
    run.add_argument("--resume", metavar="DIR", help="continue the killed run whose output folder is DIR "
                                                     "(from DIR/checkpoint, written every run.checkpoint_every_minutes)")
    run.add_argument("--log-impressions", action="store_true",
                     help="also write impressions.parquet (every shown ad, its click and true CTR)")
    run.set_defaults(handler=cmd_run)
    comp = commands.add_parser("compare", help="paired replays: two systems on identical traffic and user noise")
    comp.add_argument("scenarios", nargs="*", help="A.toml B.toml, or one scenario with --vary")
    comp.add_argument("--vary", help="one scenario, two values of a key: section.key=v1,v2")
    comp.add_argument("--seeds", type=int, default=3, help="number of seeds (from run.seed on; default 3)")
    comp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key in both")
    comp.add_argument("--out", help="output folder (default: runs/compare-<A>-vs-<B>)")
    comp.add_argument("--open-loop", action="store_true",
                      help="control run: B trains on A's logs (removes the feedback through the auction)")
    comp.add_argument("--quiet", action="store_true")
    comp.set_defaults(handler=cmd_compare)
    sweep = commands.add_parser("sweep", help="run a grid / random sample of scenarios × seeds in parallel")
    sweep.add_argument("sweep", help="sweep TOML file (see scenarios/sweep_example.toml)")
    _runner_arguments(sweep)
    sweep.add_argument("--out", help="output folder (default: runs/sweep-<name>); re-running skips finished cells")
    sweep.add_argument("--quiet", action="store_true")
    sweep.set_defaults(handler=cmd_sweep)
    auction = commands.add_parser("auction", help="run one auction from a JSON instance (shared/auction_cases "
                                   "schema): the exact enumeration while slates are few, the batched solver (K ≤ 8) beyond")
    auction.add_argument("instance", help="JSON file: an instance, or a case with an 'input' key")
    auction.add_argument("--mechanism", choices=tuple(MECHANISMS), default="vcg",
                         help="vcg (default); gsp: rank by score with one treatment per ad, threshold prices on the VCG page "
                              "with several; first_price: the VCG page, pay your bid")
    auction.add_argument("--reserve-mode", choices=RESERVE_MODES, default="cost",
                         help="cost: reserve as a per-click seller cost (default); filter: eligibility threshold")
    auction.add_argument("--explain", action="store_true", help="also print a human-readable account")
    auction.set_defaults(handler=cmd_auction)
    rep = commands.add_parser("report", help="run the claims study (or another study file) and write its report")
    rep.add_argument("study", nargs="?", help="study TOML file (default: the shipped studies/claims.toml)")
    rep.add_argument("--out", help="output folder (default docs/results; runs/report-quick with --quick; "
                                   "runs/<study name> for another study)")
    _study_arguments(rep, "the claims' and sections' arms only, on the study's [quick] seeds and hours "
                          "(the claims study: 3 seeds × 0.5 h, under 10 min on 2 cores); writes to runs/report-quick")
    exp = commands.add_parser("experiment", help="run a study file (arms, seeds, claims, tables) and write its report")
    exp.add_argument("study", help="study TOML file (format: docs/studies.md; e.g. studies/example.toml)")
    exp.add_argument("--out", help="output folder (default runs/<study name>, runs/<study name>-quick with --quick)")
    _study_arguments(exp, "the study's [quick] seeds and hours, its claims' and sections' arms only")
    app = commands.add_parser("app", help="start the Streamlit app on 127.0.0.1")
    app.add_argument("--port", type=int, default=8501)
    app.set_defaults(handler=cmd_app)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    enable_compilation_cache()
    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"adfloor: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nadfloor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
