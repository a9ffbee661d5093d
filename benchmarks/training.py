"""Training and scoring cost of the CTR model: examples/s and achieved FLOP/s of the train step next to this
machine's matmul peak (measured in the same run), and scoring cost per candidate with U cached vs not.

    python benchmarks/training.py [--json OUT.json] [--set model.key=value ...]

Train step = the trainer's jitted `lax.scan` over stacked batches (forward, backward, optimizer), exactly
what the loop runs; FLOPs per step from XLA's cost analysis of that compiled program. Two models: the
teaching world's (small: 6 fields × 8 dims, Q 64-32) and a production-shaped one (6 fields × 16 dims,
Q 512-256-128, interaction 32) on which the FLOP/s goal is judged.
Goal: train-step FLOP/s ≥ 40 % of the matmul peak at batch 8K (production-shaped model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import Examples  # noqa: E402
from simulator import config  # noqa: E402
from simulator.loop.builders import build_trainer  # noqa: E402
from simulator.world.ground_truth import World  # noqa: E402
from simulator.world.kinds import make_world  # noqa: E402

GOAL = 0.40
MODELS = {
    "default": [],
    "production_shaped": ["model.embedding_dim=16", "model.quality_hidden=[512, 256, 128]", "model.interaction_dim=32",
                          "model.ui_hidden=[32]"],
}


def best_time(fn, repeats: int = 5) -> float:
    """Fastest of `repeats` timed calls (after one warm-up call)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - started)
    return min(times)


def matmul_peak(n: int = 2048) -> float:
    """Jitted float32 n×n matmul FLOP/s: the yardstick for this machine."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    return 2 * n**3 / best_time(lambda: matmul(a, b))


def synthetic_examples(world: World, n: int, rng: np.random.Generator) -> Examples:
    """Logged-impression-shaped examples drawn from the world's queries (real feature distribution)."""
    batch = world.queries(0.0, 60.0)
    while batch.size * 4 < n:
        batch = world.queries(0.0, 60.0 * (1 + n // max(batch.size * 4, 1)))
    rows = rng.integers(0, batch.size, n)
    cols = rng.integers(0, batch.candidates.shape[1], n)
    return Examples(batch.features[rows, cols], rng.integers(0, len(world.treatment_features), n).astype(np.int32),
                    rng.integers(0, world.examination.shape[1], n).astype(np.int32),
                    (rng.random(n) < 0.1).astype(np.float32), np.ones(n, np.float32), np.arange(n) // 4)


def train_step_cost(overrides: list[str], batch_size: int, steps: int = 16) -> dict:
    """Examples/s and FLOP/s of `steps` train steps at `batch_size`, as the loop runs them."""
    scenario = config.load(ROOT / "scenarios" / "teaching.toml", [*overrides, f"train.batch_size={batch_size}"])
    world = make_world(scenario, 0)
    trainer = build_trainer(scenario, world)
    examples = synthetic_examples(world, batch_size * steps, np.random.default_rng(0))
    columns = [*examples[:5], (examples.query - examples.query.min()).astype(np.int32), examples.label]
    batches = tuple(jnp.asarray(c.reshape(steps, batch_size, *c.shape[1:])) for c in columns)
    state = (trainer.params, trainer.opt_state, trainer.duals, trainer.seen)
    compiled = trainer._train_batches.lower(*state, batches).compile()
    # XLA's cost analysis counts a loop body once, so count one step's program and multiply
    one_step = trainer._train_batches.lower(*state, tuple(b[:1] for b in batches)).compile()
    flops = steps * float(one_step.cost_analysis().get("flops", float("nan")))
    seconds = best_time(lambda: compiled(*state, batches))
    return {"batch_size": batch_size, "examples_per_second": batch_size * steps / seconds,
            "flops_per_example": flops / (batch_size * steps), "flop_per_second": flops / seconds}


def scoring_cost(overrides: list[str], queries: int = 1024) -> dict:
    """µs per candidate for pCTR over every treatment × position: U cached, U recomputed per cell, unfactorized."""
    from flax import nnx

    results = {}
    for name, extra in (("factorized", []), ("unfactorized", ["model.architecture=unfactorized"])):
        scenario = config.load(ROOT / "scenarios" / "teaching.toml", [*overrides, *extra])
        world = make_world(scenario, 0)
        trainer = build_trainer(scenario, world)
        raw = jnp.asarray(world.queries(0.0, 60.0).features[:queries])
        graphdef, params, constants = trainer.graphdef, trainer.params, trainer.constants
        cached = jax.jit(lambda p, r: nnx.merge(graphdef, p, constants).score_candidates(r))
        results[f"{name}_us_per_candidate"] = 1e6 * best_time(lambda: cached(params, raw)) / raw[..., 0].size
        if name == "factorized":
            def uncached(p, r):
                model = nnx.merge(graphdef, p, constants)
                component = model.components[0]
                q = component.quality(r)  # [B, N, d]
                t, k = component.ui.features.grid()
                b, n = r.shape[:2]
                u = component.ui(jnp.broadcast_to(t, (b, n, *t.shape)), jnp.broadcast_to(k, (b, n, *k.shape)))
                return jax.nn.sigmoid(jnp.einsum("bnd,bntkd->bntk", q, u))

            uncached_jit = jax.jit(uncached)
            results["factorized_uncached_us_per_candidate"] = (
                1e6 * best_time(lambda: uncached_jit(params, raw)) / raw[..., 0].size)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--set", action="append", default=[], help="extra overrides for both models")
    args = parser.parse_args()
    peak = matmul_peak()
    print(f"matmul peak (jitted float32 2048²): {peak / 1e9:.0f} GFLOP/s")
    results = {"matmul_peak_flop_per_second": peak, "goal_share_of_peak": GOAL, "train": {}, "scoring": {}}
    for model, overrides in MODELS.items():
        for batch_size in (1024, 8192):
            cost = train_step_cost([*overrides, *args.set], batch_size)
            cost["share_of_peak"] = cost["flop_per_second"] / peak
            results["train"][f"{model}@{batch_size}"] = cost
            print(f"train {model:18s} batch {batch_size:5d}: {cost['examples_per_second']:>11,.0f} examples/s, "
                  f"{cost['flops_per_example'] / 1e3:8.1f} kFLOP/example, {cost['flop_per_second'] / 1e9:6.1f} GFLOP/s "
                  f"= {100 * cost['share_of_peak']:4.1f} % of peak")
        scoring = scoring_cost([*overrides, *args.set])
        results["scoring"][model] = scoring
        print(f"score {model:18s}: " + ", ".join(f"{k.replace('_us_per_candidate', '')} {v:.3f} µs/candidate"
                                                  for k, v in scoring.items()))
    judged = results["train"]["production_shaped@8192"]["share_of_peak"]
    results["goal_met"] = judged >= GOAL
    print(f"goal: train-step FLOP/s ≥ {100 * GOAL:.0f} % of peak at batch 8K (production-shaped): "
          f"{100 * judged:.1f} % — {'met' if judged >= GOAL else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
