"""Train-step cost against embedding-table size: sparse updates keep a step's cost flat from 10⁴ to 10⁷ rows.

    python benchmarks/embedding_tables.py [--json OUT.json]

The realistic world's model (its feature columns and crosses) with every hashed field and cross given B buckets:
B = 1,024 gives ~10⁴ table rows in all, B = 2²¹ ~10⁷. Each case times the trainer's own call (`train_batches`, 8
steps of 512 examples a call, as the loop makes them) on examples drawn from the world, after one warm-up call.
Target (issue #17): with `train.sparse_embeddings`, a step at 10⁷ rows costs ≤ 1.5× a step at 10⁴. The dense
update at 10⁷ is timed too, for scale: its every step reads and writes every row.
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
sys.path.append(str(ROOT / "benchmarks"))  # after the root: benchmarks/auction.py is not the package

from simulator import config  # noqa: E402
from simulator.loop.builders import build_trainer  # noqa: E402
from simulator.world.kinds import make_world  # noqa: E402
from training import synthetic_examples  # noqa: E402

TARGET = 1.5
CASES = {"small_sparse": (1024, True), "large_sparse": (1 << 21, True), "small_dense": (1024, False),
         "large_dense": (1 << 21, False)}


def step_cost(buckets: int, sparse: bool, steps: int = 8, calls: int = 6) -> dict:
    """Table rows and milliseconds per train step."""
    scenario = config.load(ROOT / "scenarios" / "default.toml", [
        f"model.ad_buckets={buckets}", f"model.id_buckets={buckets}", f"model.cross_buckets={buckets}",
        f"train.sparse_embeddings={str(sparse).lower()}"])
    world = make_world(scenario, 0)
    trainer = build_trainer(scenario, world)
    examples = synthetic_examples(world, scenario.train.batch_size * steps, np.random.default_rng(0))
    columns = [*examples[:5], (examples.query - examples.query.min()).astype(np.int32), examples.label]
    batches = tuple(jnp.asarray(c.reshape(steps, scenario.train.batch_size, *c.shape[1:])) for c in columns)
    jax.block_until_ready(trainer.train_batches(batches))
    started = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(trainer.train_batches(batches))
    return {"table_rows": int(sum(trainer._spec.field_sizes)),
            "ms_per_step": 1e3 * (time.perf_counter() - started) / (calls * steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = {name: step_cost(*case) for name, case in CASES.items()}
    for name, r in results.items():
        print(f"{name:13s} {r['table_rows']:>12,d} rows  {r['ms_per_step']:8.2f} ms/step")
    ratio = results["large_sparse"]["ms_per_step"] / results["small_sparse"]["ms_per_step"]
    results["sparse_ratio"] = ratio
    print(f"sparse: 10⁷-row step / 10⁴-row step = {ratio:.2f} ({'meets' if ratio <= TARGET else 'MISSES'} ≤ {TARGET})")
    print(f"dense at 10⁷ rows: {results['large_dense']['ms_per_step'] / results['large_sparse']['ms_per_step']:.0f}× "
          "the sparse step")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
