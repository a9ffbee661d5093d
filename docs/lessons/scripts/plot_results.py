"""Plots for lessons 2 and 4 from an experiments results file (benchmarks/experiments/models.py's models.json).

    python docs/lessons/scripts/plot_results.py RESULTS.json --kind position --out runs/lesson2.png
    python docs/lessons/scripts/plot_results.py RESULTS.json --kind bias --out runs/lesson4.png

position: learned vs true CTR(position) / CTR(top) per arm; bias: served-pCTR calibration bias per
position and per treatment (pCTR / true CTR − 1, second half of the run) per arm. Seeds are averaged.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def by_arm(results: list[dict], key: str) -> dict[str, np.ndarray]:
    arms: dict[str, list] = {}
    for result in results:
        arms.setdefault(result["arm"], []).append(result[key])
    return {arm: np.nanmean(np.asarray(values, np.float64), axis=0) for arm, values in arms.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results")
    parser.add_argument("--kind", choices=["position", "bias"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--arms", nargs="+", help="only these arms (default: all in the file)")
    args = parser.parse_args()
    results = [r for r in json.loads(Path(args.results).read_text())["results"] if not args.arms or r["arm"] in args.arms]
    if args.kind == "position":
        learned = by_arm(results, "learned_position_effect")
        true = results[0]["true_position_effect"]
        figure, axis = plt.subplots(figsize=(6, 3.6))
        positions = np.arange(2, len(true) + 2)
        axis.plot(positions, true, "k--o", label="true")
        for arm, values in learned.items():
            axis.plot(positions, values, "-o", label=f"learned: {arm}")
            print(f"{arm}: learned CTR(p)/CTR(top) = {', '.join(f'{v:.3f}' for v in values)}")
        print(f"true: {', '.join(f'{v:.3f}' for v in true)}")
        axis.set(xlabel="position (1 = top)", ylabel="CTR(p) / CTR(top), text format", xticks=positions)
        axis.legend()
    else:
        figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for axis, key in zip(axes, ("bias_position", "bias_treatment")):
            values = by_arm(results, key)
            width = 0.8 / len(values)
            for i, (arm, bias) in enumerate(values.items()):
                axis.bar(np.arange(len(bias)) + i * width, bias, width, label=arm)
                print(f"{arm} {key}: {', '.join(f'{v:+.3f}' for v in bias)}")
            axis.axhline(0, color="grey", linewidth=0.8)
            axis.set(xlabel=key.split("_")[1], ylabel="served pCTR / true CTR − 1")
            axis.legend()
    figure.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
