"""The `adfloor` command line: its parser and `main`; what each command does is in `simulator.commands`."""

from __future__ import annotations

import argparse
import sys

from auction.mechanisms import MECHANISMS
from auction.reserves import RESERVE_MODES
from simulator.commands import (DEFAULT_SCENARIO, cmd_app, cmd_auction, cmd_compare, cmd_pretrain, cmd_report, cmd_run,
                                cmd_side_by_side, cmd_sweep, cmd_world)
from simulator.compile_cache import enable_compilation_cache
from simulator.config import ConfigError
from simulator.experiments.runner import BACKENDS


def _runner_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that runs many cells (`sweep`, `report`, `experiment`): one runner."""
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="local: parallel processes here (default); ray: Ray tasks, local or at --address")
    parser.add_argument("--address", help="Ray cluster address (with --backend ray); default: start Ray locally")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")


def _study_arguments(parser: argparse.ArgumentParser, quick_help: str) -> None:
    """The flags `report` and `experiment` share."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help=quick_help)
    group.add_argument("--mature", action="store_true",
                       help="the study's [mature] pass: only its claims about mature, retrained models, each arm "
                            "warm-started from its own model after [mature] warm_start_hours of the same scenario")
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
    parser.add_argument("--fresh", action="store_true", help="empty the cache first (pre-trained warm-start states "
                                                              "in run.warm_start_cache stay: their key holds their code's "
                                                              "version)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(handler=cmd_report)


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
    world = commands.add_parser("world", help="the world alone (oracle scoring, no training): its statistics beside "
                                             "their calibration targets and sources (docs/world.md)")
    world.add_argument("scenario", nargs="?", help=f"scenario TOML file or shipped name (default: {DEFAULT_SCENARIO})")
    world.add_argument("--hours", type=float, help="simulated hours (default: the scenario's run.duration_hours)")
    world.add_argument("--seed", type=int, help="override run.seed")
    world.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    world.add_argument("--out", help="output folder (default: runs/world-<scenario>-seed<N>)")
    world.add_argument("--quiet", action="store_true", help="no live progress line")
    world.set_defaults(handler=cmd_world)
    pretrain = commands.add_parser("pretrain", help="pre-train a scenario's model for some simulated hours and cache its "
                                                    "state, for runs with run.warm_start_hours (docs/world.md)")
    pretrain.add_argument("scenario", nargs="?", help=f"scenario TOML file or shipped name (default: {DEFAULT_SCENARIO})")
    pretrain.add_argument("--hours", type=float, required=True, help="simulated hours of pre-training")
    pretrain.add_argument("--seed", type=int, help="override run.seed")
    pretrain.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a key (run.warm_start_cache: where the state is cached)")
    pretrain.add_argument("--quiet", action="store_true", help="no live progress line")
    pretrain.set_defaults(handler=cmd_pretrain)
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
                                   "docs/results/mature with --mature; "
                                   "runs/<study name> for another study)")
    _study_arguments(rep, "the claims' and sections' arms only, on the study's [quick] seeds and hours "
                          "(the claims study: 3 seeds × 0.5 h, under 10 min on 2 cores); writes to runs/report-quick")
    exp = commands.add_parser("experiment", help="run a study file (arms, seeds, claims, tables) and write its report")
    exp.add_argument("study", help="study TOML file (format: docs/studies.md; e.g. studies/example.toml)")
    exp.add_argument("--out", help="output folder (default runs/<study name>, runs/<study name>-quick with --quick, "
                                   "runs/<study name>-mature with --mature)")
    _study_arguments(exp, "the study's [quick] seeds and hours, its claims' and sections' arms only")
    side = commands.add_parser("side-by-side", help="each claim of several saved claims reports side by side "
                                                    "(e.g. two worlds): a table and a figure")
    side.add_argument("reports", nargs="+", metavar="LABEL=FOLDER",
                      help="a label and a folder `adfloor report` wrote (its claims.json), e.g. teaching=docs/results")
    side.add_argument("--out", required=True, help="the table's markdown file (its figure: the same name, .png)")
    side.set_defaults(handler=cmd_side_by_side)
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
