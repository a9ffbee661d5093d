"""How good an approximation is τ(Q·U) in the realistic world, as a function of its interaction dimension d? (issue
#17, item 3)

    python -m benchmarks.experiments.interaction_dim [--seeds 0 1 2] [--hours 6] [--dims 1 2 4 8 16 32]
        [--no-unfactorized] [--set KEY=VALUE ...] [--scenario scenarios/default.toml] [--out docs/results/world/interaction_dim]

Fixed before it ran: in the realistic world (scenarios/default.toml, its own traffic) the factorized model at each d
and the unfactorized one (`model.architecture = "unfactorized"`: one network over the query, ad, treatment and
position features, no dot product) learn online on the same seeds; the measure is each run's final-window PV log-loss
gap over the oracle on its own examples (`final_window_gap`), and the readout is each arm's mean with its 95 %
t-interval and the paired difference factorized(d) − unfactorized by seed. The world's truth is relevance × a
format lift that depends on the ad and the context × an examination that depends on the device and the slot, so a
small d cannot represent it and the factorized model should trail the unfactorized one there; from some d on it
need not, and it may lead (fewer parameters per treatment and position to learn). Which d is enough, and whether it
leads, is what the run says; it is a measurement of the mechanism, not a claim with a verdict. Writes OUT/dims.md,
OUT/dims.json and OUT/dims.png.

The second run, fixed after the first (cold: no dependence on d visible, docs/world.md) and before it ran: the same
measure on mature models, `--set run.warm_start_hours=24 --dims 1 2 8 32 --no-unfactorized` (each arm pre-trained a
simulated day in its own closed loop, cached; the unfactorized arm left out for its cost, ~5× a factorized one's),
to ask whether a small d's misfit shows once the estimation error is smaller: it does if d = 1's gap exceeds
d = 32's with a paired 95 % t-interval above 0.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import simulator  # noqa: E402
from simulator.measure.intervals import interval  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def arms(dims: list[int], unfactorized: bool = True) -> dict[str, list[str]]:
    """The arms: the factorized model at each d, and the unfactorized one."""
    return {**{f"d={d}": [f"model.interaction_dim={d}"] for d in dims},
            **({"unfactorized": ["model.architecture=unfactorized"]} if unfactorized else {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--no-unfactorized", action="store_true", help="the factorized arms alone")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override of every arm")
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "default.toml"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "world" / "interaction_dim"))
    args = parser.parse_args(argv)
    started, results = time.perf_counter(), []
    chosen = arms(args.dims, not args.no_unfactorized)
    for seed in args.seeds:
        for arm, overrides in chosen.items():
            scenario = simulator.load(args.scenario, overrides=[f"run.duration_hours={args.hours}", *args.set, *overrides],
                                      seed=seed)
            summary = simulator.run(scenario).summary()
            results.append(dict(arm=arm, seed=seed, gap=summary["final_window_gap"], pv_logloss=summary["pv_logloss"],
                                oracle_logloss=summary["oracle_logloss"], stopped=summary["stopped"]))
            print(f"{time.perf_counter() - started:6.0f} s  {arm:13s} seed {seed}: final-window gap "
                  f"{100 * summary['final_window_gap']:+.2f} %", flush=True)
    scenario_name = Path(args.scenario).relative_to(ROOT) if Path(args.scenario).is_relative_to(ROOT) else args.scenario
    command = (f"python -m benchmarks.experiments.interaction_dim --seeds {' '.join(map(str, args.seeds))} "
               f"--hours {args.hours:g} --dims {' '.join(map(str, args.dims))} --scenario {scenario_name}"
               + "".join(f" --set {o}" for o in args.set) + (" --no-unfactorized" if args.no_unfactorized else ""))
    gap = {arm: np.array([r["gap"] for r in results if r["arm"] == arm]) for arm in chosen}
    reference = "unfactorized" if "unfactorized" in gap else f"d={max(args.dims)}"
    lines = ["# τ(Q·U) against the unfactorized model, by interaction dimension d", "",
             f"`{command}` ({time.perf_counter() - started:,.0f} s). Final-window PV log-loss gap over the "
             "oracle on each run's own examples, mean ± 95 % t-interval over seeds; the difference is paired by seed "
             f"(negative: closer to the oracle than {reference}).", "",
             f"| arm | gap over the oracle | − {reference} |", "|---|---|---|"]
    summary = {}
    for arm, values in gap.items():
        own, against = interval(100 * values), interval(100 * (values - gap[reference]))
        summary[arm] = dict(gap=dict(mean=own[0], half_width=own[1]),
                            minus_reference=dict(reference=reference, mean=against[0], half_width=against[1]))
        versus = "—" if arm == reference else f"{against[0]:+.2f} ± {against[1]:.2f} points"
        lines.append(f"| {arm} | {own[0]:+.2f} ± {own[1]:.2f} % | {versus} |")
    stopped = [f"{r['arm']} seed {r['seed']}: {r['stopped']}" for r in results if r["stopped"]]
    if stopped:  # a stopped run's gap is its numbers so far, not the arm's
        lines += ["", "Stopped early (their gaps are in the means above): " + "; ".join(stopped)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dims.md").write_text("\n".join(lines) + "\n")
    (out / "dims.json").write_text(json.dumps(dict(command=command, results=results, summary=summary), indent=1) + "\n")
    figure, axis = plt.subplots(figsize=(6, 3.6))
    means = [summary[f"d={d}"]["gap"]["mean"] for d in args.dims]
    widths = [summary[f"d={d}"]["gap"]["half_width"] for d in args.dims]
    axis.errorbar(args.dims, means, yerr=widths, marker="o", capsize=3, label="factorized τ(Q·U)")
    if "unfactorized" in summary:
        line = summary["unfactorized"]["gap"]
        axis.axhline(line["mean"], color="C1", label="unfactorized")
        axis.axhspan(line["mean"] - line["half_width"], line["mean"] + line["half_width"], color="C1", alpha=0.2)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("interaction dimension d")
    axis.set_ylabel("final-window PV log-loss gap (%)")
    axis.set_title("Realistic world: the factorized model by d (95 % t-intervals)", fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "dims.png", dpi=120)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
